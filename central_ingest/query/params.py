"""Validated parameters of the count queries; pure, so they are tested without a database."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from event_contract import Direction, VehicleClass

GroupKey = Literal["agent_id", "source_id", "line_id", "vehicle_class", "direction"]
GROUP_KEYS: tuple[GroupKey, ...] = get_args(GroupKey)
LINE_KEYS: tuple[GroupKey, ...] = ("agent_id", "source_id", "line_id")
"""The keys of one counting line: what an interval (and its quality) belongs to."""

BUCKET_PATTERN = re.compile(r"^(?P<amount>[1-9][0-9]{0,3})(?P<unit>[mhd])$")
BUCKET_UNITS = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}
MIN_BUCKET = dt.timedelta(minutes=1)
MAX_BUCKET = dt.timedelta(days=31)
MAX_BUCKETS_PER_QUERY = 10_000
"""Bounds the answer's size: a year of 1 h buckets fits, a year of 1 m buckets does not."""
DEFAULT_RANGE = dt.timedelta(hours=24)


class QueryError(ValueError):
    """A query parameter is invalid; the message names the parameter and says what is allowed."""


def parse_bucket(text: str) -> dt.timedelta:
    """``15m``, ``1h``, ``1d`` and the like: 1 minute up to 31 days."""
    match = BUCKET_PATTERN.match(text.strip())
    if match is None:
        raise QueryError(f"bucket {text!r} must be a whole number followed by m, h or d, e.g. 15m, 1h, 1d")
    width = int(match["amount"]) * BUCKET_UNITS[match["unit"]]
    if not MIN_BUCKET <= width <= MAX_BUCKET:
        raise QueryError(f"bucket {text!r} must be between 1m and 31d")
    return width


def parse_group_by(values: list[str]) -> tuple[GroupKey, ...]:
    """Group keys in a fixed order; accepts repeated parameters and comma-separated lists."""
    requested = {item.strip() for value in values for item in value.split(",") if item.strip()}
    unknown = sorted(requested - set(GROUP_KEYS))
    if unknown:
        raise QueryError(f"group_by {unknown} not allowed; choose from {list(GROUP_KEYS)}")
    return tuple(key for key in GROUP_KEYS if key in requested)


def parse_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"timezone {name!r} is not a known IANA zone, e.g. UTC or Asia/Ho_Chi_Minh") from None
    return name


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime
    end: dt.datetime


def resolve_range(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime) -> TimeRange:
    """``[start, end)`` in UTC; a missing end is ``now``, a missing start is 24 h before the end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise QueryError(f"{name} must carry a timezone, e.g. 2024-05-01T00:00:00Z or +07:00")
    resolved_end = (end or now).astimezone(dt.UTC)
    resolved_start = (start or resolved_end - DEFAULT_RANGE).astimezone(dt.UTC)
    if resolved_start >= resolved_end:
        raise QueryError(f"start {resolved_start.isoformat()} must be before end {resolved_end.isoformat()}")
    return TimeRange(resolved_start, resolved_end)


@dataclass(frozen=True)
class CountFilters:
    agent_id: str | None = None
    source_id: str | None = None
    line_id: str | None = None
    vehicle_class: VehicleClass | None = None
    direction: Direction | None = None
    interval_s: int | None = None
    """Read only intervals of this length; None: the finest length stored for each line in the range."""

    def __post_init__(self) -> None:
        if self.interval_s is not None and not 0 < self.interval_s <= 86_400:
            raise QueryError(f"interval_s {self.interval_s} must be 1..86400 seconds")

    def as_params(self) -> dict[str, str]:
        """The equality filters on line and bucket columns that are set, by column name (not interval_s)."""
        values: dict[str, str | None] = {
            "agent_id": self.agent_id,
            "source_id": self.source_id,
            "line_id": self.line_id,
            "vehicle_class": self.vehicle_class,
            "direction": self.direction,
        }
        return {column: value for column, value in values.items() if value is not None}

    def line_params(self) -> dict[str, str]:
        """The filters that select lines (agent, camera, line)."""
        return {column: value for column, value in self.as_params().items() if column in LINE_KEYS}


@dataclass(frozen=True)
class CountSeriesQuery:
    """Counts summed per time bucket (and per group key) over a range."""

    time_range: TimeRange
    bucket: dt.timedelta
    group_by: tuple[GroupKey, ...]
    filters: CountFilters
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        buckets = (self.time_range.end - self.time_range.start) / self.bucket
        if buckets > MAX_BUCKETS_PER_QUERY:
            raise QueryError(
                f"range/bucket gives {int(buckets)} buckets; at most {MAX_BUCKETS_PER_QUERY}: "
                "use a wider bucket or a shorter range"
            )
