"""Pure parts of rollups, retention and the edition switch: bucket ranges, local days, cutoffs, policies."""

from __future__ import annotations

import datetime as dt

import pytest

from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.edition import features_for_license
from central_ingest.store.maintenance import refresh_policies
from central_ingest.store.retention import (
    clamp_counts,
    plan,
    retention_policies,
    service_targets,
)
from central_ingest.store.rollups import (
    HOUR,
    contiguous_ranges,
    continuous_aggregate_statements,
    day_ranges,
    local_day,
    split_by_floor,
    utc_hour,
)

UTC = dt.UTC


def h(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2025, 5, day, hour, tzinfo=UTC)


def test_utc_hour_truncates_in_utc() -> None:
    local = dt.datetime(2025, 5, 2, 0, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=7)))

    assert utc_hour(local) == h(1, 17)
    with pytest.raises(ValueError, match="timezone"):
        utc_hour(dt.datetime(2025, 5, 1))  # noqa: DTZ001 - the naive value under test


def test_contiguous_hours_merge_and_gaps_split() -> None:
    hours = [h(1, 3), h(1, 1), h(1, 2), h(1, 2), h(1, 7)]

    assert contiguous_ranges(hours, HOUR) == [(h(1, 1), h(1, 4)), (h(1, 7), h(1, 8))]
    assert contiguous_ranges([], HOUR) == []


def test_local_day_of_ho_chi_minh_starts_at_17_utc() -> None:
    assert local_day(h(1, 16), "Asia/Ho_Chi_Minh") == (dt.datetime(2025, 4, 30, 17, tzinfo=UTC), h(1, 17))
    assert local_day(h(1, 17), "Asia/Ho_Chi_Minh") == (h(1, 17), h(2, 17))


def test_local_day_across_a_daylight_saving_change_has_23_hours() -> None:
    start, end = local_day(dt.datetime(2025, 3, 30, 12, tzinfo=UTC), "Europe/Berlin")

    assert (start, end) == (dt.datetime(2025, 3, 29, 23, tzinfo=UTC), dt.datetime(2025, 3, 30, 22, tzinfo=UTC))


def test_day_ranges_merge_adjacent_local_days() -> None:
    hours = [h(1, 16), h(1, 18), h(1, 20), h(5, 0)]

    assert day_ranges(hours, "Asia/Ho_Chi_Minh") == [
        (dt.datetime(2025, 4, 30, 17, tzinfo=UTC), h(2, 17)),
        (h(4, 17), h(5, 17)),
    ]


def test_hours_before_the_raw_floor_are_skipped() -> None:
    hours = [h(1, 0), h(1, 1), h(2, 0)]

    assert split_by_floor(hours, h(1, 1)) == ([h(1, 1), h(2, 0)], [h(1, 0)])
    assert split_by_floor(hours, None) == ([], hours)  # no raw chunk at all: nothing can be recomputed


RETENTION = RetentionSettings(counts_days=90, health_days=30, dead_letters_days=7, hourly_rollup_days=730)
NOW = dt.datetime(2025, 6, 1, tzinfo=UTC)


def test_plan_gives_each_table_its_cutoff() -> None:
    steps = {step.table: step for step in plan(service_targets(RETENTION), NOW)}

    assert steps["line_counts"].cutoff == NOW - dt.timedelta(days=90)
    assert steps["zone_class_counts"].cutoff == NOW - dt.timedelta(days=90)
    assert steps["health"].cutoff == NOW - dt.timedelta(days=30)
    assert steps["plate_passes"].cutoff == NOW - dt.timedelta(days=90)
    assert steps["counts_hourly"].cutoff == NOW - dt.timedelta(days=730)
    assert (steps["counts_hourly"].method, steps["counts_hourly"].time_column) == ("drop_chunks", "bucket")
    assert (steps["dead_letters"].method, steps["dead_letters"].time_column) == ("delete", "received_at")
    assert steps["dead_letters"].cutoff == NOW - dt.timedelta(days=7)
    assert "counts_daily" not in steps  # kept forever
    with pytest.raises(ValueError, match="timezone"):
        plan(service_targets(RETENTION), dt.datetime(2025, 6, 1))  # noqa: DTZ001 - the naive value under test


def test_clamp_protects_only_the_rollup_inputs() -> None:
    steps = plan(service_targets(RETENTION), NOW)
    unrolled = NOW - dt.timedelta(days=120)

    clamped = {step.table: step.cutoff for step in clamp_counts(steps, unrolled)}

    assert clamped["count_intervals"] == clamped["line_counts"] == unrolled
    assert clamped["zone_intervals"] == NOW - dt.timedelta(days=90)
    assert clamp_counts(steps, None) == steps
    # A newer unrolled hour than the cutoff changes nothing.
    assert clamp_counts(steps, NOW) == steps


def test_license_decides_the_path() -> None:
    assert features_for_license("timescale").uses_policies
    apache = features_for_license("apache")
    assert (apache.continuous_aggregates, apache.policies, apache.compression) == (False, False, False)
    assert not features_for_license("something-new").uses_policies


def test_timescale_windows_stay_inside_the_raw_retention() -> None:
    policies = refresh_policies(Settings(retention=RetentionSettings(counts_days=90)))

    assert {p.start_offset for p in policies} == {dt.timedelta(days=89)}
    assert len(policies) == 4
    with pytest.raises(ValueError, match="at least 4 days"):
        refresh_policies(Settings(retention=RetentionSettings(counts_days=3)))
    drop_after = retention_policies(RETENTION)
    assert drop_after["counts_hourly_cagg"] == dt.timedelta(days=730)
    assert drop_after["sensor_readings"] == dt.timedelta(days=400)
    assert "dead_letters" not in drop_after  # a plain table: the service prunes it


def test_continuous_aggregates_bind_the_zone_as_a_literal() -> None:
    statements = [s.as_string(None) for s in continuous_aggregate_statements("Asia/Ho_Chi_Minh")]

    assert len(statements) == 4
    assert all("timescaledb.continuous" in s for s in statements)
    assert "time_bucket(INTERVAL '1 day', time, 'Asia/Ho_Chi_Minh')" in statements[2]
    with pytest.raises(ValueError, match="IANA"):
        continuous_aggregate_statements("Asia/Ho_Chi_Minh'; DROP TABLE x; --")
