"""SilenceMonitor: silent after the threshold, live again on the next reading, each change reported once."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc_common.sensors.silence import SilenceMonitor

T0 = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_a_sensor_never_heard_from_is_silent_after_its_threshold_from_start() -> None:
    monitor = SilenceMonitor({"s1": 900.0}, started_at=T0)
    assert monitor.check(at(899)) == []
    [change] = monitor.check(at(900))
    assert (change.sensor_id, change.state, change.since) == ("s1", "silent", T0)
    assert change.reason == "no reading since start, 900 s ago (limit 900 s)"
    assert monitor.check(at(5000)) == []  # reported once


def test_silence_counts_from_the_last_reading_and_the_next_reading_revives_it() -> None:
    monitor = SilenceMonitor({"s1": 60.0, "s2": 600.0}, started_at=T0)
    monitor.observe("s1", at(10))
    monitor.observe("s2", at(10))
    assert monitor.check(at(69)) == []
    [change] = monitor.check(at(75))
    assert (change.sensor_id, change.state, change.since) == ("s1", "silent", at(10))
    assert change.reason == "no reading for 65 s (limit 60 s)"
    monitor.observe("s1", at(200))
    [change] = monitor.check(at(201))
    assert (change.sensor_id, change.state, change.since) == ("s1", "live", at(200))
    assert change.reason == "reading again after 190 s"
    assert monitor.check(at(202)) == []
    [change] = monitor.check(at(260))  # silent again, a new transition
    assert (change.sensor_id, change.state, change.since) == ("s1", "silent", at(200))


def test_a_late_observation_does_not_move_the_last_reading_back() -> None:
    monitor = SilenceMonitor({"s1": 60.0}, started_at=T0)
    monitor.observe("s1", at(50))
    monitor.observe("s1", at(20))
    assert monitor.check(at(100)) == []
    assert [c.state for c in monitor.check(at(110))] == ["silent"]


def test_unknown_sensors_are_ignored_and_changes_come_in_id_order() -> None:
    monitor = SilenceMonitor({"b": 10.0, "a": 10.0}, started_at=T0)
    monitor.observe("nobody", at(1))
    assert [c.sensor_id for c in monitor.check(at(10))] == ["a", "b"]
    assert monitor.sensor_ids == frozenset({"a", "b"})


def test_naive_times_and_bad_thresholds_are_refused() -> None:
    naive = dt.datetime(2026, 11, 26, 3, 0)  # noqa: DTZ001 (the point of the test)
    with pytest.raises(ValueError, match="timezone-aware"):
        SilenceMonitor({"s1": 1.0}, started_at=naive)
    monitor = SilenceMonitor({"s1": 1.0}, started_at=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        monitor.observe("s1", naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        monitor.check(naive)
    with pytest.raises(ValueError, match="must be > 0"):
        SilenceMonitor({"s1": 0.0}, started_at=T0)


steps = st.lists(
    st.tuples(st.sampled_from(["observe", "check"]), st.sampled_from(["s1", "s2"]), st.floats(0, 50)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps)
def test_reported_states_alternate_and_match_the_quiet_time(steps: list[tuple[str, str, float]]) -> None:
    """Whatever the order of readings and checks: per sensor the reported states alternate, starting with
    silent, and every report agrees with the time since the last reading at that check."""
    thresholds = {"s1": 30.0, "s2": 45.0}
    monitor = SilenceMonitor(thresholds, started_at=T0)
    now = 0.0
    last: dict[str, float] = {}
    reported: dict[str, list[str]] = {"s1": [], "s2": []}
    for action, sensor, advance in steps:
        now += advance
        if action == "observe":
            monitor.observe(sensor, at(now))
            last[sensor] = now
            continue
        changes = monitor.check(at(now))
        for change in changes:
            reported[change.sensor_id].append(change.state)
        for sensor_id, threshold in thresholds.items():
            quiet = now - last.get(sensor_id, 0.0)
            silent = reported[sensor_id][-1:] == ["silent"]
            revived_now = any(c.sensor_id == sensor_id and c.state == "live" for c in changes)
            if silent:
                assert quiet >= threshold
            elif not revived_now:
                assert quiet < threshold, "a sensor quiet past its threshold must be reported silent"
    for states in reported.values():
        assert states == ["silent", "live"] * (len(states) // 2) + ["silent"] * (len(states) % 2)
