"""Wrong way, illegal stopping and lane violations on plain tracks: positives, near misses, jitter, lost tracks."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

from tests.unit.violation_tracks import Row, at, engine, jitter, run, timeline

LANE = [[0.3, 0.0], [0.7, 0.0], [0.7, 1.0], [0.3, 1.0]]
DOWN = {"start": [0.5, 0.1], "end": [0.5, 0.9]}
ZONE = [[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]]


def path(track: int, points: list[tuple[float, float, float]], cls: str = "car") -> list[tuple[float, Row | None]]:
    """Per-frame rows interpolated between (t, x, y) keyframes; None outside them."""
    rows: list[tuple[float, Row | None]] = []
    last = points[-1][0]
    for t in timeline(last):
        for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(points):
            if t0 <= t <= t1:
                k = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                rows.append((t, (track, x0 + k * (x1 - x0), y0 + k * (y1 - y0), cls)))
                break
    return rows


def frames(
    *tracks: Sequence[tuple[float, Row | None]], hide: tuple[float, float] | None = None
) -> list[tuple[float, list[Row]]]:
    by_time: dict[float, list[Row]] = {}
    for track in tracks:
        for t, row in track:
            by_time.setdefault(t, [])
            if row is not None and not (hide is not None and hide[0] <= t <= hide[1]):
                by_time[t].append(row)
    return sorted(by_time.items())


# -- wrong way -------------------------------------------------------------------------------------

WRONG_WAY = {"rules": [{"type": "wrong_way", "id": "ww", "lane": LANE, "flow": DOWN}]}


def test_sustained_motion_against_the_flow_fires_once() -> None:
    found = run(engine(WRONG_WAY), frames(path(1, [(0, 500, 950), (6, 500, 350)])))  # 1 box/s up
    assert [(f.track_id, f.violation_type, f.zone_id) for f in found] == [(1, "wrong_way", "ww")]
    assert found[0].time <= at(2.6)
    assert found[0].duration_s is not None
    assert found[0].duration_s >= 1.5


def test_with_the_flow_standing_jittering_turning_or_reversing_a_little_never_fires() -> None:
    noise = jitter(5, scale=3.0)
    standing = [(t, (2, noise(500), noise(600), "car")) for t in timeline(20)]
    turning = path(3, [(0, 450, 100), (2, 450, 300), (3, 460, 260), (4, 560, 250), (5, 560, 420)])  # 0.4 box back
    across = path(4, [(0, 320, 600), (4, 680, 480)])  # crosses the lane, drifting up: 72 degrees off the flow
    reversing = path(5, [(0, 400, 700), (2, 400, 700), (4, 400, 620), (10, 400, 620)])  # parks 0.8 box back
    found = run(engine(WRONG_WAY), frames(path(1, [(0, 500, 50), (6, 500, 950)]), standing, turning, across, reversing))
    assert found == []


def test_wrong_way_lost_and_found_again_fires_once() -> None:
    found = run(engine(WRONG_WAY), frames(path(1, [(0, 500, 950), (8, 500, 150)]), hide=(1.0, 1.8)))
    assert [f.track_id for f in found] == [1]


# -- illegal stopping ------------------------------------------------------------------------------

STOPPING = {"rules": [{"type": "illegal_stopping", "id": "ns", "zone": ZONE, "max_stop_s": 10}]}


def test_stopping_longer_than_the_limit_fires_once_per_visit() -> None:
    noise = jitter(11, scale=2.0)
    stop: list[tuple[float, Row | None]] = [(t, (1, noise(500), noise(500), "van")) for t in timeline(30) if t >= 2]
    arrive = path(1, [(0, 500, 100), (2, 500, 500)], "van")[:-1]
    found = run(engine(STOPPING), frames(arrive + stop))
    assert len(found) == 1
    f = found[0]
    assert (f.track_id, f.violation_type, f.vehicle_class) == (1, "illegal_stopping", "van")
    assert f.started_at is not None
    assert at(1.0) <= f.started_at <= at(2.5)
    assert f.duration_s is not None
    assert 10.0 < f.duration_s < 11.0


def test_slow_traffic_brief_stops_and_stops_outside_never_fire() -> None:
    slow = path(1, [(0, 450, 250), (20, 450, 750)])  # 0.25 box/s, slow but moving
    brief = path(2, [(0, 550, 200), (1, 550, 400), (8, 550, 400), (9, 550, 800)])  # 7 s stop
    outside = path(3, [(0, 850, 500), (30, 850, 500)])
    twice = path(4, [(0, 350, 250), (1, 350, 350), (8, 350, 350), (10, 350, 450), (17, 350, 450), (19, 350, 800)])
    assert run(engine(STOPPING), frames(slow, brief, outside, twice)) == []


def test_a_stopped_vehicle_found_again_under_a_new_id_keeps_its_stop() -> None:
    first = [(t, (1, 500.0, 500.0, "car")) for t in timeline(6)]
    second = [(t, (2, 501.0, 500.0, "car")) for t in timeline(16) if t >= 8]  # the tracker lost it for 2 s
    eng = engine(STOPPING)
    found = run(eng, frames(first, second))
    assert [f.track_id for f in found] == [2]
    assert found[0].started_at is not None
    assert found[0].started_at < at(1.0)
    assert eng.tracks_relinked == 1


# -- lane violation --------------------------------------------------------------------------------


def lane_rule(**extra: Any) -> dict[str, Any]:
    return {
        "rules": [{"type": "lane_violation", "id": "lv", "lane": LANE, "forbidden_classes": ["motorbike"], **extra}]
    }


def test_a_forbidden_class_in_the_lane_fires_once_an_allowed_one_never() -> None:
    bike = path(1, [(0, 500, 100), (8, 500, 900)], "motorbike")
    car = path(2, [(0, 400, 100), (8, 400, 900)], "car")
    found = run(engine(lane_rule()), frames(bike, car))
    assert [(f.track_id, f.vehicle_class, f.violation_type) for f in found] == [(1, "motorbike", "lane_violation")]
    assert found[0].time >= at(1.0)


def test_a_class_that_flickers_is_judged_only_once_the_vote_settles() -> None:
    rows = [(t, (1, 500.0, 100 + 100 * t, "motorbike" if (round(t * 10) % 2 or t > 5) else "car")) for t in timeline(8)]
    found = run(engine(lane_rule()), frames(rows))
    assert len(found) == 1
    assert found[0].time >= at(6.0)


def test_cutting_across_the_lane_briefly_does_not_fire() -> None:
    cut = path(1, [(0, 900, 400), (0.8, 500, 450), (1.6, 100, 500)], "motorbike")  # 0.5 s in the lane
    assert run(engine(lane_rule()), frames(cut)) == []


def test_lane_hours_are_local_time() -> None:
    bike = path(1, [(0, 500, 100), (8, 500, 900)], "motorbike")
    # T0 is 01:00 UTC = 08:00 in Asia/Ho_Chi_Minh
    morning = lane_rule(hours=[{"start": "06:00", "end": "09:00"}], timezone="Asia/Ho_Chi_Minh")
    noon = lane_rule(hours=[{"start": "11:00", "end": "13:00"}], timezone="Asia/Ho_Chi_Minh")
    assert len(run(engine(morning), frames(bike))) == 1
    assert run(engine(noon), frames(bike)) == []
    assert at(0).astimezone(dt.timezone(dt.timedelta(hours=7))).hour == 8
