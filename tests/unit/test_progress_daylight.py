"""Local days, the daylight window and the day's close at a site in Asia/Ho_Chi_Minh (UTC+7, no DST)."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_agent.progress.config import DaylightConfig
from edge_agent.progress.daylight import day_closes_at, in_daylight, local_day

HCM = "Asia/Ho_Chi_Minh"
DAYLIGHT = DaylightConfig(start="06:30", end="17:30")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def test_local_day_follows_the_site_not_utc() -> None:
    assert local_day(utc(2026, 3, 1, 16, 59), HCM) == dt.date(2026, 3, 1)  # 23:59 local
    assert local_day(utc(2026, 3, 1, 17, 0), HCM) == dt.date(2026, 3, 2)  # 00:00 local, still 1 March in UTC
    assert local_day(utc(2026, 3, 1, 17, 0), "UTC") == dt.date(2026, 3, 1)


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        (utc(2026, 3, 1, 23, 29), False),  # 06:29 local
        (utc(2026, 3, 1, 23, 30), True),  # 06:30 local: the window starts inclusive
        (utc(2026, 3, 2, 5, 0), True),  # noon
        (utc(2026, 3, 2, 10, 29), True),  # 17:29
        (utc(2026, 3, 2, 10, 30), False),  # 17:30: the window ends exclusive (the day closes then)
        (utc(2026, 3, 2, 15, 0), False),  # 22:00
    ],
)
def test_in_daylight_is_the_local_window(instant: dt.datetime, inside: bool) -> None:
    assert in_daylight(instant, DAYLIGHT, HCM) is inside


def test_day_closes_at_the_local_end_of_daylight_in_utc() -> None:
    close = day_closes_at(dt.date(2026, 3, 2), DAYLIGHT, HCM)
    assert close == utc(2026, 3, 2, 10, 30)
    assert close.tzinfo is dt.UTC
    assert local_day(close, HCM) == dt.date(2026, 3, 2)
    assert not in_daylight(close, DAYLIGHT, HCM)
    assert in_daylight(close - dt.timedelta(seconds=1), DAYLIGHT, HCM)


def test_day_close_in_a_zone_with_daylight_saving() -> None:
    # Europe/Berlin moves from UTC+1 to UTC+2 on 2026-03-29: 17:30 local is 16:30 UTC before, 15:30 UTC after.
    assert day_closes_at(dt.date(2026, 3, 28), DAYLIGHT, "Europe/Berlin") == utc(2026, 3, 28, 16, 30)
    assert day_closes_at(dt.date(2026, 3, 29), DAYLIGHT, "Europe/Berlin") == utc(2026, 3, 29, 15, 30)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_day(dt.datetime(2026, 3, 1, 12, 0), HCM)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        in_daylight(dt.datetime(2026, 3, 1, 12, 0), DAYLIGHT, HCM)  # noqa: DTZ001
