"""IntervalAggregator: wall-clock alignment, empty intervals, flush, buckets, grace, late data, gaps,
several lines and zones per interval, and the data-quality fields every event carries."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from edge_agent.analytics.coverage import CoverageSpan, CoverageUpdate
from edge_agent.analytics.epoch import epoch_us
from edge_agent.analytics.intervals import IntervalAggregator, IntervalConfig, IntervalEvent
from edge_agent.analytics.lines import Crossing
from edge_agent.analytics.zones import ZoneEntry, ZoneExit, ZoneObservation
from event_contract import SCHEMA_VERSION, CountIntervalEvent, Direction, EventBatch, ZoneIntervalEvent

NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def t(seconds: float) -> dt.datetime:
    return NOON + dt.timedelta(seconds=seconds)


def crossing(at: dt.datetime, vehicle_class: str = "car", direction: Direction = "in") -> Crossing:
    return Crossing(line_id="gate-1", track_id=1, vehicle_class=vehicle_class, direction=direction, timestamp=at)


class LineCounter:
    """One line's counts through an aggregator: the shape of the old per-line counter's tests."""

    def __init__(self, aggregator: IntervalAggregator) -> None:
        self.aggregator = aggregator
        self.add = aggregator.add_crossing

    def close_until(self, now: dt.datetime) -> tuple[CountIntervalEvent, ...]:
        return counts_only(self.aggregator.close_until(now))

    def flush(self, now: dt.datetime | None = None) -> tuple[CountIntervalEvent, ...]:
        return counts_only(self.aggregator.flush(now))

    @property
    def late_crossings(self) -> int:
        return self.aggregator.late_crossings

    @property
    def skipped_empty_intervals(self) -> int:
        return self.aggregator.skipped_empty_intervals


def counts_only(events: tuple[IntervalEvent, ...]) -> tuple[CountIntervalEvent, ...]:
    return tuple(e for e in events if isinstance(e, CountIntervalEvent))


def aggregator(
    interval_s: int = 60,
    grace_s: float = 2.0,
    max_gap_s: float = 3600.0,
    *,
    lines: tuple[str, ...] = ("gate-1",),
    zones: tuple[str, ...] = (),
    close_delay_s: float = 0.0,
) -> IntervalAggregator:
    config = IntervalConfig(interval_s=interval_s, grace_s=grace_s, max_gap_s=max_gap_s)
    return IntervalAggregator(
        "agent-1",
        "cam-1",
        config,
        line_ids=lines,
        zone_ids=zones,
        detector_backend="ssd_mobilenet_oidv4",
        close_delay_s=close_delay_s,
    )


def counter(interval_s: int = 60, grace_s: float = 2.0, max_gap_s: float = 3600.0) -> LineCounter:
    return LineCounter(aggregator(interval_s, grace_s, max_gap_s))


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
        IntervalAggregator("bad agent", "cam-1", IntervalConfig(), line_ids=("gate-1",), detector_backend="x")
    with pytest.raises(ValueError, match="zone id"):
        aggregator(zones=("bad zone",))
    with pytest.raises(ValidationError):
        IntervalConfig(interval_s=0)
    c = counter()
    with pytest.raises(ValueError, match="taxonomy"):
        c.add(crossing(t(1), "tank"))
    with pytest.raises(ValueError, match="line"):
        c.add(Crossing("other", 1, "car", "in", t(1)))
    with pytest.raises(ValueError, match="timezone"):
        c.add(crossing(dt.datetime(2026, 3, 2, 12, 0)))  # noqa: DTZ001
    with pytest.raises(ValidationError):
        IntervalConfig(interval_s=60, grace=3)  # type: ignore[call-arg]


def test_grace_from_config() -> None:
    c = LineCounter(aggregator(interval_s=15, grace_s=0))
    c.add(crossing(t(16)))
    assert [e.time for e in c.close_until(t(30))] == [t(15)]


# -- several lines and zones, one quality per interval ------------------------------------------


def analysed(
    start_s: float, end_s: float, at_s: float | None = None, frames: int = 1, dropped: int = 0
) -> CoverageUpdate:
    span = CoverageSpan(epoch_us(t(start_s)), epoch_us(t(end_s)), "analysed")
    return CoverageUpdate(t(end_s if at_s is None else at_s), (span,), frames, dropped)


def down(start_s: float, end_s: float) -> CoverageUpdate:
    return CoverageUpdate(t(end_s), (CoverageSpan(epoch_us(t(start_s)), epoch_us(t(end_s)), "down"),), 0, 0)


def test_every_line_reports_every_interval_with_the_same_quality() -> None:
    agg = aggregator(lines=("north", "south"))
    agg.add_crossing(Crossing("south", 3, "bus", "out", t(20)))
    for k in range(1, 121):  # 2 frames a second through 12:00:00.5 .. 12:01:00
        agg.add_coverage(analysed((k - 1) / 2, k / 2, dropped=1 if k % 10 == 0 else 0))
    events = counts_only(agg.close_until(t(125)))
    assert [(e.time, e.line_id, totals(e)) for e in events] == [
        (t(0), "north", {}),
        (t(0), "south", {("bus", "out"): 1}),
        (t(60), "north", {}),
        (t(60), "south", {}),
    ]
    first, second = events[0].quality, events[2].quality
    assert first is not None
    assert second is not None
    assert events[1].quality == first
    assert (first.analysed_s, first.frames_analysed, first.frames_dropped, first.coverage) == (60.0, 119, 11, 1.0)
    assert (first.expected_s, first.downtime_s, first.detector_backend) == (60.0, 0.0, "ssd_mobilenet_oidv4")
    # The frame at exactly 12:01:00 belongs to the second interval; its credited gap to the first.
    assert (second.analysed_s, second.frames_analysed, second.coverage) == (0.0, 1, 0.0)


def test_a_span_over_an_interval_boundary_is_split() -> None:
    agg = aggregator(interval_s=10)
    agg.add_coverage(analysed(8.0, 12.5))
    agg.add_coverage(down(12.5, 30.0))
    events = counts_only(agg.close_until(t(45)))
    quality = [(e.time, e.quality.analysed_s, e.quality.downtime_s) for e in events if e.quality]
    assert quality == [(t(0), 2.0, 0.0), (t(10), 2.5, 7.5), (t(20), 0.0, 10.0), (t(30), 0.0, 0.0)]


def test_quiet_and_dead_intervals_look_different() -> None:
    agg = aggregator()
    for k in range(1, 61):
        agg.add_coverage(analysed(k - 1, k))  # watched all of 12:00, nothing crossed
    agg.add_coverage(down(60, 180))  # then the camera died, right after its frame at 12:01:00
    quiet, _, dead = counts_only(agg.close_until(t(185)))
    assert quiet.counts == dead.counts == ()
    assert quiet.quality is not None
    assert dead.quality is not None
    assert (quiet.quality.coverage, quiet.quality.downtime_s) == (1.0, 0.0)
    assert (dead.quality.coverage, dead.quality.downtime_s, dead.quality.frames_analysed) == (0.0, 60.0, 0)


def test_late_coverage_is_counted_not_misfiled() -> None:
    agg = aggregator(grace_s=0)
    agg.add_coverage(analysed(0, 30))
    (event,) = counts_only(agg.close_until(t(60)))
    agg.add_coverage(analysed(50, 70))
    assert agg.late_coverage_s == 10.0
    (later,) = counts_only(agg.close_until(t(120)))
    assert event.quality is not None
    assert later.quality is not None
    assert (event.quality.analysed_s, later.quality.analysed_s) == (30.0, 10.0)


def observation(
    at_s: float,
    occupancy: dict[str, int] | None,
    entries: tuple[tuple[int, str], ...] = (),
    exits: tuple[tuple[int, str, float, float], ...] = (),
    longest_inside_s: float | None = None,
) -> ZoneObservation:
    return ZoneObservation(
        zone_id="stop-1",
        timestamp=t(at_s),
        occupancy=None if occupancy is None else tuple(sorted(occupancy.items())),
        entries=tuple(ZoneEntry(tid, cls, t(at_s)) for tid, cls in entries),
        exits=tuple(ZoneExit(tid, cls, t(entered), t(exited)) for tid, cls, entered, exited in exits),
        longest_inside_s=longest_inside_s,
    )


def zone_events(events: tuple[IntervalEvent, ...]) -> list[ZoneIntervalEvent]:
    return [e for e in events if isinstance(e, ZoneIntervalEvent)]


def test_zone_interval_statistics() -> None:
    agg = aggregator(lines=(), zones=("stop-1",))
    agg.add_zone(observation(1, {"car": 1}, entries=((1, "car"),), longest_inside_s=0.0))
    agg.add_zone(
        observation(2, {"car": 1, "motorbike": 2}, entries=((2, "motorbike"), (3, "motorbike")), longest_inside_s=1.0)
    )
    agg.add_zone(observation(3, {"motorbike": 1}, exits=((1, "car", 1, 2.5),), longest_inside_s=1.0))
    dwells = [(10 + k, 10 + k + d) for k, d in enumerate([4.0, 8.0, 1.0, 30.0, 2.0])]
    agg.add_zone(
        observation(
            50, {}, exits=tuple((9 + k, "motorbike", a, b) for k, (a, b) in enumerate(dwells)), longest_inside_s=None
        )
    )
    agg.add_zone(observation(58, {"bus": 1}, entries=((20, "bus"),), longest_inside_s=0.0))
    agg.add_zone(observation(59, {"bus": 1}, longest_inside_s=1.0))
    (event,) = zone_events(agg.close_until(t(62)))
    assert (event.zone_id, event.interval_s, event.time) == ("stop-1", 60, t(0))
    assert (event.entries, event.exits) == (4, 6)
    assert event.occupancy_max == 3
    assert event.occupancy_mean == pytest.approx((1 + 3 + 1 + 0 + 1 + 1) / 6, abs=1e-3)
    all_dwells = sorted([1.5, 4.0, 8.0, 1.0, 30.0, 2.0])
    assert event.dwell_mean_s == pytest.approx(sum(all_dwells) / 6, abs=1e-3)
    assert (event.dwell_max_s, event.dwell_p95_s) == (30.0, 30.0)  # nearest rank: ceil(0.95 * 6) = 6th
    assert event.dwell_longest_inside_s == 1.0  # the bus, at the last analysed frame (12:00:59)
    by_class = {c.vehicle_class: (c.entries, c.exits, c.occupancy_max) for c in event.classes}
    assert by_class == {"motorbike": (2, 5, 2), "car": (1, 1, 1), "bus": (1, 0, 1)}


def test_zone_without_frames_has_unknown_occupancy_but_reports_exits() -> None:
    agg = aggregator(lines=(), zones=("stop-1",))
    agg.add_zone(observation(5, {"car": 1}, entries=((1, "car"),), longest_inside_s=0.0))
    agg.add_coverage(down(6, 120))
    # A tick at 12:01:10 expires the car (exit dated at its last sighting, 12:00:05) without a frame.
    agg.add_zone(observation(70, None, exits=((1, "car", 5, 5),)))
    agg.add_zone(observation(75, None, longest_inside_s=None))
    first, second = zone_events(agg.close_until(t(125)))
    assert (first.entries, first.exits, first.occupancy_max, first.dwell_max_s) == (1, 1, 1, 0.0)
    assert (second.entries, second.exits) == (0, 0)
    assert (second.occupancy_mean, second.occupancy_max, second.dwell_longest_inside_s) == (None, None, None)
    assert second.quality.coverage == 0.0
    assert second.quality.downtime_s == 60.0


def test_zone_exits_wait_for_the_close_delay() -> None:
    agg = aggregator(lines=(), zones=("stop-1",), close_delay_s=2.0)
    agg.add_zone(observation(30, {"car": 1}, entries=((1, "car"),)))
    assert agg.close_until(t(62)) == ()  # 12:00 ended 2 s ago: grace is over, the zones' delay is not
    agg.add_zone(observation(63, {}, exits=((1, "car", 30, 59.5),)))  # decided at 12:01:03, dated 12:00:59.5
    (event,) = zone_events(agg.close_until(t(64)))
    assert (event.time, event.exits, event.dwell_max_s) == (t(0), 1, 29.5)
    assert agg.late_zone_events == 0


def test_every_event_of_one_interval_fits_one_batch() -> None:
    agg = aggregator(lines=("a", "b"), zones=("stop-1",))
    agg.add_coverage(analysed(0, 30))
    events = agg.close_until(t(200))
    assert [type(e).__name__ for e in events[:3]] == ["CountIntervalEvent", "CountIntervalEvent", "ZoneIntervalEvent"]
    batch = EventBatch(agent_id="agent-1", events=events)
    assert len(batch.events) == 9
    assert {e.schema_version for e in batch.events} == {SCHEMA_VERSION}
