"""IntervalCounter: wall-clock alignment, empty intervals, flush, buckets, grace, late and gaps."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from edge_agent.analytics.intervals import IntervalConfig, IntervalCounter
from edge_agent.analytics.lines import Crossing
from event_contract import CountIntervalEvent, Direction, EventBatch

NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def t(seconds: float) -> dt.datetime:
    return NOON + dt.timedelta(seconds=seconds)


def crossing(at: dt.datetime, vehicle_class: str = "car", direction: Direction = "in") -> Crossing:
    return Crossing(line_id="gate-1", track_id=1, vehicle_class=vehicle_class, direction=direction, timestamp=at)


def counter(interval_s: int = 60, grace_s: float = 2.0, max_gap_s: float = 3600.0) -> IntervalCounter:
    return IntervalCounter("agent-1", "cam-1", "gate-1", interval_s, grace_s=grace_s, max_gap_s=max_gap_s)


def totals(event: CountIntervalEvent) -> dict[tuple[str, str], int]:
    return {(b.vehicle_class, b.direction): b.count for b in event.counts}


def test_intervals_align_to_the_wall_clock() -> None:
    c = counter(interval_s=300)
    c.add(crossing(t(7 * 60 + 31)))  # 12:07:31 -> interval 12:05:00
    c.add(crossing(t(10 * 60)))  # exactly 12:10:00 -> the NEXT interval
    events = c.close_until(t(15 * 60 + 5))
    assert [e.time for e in events] == [t(5 * 60), t(10 * 60)]
    assert [totals(e) for e in events] == [{("car", "in"): 1}, {("car", "in"): 1}]
    assert all(e.interval_s == 300 and e.time.tzinfo == dt.UTC for e in events)


def test_alignment_is_utc_whatever_the_input_zone() -> None:
    hanoi = dt.timezone(dt.timedelta(hours=7))
    c = counter(interval_s=3600)
    c.add(crossing(dt.datetime(2026, 3, 2, 19, 40, tzinfo=hanoi)))  # 12:40 UTC
    (event,) = c.flush()
    assert event.time == t(0)


def test_empty_intervals_after_the_first_are_reported() -> None:
    c = counter()
    c.add(crossing(t(10)))
    events = c.close_until(t(5 * 60 + 10))
    assert [e.time for e in events] == [t(60 * k) for k in range(5)]
    assert [len(e.counts) for e in events] == [1, 0, 0, 0, 0]
    assert len({e.event_id for e in events}) == 5


def test_nothing_is_reported_before_the_counter_first_sees_time() -> None:
    c = counter()
    assert c.close_until(t(30)) == ()  # anchors on 12:00, still open
    events = c.close_until(t(3 * 60))  # 12:02 ends at 12:03:00, +2 s grace: still open
    assert [(e.time, e.counts) for e in events] == [(t(0), ()), (t(60), ())]


def test_counts_per_class_and_direction() -> None:
    c = counter()
    for vehicle_class, direction, n in [("motorbike", "in", 5), ("motorbike", "out", 3), ("car", "in", 2)]:
        for i in range(n):
            c.add(crossing(t(i), vehicle_class, direction))  # type: ignore[arg-type]
    (event,) = c.close_until(t(62))
    assert totals(event) == {("motorbike", "in"): 5, ("motorbike", "out"): 3, ("car", "in"): 2}
    assert [(b.vehicle_class, b.direction) for b in event.counts] == [
        ("motorbike", "in"),
        ("motorbike", "out"),
        ("car", "in"),
    ]  # taxonomy order, then in/out: the same counts always give the same event body
    assert (event.agent_id, event.source_id, event.line_id) == ("agent-1", "cam-1", "gate-1")


def test_grace_keeps_an_interval_open_for_a_late_crossing() -> None:
    c = counter(grace_s=2.0)
    c.add(crossing(t(10)))
    assert c.close_until(t(61)) == ()  # 12:00 ended at 12:01:00; grace runs to 12:01:02
    c.add(crossing(t(59.5), "truck"))  # reaches the counter after the interval's end
    (event,) = c.close_until(t(62))
    assert totals(event) == {("car", "in"): 1, ("truck", "in"): 1}
    assert c.late_crossings == 0


def test_crossing_for_an_emitted_interval_is_dropped_and_counted() -> None:
    c = counter(grace_s=0.0)
    c.add(crossing(t(10)))
    (event,) = c.close_until(t(60))
    c.add(crossing(t(59.5)))
    assert c.late_crossings == 1
    (next_event,) = c.close_until(t(120))
    assert next_event.time == t(60)
    assert next_event.counts == ()
    assert totals(event) == {("car", "in"): 1}


def test_flush_emits_the_open_interval_and_starts_afresh() -> None:
    c = counter()
    c.add(crossing(t(5)))
    c.add(crossing(t(70), direction="out"))
    events = c.flush()
    assert [(e.time, totals(e)) for e in events] == [(t(0), {("car", "in"): 1}), (t(60), {("car", "out"): 1})]
    assert c.flush() == ()
    # After a flush an interval already reported is never reported again.
    c.add(crossing(t(100)))
    assert c.late_crossings == 1
    c.add(crossing(t(200)))
    assert [e.time for e in c.flush()] == [t(180)]


def test_flush_with_now_reports_the_current_interval_even_when_quiet() -> None:
    c = counter()
    c.close_until(t(10))
    events = c.flush(t(150))
    assert [(e.time, e.counts) for e in events] == [(t(0), ()), (t(60), ()), (t(120), ())]


def test_close_after_flush_does_not_report_flushed_intervals_again() -> None:
    c = counter()
    c.close_until(t(10))
    c.flush(t(30))
    assert c.close_until(t(40)) == ()
    assert [e.time for e in c.close_until(t(125))] == [t(60)]


def test_a_long_gap_is_not_reported_as_a_quiet_road() -> None:
    # The pipeline calls close_until on every frame; the stream stalls after 12:00:30 for two hours.
    c = counter(max_gap_s=600)
    c.add(crossing(t(10)))
    assert c.close_until(t(30)) == ()
    c.add(crossing(t(2 * 3600 + 5)))  # first frame after the stall, 14:00:05
    events = c.close_until(t(2 * 3600 + 5))
    assert [e.time for e in events] == [t(0)]  # 12:01 .. 13:59 were not watched: not reported
    assert c.skipped_empty_intervals == 119
    # Back to normal: the busy interval, then quiet ones are reported again.
    assert [len(e.counts) for e in c.close_until(t(2 * 3600 + 62))] == [1]
    assert [e.counts for e in c.close_until(t(2 * 3600 + 122))] == [()]


def test_events_fit_the_contract_and_ids_carry_the_interval_start() -> None:
    c = counter()
    c.add(crossing(t(1), "three_wheeler", "out"))
    events = c.close_until(t(200))
    batch = EventBatch(agent_id="agent-1", events=events)
    assert len(batch.events) == 3
    for event in events:
        unix_ms = event.event_id.int >> 80
        assert unix_ms == int(event.time.timestamp() * 1000)
        assert event.event_id.version == 7


def test_earlier_crossing_before_anything_is_emitted_moves_the_first_interval() -> None:
    c = counter()
    c.add(crossing(t(130)))
    c.add(crossing(t(20)))  # out of order, but nothing reported yet
    events = c.close_until(t(190))
    assert [(e.time, len(e.counts)) for e in events] == [(t(0), 1), (t(60), 0), (t(120), 1)]
    assert c.late_crossings == 0


def test_input_is_validated() -> None:
    with pytest.raises(ValueError, match="agent_id"):
        IntervalCounter("bad agent", "cam-1", "gate-1", 60)
    with pytest.raises(ValidationError):
        IntervalCounter("a", "cam-1", "gate-1", 0)
    c = counter()
    with pytest.raises(ValueError, match="taxonomy"):
        c.add(crossing(t(1), "tank"))
    with pytest.raises(ValueError, match="line"):
        c.add(Crossing("other", 1, "car", "in", t(1)))
    with pytest.raises(ValueError, match="timezone"):
        c.add(crossing(dt.datetime(2026, 3, 2, 12, 0)))  # noqa: DTZ001
    with pytest.raises(ValidationError):
        IntervalConfig(interval_s=60, grace=3)  # type: ignore[call-arg]


def test_from_config() -> None:
    c = IntervalCounter.from_config("agent-1", "cam-1", "gate-1", IntervalConfig(interval_s=15, grace_s=0))
    c.add(crossing(t(16)))
    assert [e.time for e in c.close_until(t(30))] == [t(15)]
