"""The engine as a whole: congestion levels with hold time, bounded memory, time rules, and findings that fit
the event contract."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence

import pytest

from edge_agent.violations import CongestionReport
from event_contract.traffic import CongestionEvent, ViolationEvent
from tests.unit.test_violation_motion_rules import DOWN, LANE, frames, path
from tests.unit.violation_tracks import Row, at, engine, run, timeline, tracked

CONGESTION = {
    "congestion": [
        {"id": "cz", "zone": [[0.3, 0.1], [0.7, 0.1], [0.7, 0.9], [0.3, 0.9]], "flow": DOWN, "window_s": 10,
         "hold_s": 3, "report_every_s": 60}
    ]
}  # fmt: skip


def reports(rows_at: Mapping[float, Sequence[Row]]) -> list[CongestionReport]:
    eng = engine(CONGESTION)
    out: list[CongestionReport] = []
    for t, rows in sorted(rows_at.items()):
        out.extend(eng.update(tracked(rows), at(t), {}).congestion)
    return out


def test_levels_rise_with_a_standing_queue_and_fall_when_it_clears_without_flapping() -> None:
    rows: dict[float, list[Row]] = {}
    for t in timeline(120):
        if 20 <= t < 70:  # a queue covering the whole zone, standing still
            rows[t] = [(k + 1, 500.0, 890.0 - 110 * k) for k in range(7)]
        else:  # one free-flowing vehicle at a time, 2 box/s
            rows[t] = [(100 + int(t // 4), 450.0, 100 + 200 * (t % 4))]
    found = reports(rows)
    changes = [(r.previous_level, r.level) for r in found if r.previous_level is not None]
    assert found[0].previous_level is None
    assert found[0].level == "free"
    assert changes[0][0] == "free"
    assert changes[-1][1] == "free"
    assert "jammed" in [level for _, level in changes]
    assert len(changes) <= 6  # up through a few levels and back down: no flapping frame to frame
    jammed = next(r for r in found if r.level == "jammed")
    assert jammed.queue_length_ratio > 0.85
    assert jammed.vehicles >= 7
    assert jammed.window_s == 10
    for report in found:
        event = CongestionEvent(
            agent_id="edge-1",
            source_id="cam-1",
            time=report.time,
            zone_id=report.zone_id,
            level=report.level,
            previous_level=report.previous_level,
            window_s=report.window_s,
            vehicles=report.vehicles,
            queue_length_ratio=report.queue_length_ratio,
            occupancy=report.occupancy,
            speed_ratio=report.speed_ratio,
        )
        assert event.level == report.level


def test_periodic_reports_come_every_report_every_s() -> None:
    rows = {t: [(1 + int(t // 4), 450.0, 100 + 200 * (t % 4))] for t in timeline(200)}
    found = reports(rows)
    periodic = [r for r in found if r.previous_level is None]
    gaps = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(periodic)]
    assert len(periodic) == 4
    assert all(abs(g - 60) < 0.2 for g in gaps)


def test_memory_is_bounded_and_evictions_are_counted() -> None:
    eng = engine({"motion": {"max_tracks": 5, "forget_after_s": 2}, "rules": [
        {"type": "wrong_way", "id": "ww", "lane": LANE, "flow": DOWN}]})  # fmt: skip
    eng.update(tracked([(k, 100.0 + 50 * k, 500.0) for k in range(1, 11)]), at(0), {})
    assert eng.remembered_tracks == 5
    assert eng.tracks_evicted == 5
    eng.update(tracked([]), at(3), {})
    assert eng.remembered_tracks == 0  # forgotten after forget_after_s
    eng.update(tracked([(1, 100.0, 500.0)]), at(4), {})
    assert eng.expire(at(10)).findings == ()
    assert eng.remembered_tracks == 0


def test_time_rules() -> None:
    eng = engine({})
    with pytest.raises(ValueError, match="timezone-aware"):
        eng.update(tracked([]), dt.datetime(2026, 1, 1), {})  # noqa: DTZ001 - the point of the test
    eng.update(tracked([]), at(5), {})
    assert eng.update(tracked([(1, 500.0, 500.0)]), at(4), {}).findings == ()
    assert eng.frames_out_of_order == 1
    with pytest.raises(ValueError, match="twice"):
        eng.update(tracked([(1, 500.0, 500.0), (1, 600.0, 500.0)]), at(6), {})


def test_a_finding_makes_a_valid_violation_event() -> None:
    stopped = path(1, [(0, 500, 100), (2, 500, 500), (30, 500, 500)], "truck")
    found = run(
        engine({"rules": [{"type": "stopped_in_lane", "id": "sl", "lane": LANE, "flow": DOWN}]}), frames(stopped)
    )
    assert len(found) == 1
    f = found[0]
    event = ViolationEvent(
        agent_id="edge-1",
        source_id="cam-1",
        time=f.time,
        violation_type=f.violation_type,
        category=f.category,
        track_id=f.track_id,
        vehicle_class=f.vehicle_class,
        line_id=f.line_id,
        zone_id=f.zone_id,
        duration_s=f.duration_s,
        rule_id=f.rule_id,
        started_at=f.started_at,
        signal_state=f.signal_state,
        related_track_ids=f.related_track_ids,
    )
    assert event.category == "incident"
    assert event.started_at is not None
    assert event.started_at <= event.time
