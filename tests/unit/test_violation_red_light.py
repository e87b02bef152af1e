"""Red-light rule on plain tracks: crossings at red fire once; green/amber/grace, stops at the line, vehicles
already past it, first seen past it or beyond the segment's end never do; jitter and lost tracks."""

from __future__ import annotations

from collections.abc import Callable

from edge_agent.violations import Finding
from event_contract.traffic import SignalState
from tests.unit.violation_tracks import Row, at, engine, jitter, run, timeline

LINE_Y = 500.0
CONFIG = {
    "signals": [{"id": "s", "mqtt": "ctl"}],
    "rules": [
        {
            "type": "red_light",
            "id": "rl",
            "stop_line": {"start": [0.2, 0.5], "end": [0.8, 0.5]},
            "signal_id": "s",
            "grace_s": 0.5,
        }
    ],
}


def red_from(onset: float, until: float = 1e9) -> Callable[[float], dict[str, SignalState]]:
    return lambda t: {"s": "red" if onset <= t < until else "green"}


def constant(state: SignalState) -> Callable[[float], dict[str, SignalState]]:
    return lambda _t: {"s": state}


def drive(
    track: int, x: float, y0: float, speed: float, duration: float, *, hidden: tuple[float, float] | None = None
) -> list[tuple[float, list[Row]]]:
    frames: list[tuple[float, list[Row]]] = []
    for t in timeline(duration):
        if hidden is not None and hidden[0] <= t <= hidden[1]:
            frames.append((t, []))
        else:
            frames.append((t, [(track, x, y0 + speed * t)]))
    return frames


def findings(
    frames: list[tuple[float, list[Row]]], signal_at: Callable[[float], dict[str, SignalState]]
) -> list[Finding]:
    return run(engine(CONFIG), frames, signal_at=signal_at)


def test_crossing_at_red_fires_once_with_the_crossing_time() -> None:
    found = findings(drive(1, 500, 300, 200, 4.0), red_from(0.0))  # crosses y=500 at t=1.0
    assert len(found) == 1
    f = found[0]
    assert (f.rule_id, f.violation_type, f.category, f.track_id, f.signal_state) == (
        "rl",
        "red_light",
        "violation",
        1,
        "red",
    )
    assert f.line_id == "rl"
    assert f.vehicle_class == "car"
    assert f.started_at == at(1.1)
    assert at(1.1) <= f.time <= at(1.3)
    assert f.box_xyxy[3] > LINE_Y


def test_green_amber_unknown_and_the_grace_never_fire() -> None:
    states: tuple[SignalState, ...] = ("green", "amber", "unknown", "dark")
    for state in states:
        assert findings(drive(1, 500, 300, 200, 4.0), constant(state)) == []
    assert findings(drive(1, 500, 300, 200, 4.0), red_from(0.8)) == []  # crosses 0.3 s into red: grace 0.5 s
    assert findings(drive(1, 500, 300, 200, 4.0), lambda _t: {}) == []  # no signal state at all: unknown
    assert len(findings(drive(1, 500, 300, 200, 4.0), red_from(0.5))) == 1  # 0.6 s into red


def test_stopping_at_the_line_with_jitter_over_it_never_fires() -> None:
    noise = jitter(3, scale=2.0)
    frames: list[tuple[float, list[Row]]] = []
    for t in timeline(40.0):
        if t < 2.0:
            y = 300 + 99 * t  # arrives at y=498, 2 px before the line
        elif t < 30.0:
            y = noise(498.0)  # stands there through the red, its box jittering over the line
        else:
            y = 498 + 200 * (t - 30.0)  # drives off at green
        frames.append((t, [(1, noise(500.0), y)]))
    assert findings(frames, red_from(1.0, 30.0)) == []


def test_a_vehicle_already_past_the_line_at_red_onset_does_not_fire() -> None:
    frames: list[tuple[float, list[Row]]] = []
    for t in timeline(20.0):
        if t < 2.0:
            y = 300 + 107.5 * t  # crosses on green and stops 15 px (0.15 box) past the line
        elif t < 10.0:
            y = 515.0
        else:
            y = 515 + 200 * (t - 10.0)  # moves on during the red
        frames.append((t, [(1, 500.0, y)]))
    assert findings(frames, red_from(5.0)) == []


def test_first_seen_past_the_line_or_beyond_its_end_or_going_back_never_fires() -> None:
    assert findings(drive(1, 500, 520, 200, 3.0), red_from(0.0)) == []  # first seen past it
    assert findings(drive(1, 900, 300, 200, 4.0), red_from(0.0)) == []  # beyond the segment's end (x 200..800)
    assert findings(drive(1, 500, 800, -200, 4.0), red_from(0.0)) == []  # crossing the other way


def test_lost_while_crossing_and_found_again_fires_once() -> None:
    found = findings(drive(7, 500, 300, 200, 4.0, hidden=(0.8, 1.4)), red_from(0.0))
    assert [f.track_id for f in found] == [7]


def test_each_vehicle_fires_at_most_once_even_if_it_wobbles_back_over_the_line() -> None:
    frames: list[tuple[float, list[Row]]] = []
    for t in timeline(6.0):
        y = 300 + 200 * t if t < 1.5 else (600 - 150 * (t - 1.5) if t < 3.0 else 375 + 200 * (t - 3.0))
        frames.append((t, [(1, 500.0, y), (2, 300.0, 200 + 200 * t)]))
    found = findings(frames, red_from(0.0))
    assert sorted(f.track_id for f in found) == [1, 2]
