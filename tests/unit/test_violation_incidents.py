"""Incidents on plain tracks: a vehicle stopped in a lane (not a queue), sudden queue growth, possible accidents."""

from __future__ import annotations

from collections.abc import Callable

from event_contract.traffic import SignalState
from tests.unit.test_violation_motion_rules import DOWN, LANE, frames, path
from tests.unit.violation_tracks import Row, at, engine, jitter, run, timeline

STOPPED = {
    "signals": [{"id": "s", "mqtt": "ctl"}],
    "rules": [
        {
            "type": "stopped_in_lane",
            "id": "sl",
            "lane": LANE,
            "flow": DOWN,
            "max_stop_s": 10,
            "stop_line": {"start": [0.3, 0.8], "end": [0.7, 0.8]},
            "signal_id": "s",
        }
    ],
}


def signal(red_until: float) -> Callable[[float], dict[str, SignalState]]:
    return lambda t: {"s": "red" if t < red_until else "green"}


def test_a_breakdown_in_the_lane_fires_once() -> None:
    noise = jitter(2)
    broken: list[tuple[float, Row | None]] = [(t, (1, noise(500), noise(400), "car")) for t in timeline(20) if t >= 1]
    found = run(engine(STOPPED), frames(path(1, [(0, 500, 200), (1, 500, 400)])[:-1] + broken), signal_at=signal(0))
    assert [(f.track_id, f.category, f.violation_type) for f in found] == [(1, "incident", "stopped_in_lane")]
    assert at(11.0) <= found[0].time <= at(12.5)


def test_a_queue_at_a_red_light_never_fires_but_a_lone_stop_far_from_the_line_does() -> None:
    queue = [
        path(1, [(0, 500, 300), (2, 500, 795), (25, 500, 795), (27, 500, 1000)]),  # head, 5 px before the line
        path(2, [(0, 510, 200), (2.5, 510, 685), (26, 510, 685), (28, 510, 1000)]),
        path(3, [(0, 495, 100), (3, 495, 570), (27, 495, 570), (29, 495, 1000)]),
    ]
    assert run(engine(STOPPED), frames(*queue), signal_at=signal(24)) == []
    lone = path(4, [(0, 500, 100), (2, 500, 300), (25, 500, 300)])
    assert [f.track_id for f in run(engine(STOPPED), frames(lone), signal_at=signal(24))] == [4]


def test_brief_stops_and_slow_traffic_do_not_fire() -> None:
    brief = path(1, [(0, 500, 100), (1, 500, 300), (9, 500, 300), (11, 500, 900)])
    slow = path(2, [(0, 400, 100), (25, 400, 700)])
    assert run(engine(STOPPED), frames(brief, slow), signal_at=signal(0)) == []


QUEUE = {
    "rules": [
        {
            "type": "queue_growth",
            "id": "qg",
            "zone": [[0.3, 0.1], [0.7, 0.1], [0.7, 0.9], [0.3, 0.9]],
            "flow": DOWN,
            "min_growth": 0.4,
            "within_s": 20,
        }
    ]
}


def queue(arrival_every_s: float, count: int, duration: float) -> list[tuple[float, list[Row]]]:
    """Vehicles that join a queue from y=890 upwards (110 px apart), one every ``arrival_every_s``."""
    tracks = []
    for k in range(count):
        arrive = 1.0 + k * arrival_every_s
        stop_y = 890 - 110 * k
        tracks.append(path(k + 1, [(arrive - 1, 500, stop_y - 150), (arrive, 500, stop_y), (duration, 500, stop_y)]))
    return frames(*tracks)


def test_sudden_queue_growth_fires_once_naming_the_tail() -> None:
    found = run(engine(QUEUE), queue(1.0, 7, 40.0))
    assert len(found) == 1
    f = found[0]
    assert f.violation_type == "queue_growth"
    assert f.category == "incident"
    assert f.track_id == max(f.related_track_ids) + 1  # the tail (the latest to join) ...
    assert set(f.related_track_ids) == set(range(1, f.track_id))  # ... with the queue ahead of it related


def test_slow_queue_growth_does_not_fire() -> None:
    assert run(engine(QUEUE), queue(12.0, 7, 90.0)) == []  # at most 0.28 of the zone per 20 s


ACCIDENT = {"rules": [{"type": "possible_accident", "id": "pa", "stopped_for_s": 5}]}


def test_a_collision_then_both_stopped_is_a_possible_accident() -> None:
    lead = path(1, [(0, 500, 600), (20, 500, 600)])
    hitter = path(2, [(0, 505, 200), (1.0, 505, 500), (1.2, 505, 505), (20, 505, 505)])  # 3 box/s, stops in 0.2 s
    found = run(engine(ACCIDENT), frames(lead, hitter))
    assert [(f.track_id, f.related_track_ids, f.violation_type) for f in found] == [(2, (1,), "possible_accident")]
    assert at(6.0) <= found[0].time <= at(8.0)


def test_ordinary_braking_into_a_queue_and_passing_close_are_not_accidents() -> None:
    lead = path(1, [(0, 500, 600), (30, 500, 600)])
    # brakes at about 0.5 box/s^2 from 2 box/s to stop right behind the lead
    braking = [(t, (2, 500.0, 100 + 200 * t - 25 * t * t if t < 4 else 500.0, "car")) for t in timeline(30)]
    passing_a = path(3, [(0, 800, 100), (6, 800, 900)])
    passing_b = path(4, [(0, 860, 900), (6, 860, 100)])  # boxes overlap as they pass
    assert run(engine(ACCIDENT), frames(lead, braking, passing_a, passing_b)) == []
