"""Count query parameters: bucket widths, group keys, time ranges, size bounds."""

from __future__ import annotations

import datetime as dt

import pytest

from central_ingest.query.params import (
    CountFilters,
    CountSeriesQuery,
    QueryError,
    TimeRange,
    parse_bucket,
    parse_group_by,
    parse_timezone,
    resolve_range,
)

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1m", dt.timedelta(minutes=1)),
        ("15m", dt.timedelta(minutes=15)),
        ("1h", dt.timedelta(hours=1)),
        (" 6h ", dt.timedelta(hours=6)),
        ("1d", dt.timedelta(days=1)),
        ("31d", dt.timedelta(days=31)),
    ],
)
def test_bucket_accepts_minutes_hours_days(text: str, expected: dt.timedelta) -> None:
    assert parse_bucket(text) == expected


@pytest.mark.parametrize("text", ["", "0m", "15", "m", "1w", "1.5h", "-1h", "01h", "32d", "1h; drop table x", "10000m"])
def test_bucket_rejects_other_text(text: str) -> None:
    with pytest.raises(QueryError, match="bucket"):
        parse_bucket(text)


def test_group_by_accepts_repeats_and_commas_in_fixed_order() -> None:
    assert parse_group_by(["direction,source_id", "vehicle_class", "source_id"]) == (
        "source_id",
        "vehicle_class",
        "direction",
    )
    assert parse_group_by([]) == ()


def test_group_by_rejects_unknown_columns() -> None:
    with pytest.raises(QueryError, match="count"):
        parse_group_by(["source_id,count"])


def test_range_defaults_to_last_24_hours() -> None:
    assert resolve_range(None, None, NOW) == TimeRange(NOW - dt.timedelta(hours=24), NOW)


def test_range_normalises_to_utc() -> None:
    start = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    resolved = resolve_range(start, None, NOW)
    assert resolved.start == dt.datetime(2025, 3, 1, 0, 0, tzinfo=dt.UTC)
    assert resolved.start.utcoffset() == dt.timedelta(0)


def test_range_rejects_naive_and_reversed_times() -> None:
    with pytest.raises(QueryError, match="timezone"):
        resolve_range(dt.datetime(2025, 3, 1), None, NOW)  # noqa: DTZ001 - the naive value is the point
    with pytest.raises(QueryError, match="before"):
        resolve_range(NOW, NOW - dt.timedelta(hours=1), NOW)


def test_too_many_buckets_is_refused() -> None:
    year = TimeRange(NOW - dt.timedelta(days=365), NOW)
    CountSeriesQuery(year, parse_bucket("1h"), (), CountFilters())
    with pytest.raises(QueryError, match="buckets"):
        CountSeriesQuery(year, parse_bucket("1m"), (), CountFilters())


def test_timezone_must_be_known() -> None:
    assert parse_timezone("Asia/Ho_Chi_Minh") == "Asia/Ho_Chi_Minh"
    with pytest.raises(QueryError, match="timezone"):
        parse_timezone("Mars/Olympus")
    with pytest.raises(QueryError, match="timezone"):
        parse_timezone("../etc/passwd")


def test_filters_list_only_set_values() -> None:
    assert CountFilters(source_id="cam-1", direction="in").as_params() == {"source_id": "cam-1", "direction": "in"}


def test_interval_length_filter_is_checked_and_kept_apart_from_column_filters() -> None:
    filters = CountFilters(source_id="cam-1", vehicle_class="car", interval_s=900)
    assert filters.as_params() == {"source_id": "cam-1", "vehicle_class": "car"}
    assert filters.line_params() == {"source_id": "cam-1"}
    with pytest.raises(QueryError, match="interval_s"):
        CountFilters(interval_s=0)
