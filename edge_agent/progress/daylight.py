"""Local days and the day-time window of a site, from aware UTC instants and the site's IANA time zone.

A site's progress figures are per LOCAL day (the PMU's calendar), and the day closes when daylight ends: after
that no frame can change the day's figure, so it is published then rather than at midnight.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from edge_agent.progress.config import DaylightConfig, parse_hhmm


@functools.lru_cache(maxsize=64)
def _zone(timezone: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(timezone)


def _aware(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {t.isoformat()} must be timezone-aware (UTC)")
    return t


def local_day(t: dt.datetime, timezone: str) -> dt.date:
    """The site's calendar day at instant ``t``."""
    return _aware(t).astimezone(_zone(timezone)).date()


def in_daylight(t: dt.datetime, daylight: DaylightConfig, timezone: str) -> bool:
    """True when the site's local time of ``t`` is in [daylight.start, daylight.end)."""
    local = _aware(t).astimezone(_zone(timezone)).time().replace(tzinfo=None)
    return parse_hhmm(daylight.start) <= local < parse_hhmm(daylight.end)


def day_closes_at(day: dt.date, daylight: DaylightConfig, timezone: str) -> dt.datetime:
    """UTC instant of ``daylight.end`` on the local ``day`` (a DST gap or fold resolves as zoneinfo does)."""
    local = dt.datetime.combine(day, parse_hhmm(daylight.end), tzinfo=_zone(timezone))
    return local.astimezone(dt.UTC)
