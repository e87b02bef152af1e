"""The scene's traffic simulation on its own: arrivals, car following and the signal (no pixels)."""

from __future__ import annotations

import itertools

import numpy as np

from devstack.scene_meshes import vehicle_length_m
from devstack.scene_traffic import Arrival, LaneGeometry, LaneSpec, SignalSpec, plan_arrivals, simulate

FPS = 10
LANE = LaneSpec(x_m=-1.75, heading="towards", speed_mps=10.0, speed_spread=0.0, stops_at_signal=True)


def _arrival(planned_s: float) -> Arrival:
    return Arrival(0, "car", planned_s, 10.0, 0.0, (200, 200, 200), (90, 90, 90), 1.0)


def _geometry(stop_p: float | None) -> LaneGeometry:
    # Towards the camera: lane coordinate p = -y, entering at y = 60 m, leaving at y = 0.
    return LaneGeometry(enter_p=-60.0, exit_p=0.0, stop_p=stop_p)


def test_a_queue_stops_at_red_without_touching_and_drives_off_at_green() -> None:
    signal = SignalSpec(first_red_s=0.5, red_s=9.5, green_s=30.0)
    arrivals = [_arrival(t) for t in (0.0, 1.0, 2.0, 3.0)]
    ys = simulate((LANE,), arrivals, lambda _: _geometry(-30.0), signal, fps=FPS, n_frames=30 * FPS)
    leader = ys[0]
    # The leader stands exactly at its stop position (y = 30 m) during red ...
    red_frames = range(7 * FPS, 10 * FPS)
    assert np.allclose(leader[list(red_frames)], 30.0)
    # ... and is gone down the road soon after green.
    assert np.isnan(leader[20 * FPS])
    length = vehicle_length_m("car")
    for front, back in itertools.pairwise(ys):
        both = ~np.isnan(front) & ~np.isnan(back)
        assert both.any()
        gaps = back[both] - front[both] - length  # towards the camera: the follower has the larger y
        assert gaps.min() > 0.5, "followers keep a gap, even in the queue"
    for y in ys:
        seen = y[~np.isnan(y)]
        assert np.all(np.diff(seen) <= 1e-9), "vehicles never reverse"
    queued = [y[9 * FPS] for y in ys[1:] if not np.isnan(y[9 * FPS])]
    assert queued, "the others queue behind the leader"
    assert all(30.0 < q < 60.0 for q in queued)


def test_a_driver_too_close_to_stop_goes_through_the_amber() -> None:
    signal = SignalSpec(first_red_s=2.5, red_s=10.0, green_s=10.0)
    # At 10 m/s from y = 60 m the car is 5 m before the stop position at 2.5 s: it cannot stop at 5 m/s^2.
    ys = simulate((LANE,), [_arrival(0.0)], lambda _: _geometry(-30.0), signal, fps=FPS, n_frames=10 * FPS)
    assert np.nanmin(ys[0]) < 30.0 - 5.0


def test_lanes_without_a_signal_flow_freely() -> None:
    free = LANE.model_copy(update={"stops_at_signal": False})
    signal = SignalSpec(first_red_s=0.0, red_s=100.0, green_s=1.0)
    ys = simulate((free,), [_arrival(0.0)], lambda _: _geometry(None), signal, fps=FPS, n_frames=10 * FPS)
    speeds = -np.diff(ys[0][~np.isnan(ys[0])]) * FPS
    assert np.allclose(speeds, 10.0, atol=0.05)


def test_arrivals_are_deterministic_per_seed_and_follow_the_mix() -> None:
    lanes = (
        LANE.model_copy(update={"mix": {"car": 1.0, "motorbike": 3.0}}),
        LaneSpec(x_m=1.75, heading="away", speed_mps=8.0, share=2.0),
    )

    def plan(seed: int) -> list[Arrival]:
        return plan_arrivals(
            lanes,
            np.random.default_rng(seed),
            vehicles_per_minute=60.0,
            min_gap_m=5.0,
            last_arrival_s=600.0,
            max_stop_offset_px=3.0,
        )

    assert plan(1) == plan(1) != plan(2)
    arrivals = plan(1)
    first_lane = [a for a in arrivals if a.lane == 0]
    assert 0.6 < sum(a.kind == "motorbike" for a in first_lane) / len(first_lane) < 0.9
    assert len([a for a in arrivals if a.lane == 1]) > len(first_lane)  # twice the share
    assert all(0.25 <= a.stop_offset_px <= 3.0 for a in arrivals)
    times = [a.planned_s for a in arrivals]
    assert times == sorted(times)
