"""Generated scenes with ground truth for the violation and incident rules: boxes per frame, no pixels.

A pole camera looks along a four-lane road (1280x720, 10 fps): lanes 0 and 1 carry traffic towards the camera
(down the image), lanes 2 and 3 away from it. Perspective is modelled by a box scale that grows linearly down
the image (0.45 at the top, 1.0 at the bottom) and a matching metres-to-pixels map, so vehicles far away are
small and slow in pixels. Vehicles follow scripted kinematics (``Path``: cruise, brake to a stop at a given
place, wait, pull away, crash) or, for queues, the car-following simulation of ``devstack.scene_traffic``.

Each scene exercises ONE rule (the lane scene two), with its positives and the hard negatives the issue names:
stopping just before the line at red, crossing on green or amber, a vehicle already past the line at red
onset, a vehicle crossing beyond the stop line's end, slow but moving traffic, brief stops under the limit, an
allowed class in the lane, a vehicle cutting across a lane, a restricted class outside its hours, normal queues
at a red light, two vehicles passing close, hard braking without contact. The truth of each positive is a time
window in which the finding may be reported, decided by the script (the place and time it crossed, stopped,
crashed), never by the rules under test.

``noisy(scene, seed)`` derives the detector's view: box jitter, missed detections (single frames and short
bursts), false-positive boxes and class flicker. Everything is a pure function of the scene seed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from devstack.scene_meshes import VehicleKind, vehicle_length_m
from devstack.scene_traffic import Arrival, LaneGeometry, LaneSpec, SignalSpec, simulate
from edge_agent.violations.config import ViolationRulesConfig
from event_contract.taxonomy import VEHICLE_CLASSES
from event_contract.traffic import SignalState

WIDTH, HEIGHT, FPS = 1280, 720, 10
SCALE_TOP = 0.45
SCALE_SLOPE = (1.0 - SCALE_TOP) / HEIGHT
PX_PER_M = 25.0
"""Pixels per metre along the road at the bottom of the image (scale 1)."""
ROAD_TOP = (500.0, 780.0)
ROAD_BOTTOM = (120.0, 1160.0)
ROAD_WIDTH_M = 14.0
BASE_BOX: dict[str, tuple[float, float]] = {
    "car": (100.0, 130.0),
    "van": (105.0, 150.0),
    "truck": (130.0, 210.0),
    "bus": (140.0, 250.0),
    "motorbike": (35.0, 75.0),
}
"""Box (width, height) in pixels at scale 1."""
START_UTC = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
"""08:00 in Asia/Ho_Chi_Minh: inside the morning truck restriction of the lane scenes."""
RULES = ("red_light", "wrong_way", "illegal_stopping", "lane_violation", "stopped_in_lane", "queue_growth")
RULES_ALL = (*RULES, "possible_accident")


# -- road geometry ---------------------------------------------------------------------------------


def scale_at(y: float) -> float:
    return SCALE_TOP + SCALE_SLOPE * y


def y_of_p(p: float) -> float:
    """Image y of the point ``p`` metres down the road from the image's top edge."""
    return SCALE_TOP * (math.exp(SCALE_SLOPE * PX_PER_M * p) - 1.0) / SCALE_SLOPE


def p_of_y(y: float) -> float:
    return math.log(scale_at(y) / SCALE_TOP) / (SCALE_SLOPE * PX_PER_M)


def x_at(f: float, y: float) -> float:
    """Image x of the point a fraction ``f`` across the road (0 = left edge) at image y."""
    top = ROAD_TOP[0] + (ROAD_TOP[1] - ROAD_TOP[0]) * f
    bottom = ROAD_BOTTOM[0] + (ROAD_BOTTOM[1] - ROAD_BOTTOM[0]) * f
    return top + (bottom - top) * y / HEIGHT


def lane_f(lane: float) -> float:
    """Fraction across the road of the centre of lane ``lane`` (0..3; fractions are between lanes)."""
    return (lane + 0.5) / 4.0


def norm(x: float, y: float) -> tuple[float, float]:
    return (round(x / WIDTH, 5), round(y / HEIGHT, 5))


def lane_polygon(first: float, last: float, y_from: float, y_to: float) -> list[tuple[float, float]]:
    """Normalised quad over lanes ``first..last`` (inclusive) between image rows ``y_from`` and ``y_to``."""
    f0, f1 = first / 4.0, (last + 1) / 4.0
    return [norm(x_at(f0, y_from), y_from), norm(x_at(f1, y_from), y_from), norm(x_at(f1, y_to), y_to),
            norm(x_at(f0, y_to), y_to)]  # fmt: skip


def flow_arrow(lane: float, down: bool = True) -> dict[str, tuple[float, float]]:
    f = lane_f(lane)
    top, bottom = norm(x_at(f, 0.1 * HEIGHT), 0.1 * HEIGHT), norm(x_at(f, 0.9 * HEIGHT), 0.9 * HEIGHT)
    return {"start": top, "end": bottom} if down else {"start": bottom, "end": top}


def stop_segment(first: float, last: float, y: float) -> dict[str, tuple[float, float]]:
    """A stop line across lanes ``first..last`` at image row ``y``, drawn left to right (down = 'in')."""
    return {"start": norm(x_at(first / 4.0, y), y), "end": norm(x_at((last + 1) / 4.0, y), y)}


# -- kinematics ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Path:
    """Distance travelled (metres) as piecewise constant-acceleration segments from ``t0``."""

    t0: float
    v0: float
    segments: list[tuple[float, float, float, float]] = field(default_factory=list)
    """(start time, start distance, start speed, acceleration), each until the next one starts."""

    def __post_init__(self) -> None:
        self.segments.append((self.t0, 0.0, self.v0, 0.0))

    def state_at(self, t: float) -> tuple[float, float, float]:
        """(time, distance, speed) at ``t`` (after the last segment start: constant acceleration, speed >= 0)."""
        index = max(i for i, seg in enumerate(self.segments) if seg[0] <= t) if t >= self.t0 else 0
        start, q, v, a = self.segments[index]
        dt_ = max(0.0, t - start)
        if a < 0 and v + a * dt_ < 0:
            dt_ = -v / a
        return (t, q + v * dt_ + 0.5 * a * dt_ * dt_, max(0.0, v + a * dt_))

    def _then(self, t: float, a: float) -> Path:
        _, q, v = self.state_at(t)
        self.segments.append((t, q, v, a))
        return self

    def change(self, at: float, accel: float) -> Path:
        """From time ``at`` accelerate at ``accel`` (negative brakes; speed never goes below 0)."""
        return self._then(at, accel)

    def change_to(self, at: float, speed: float, accel: float) -> Path:
        """From ``at`` reach ``speed`` at |accel|, then hold it."""
        _, _, v = self.state_at(at)
        rate = abs(accel) if speed >= v else -abs(accel)
        self._then(at, rate)
        return self._then(at + abs(speed - v) / abs(accel), 0.0)

    def stop_at(self, distance: float, decel: float) -> float:
        """Brake at ``decel`` so as to stand still after ``distance`` metres in total; returns the stop time."""
        start, q, v, _ = self.segments[-1]
        brake_q = v * v / (2 * decel)
        if v <= 0 or distance - q < brake_q:
            raise ValueError("cannot stop there from this speed")
        begin = start + (distance - q - brake_q) / v
        self._then(begin, -decel)
        stop = begin + v / decel
        self._then(stop, 0.0)
        self.segments[-1] = (stop, distance, 0.0, 0.0)
        return stop

    def distance(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.array([self.state_at(float(t))[1] for t in times])


@dataclass(frozen=True, slots=True)
class KeyPath:
    """Distance travelled (metres, may go back) interpolated linearly between keyframes (time, distance)."""

    keys: tuple[tuple[float, float], ...]

    @property
    def t0(self) -> float:
        return self.keys[0][0]

    def distance(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.interp(times, [k[0] for k in self.keys], [k[1] for k in self.keys])


@dataclass(frozen=True, slots=True)
class Actor:
    """A scripted vehicle: ``p(t) = p0 + direction * path(t)`` metres down the road, in lane ``lane(t)``."""

    kind: VehicleKind
    path: Path | KeyPath
    p0: float
    direction: int
    lane: Callable[[float], float]
    appear_s: float = 0.0


def constant(lane: float) -> Callable[[float], float]:
    return lambda _t: lane


def lane_change(keys: Sequence[tuple[float, float]]) -> Callable[[float], float]:
    times = np.array([k[0] for k in keys])
    lanes = np.array([k[1] for k in keys])
    return lambda t: float(np.interp(t, times, lanes))


def box_at(kind: str, f: float, p: float) -> tuple[float, float, float, float] | None:
    """The box of a ``kind`` whose front (anchor) is ``p`` metres down the road, ``f`` across; None off-image."""
    y = y_of_p(p)
    if not 8.0 <= y <= HEIGHT - 1:
        return None
    s = scale_at(y)
    w, h = BASE_BOX[kind]
    x = x_at(f, y)
    x1, x2 = max(0.0, x - w * s / 2), min(float(WIDTH), x + w * s / 2)
    y1 = max(0.0, y - h * s)
    if x2 - x1 < 4 or y - y1 < 4:
        return None
    return (x1, y1, x2, y)


def actor_boxes(actor: Actor, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    boxes = np.full((len(times), 4), np.nan)
    distance = actor.path.distance(times)
    for i, t in enumerate(times.tolist()):
        if t < actor.appear_s or t < actor.path.t0:
            continue
        box = box_at(actor.kind, lane_f(actor.lane(t)), actor.p0 + actor.direction * float(distance[i]))
        if box is not None:
            boxes[i] = box
    return boxes


# -- scenes ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TruthViolation:
    """One true violation/incident: any of ``vehicles`` may be named, within [earliest_s, latest_s]."""

    rule_id: str
    violation_type: str
    vehicles: tuple[int, ...]
    earliest_s: float
    latest_s: float
    note: str


@dataclass(frozen=True, slots=True)
class Scene:
    name: str
    rule: str
    seed: int
    start: dt.datetime
    n_frames: int
    config: ViolationRulesConfig
    kinds: tuple[str, ...]
    boxes: npt.NDArray[np.float64]
    """(vehicles, frames, 4) pixel boxes, NaN where the vehicle is not in view."""
    classes: npt.NDArray[np.int64]
    """(vehicles, frames) class index into ``VEHICLE_CLASSES`` as the detector reports it."""
    signals: tuple[dict[str, SignalState], ...]
    truths: tuple[TruthViolation, ...]
    negatives: tuple[str, ...]
    """The hard negatives this scene holds (for the record)."""
    extra_boxes: tuple[tuple[int, tuple[float, float, float, float], int], ...] = ()
    """False-positive detections (frame, box, class index) of the noisy variant."""

    @property
    def times(self) -> npt.NDArray[np.float64]:
        return np.arange(self.n_frames, dtype=np.float64) / FPS

    def timestamp(self, frame: int) -> dt.datetime:
        return self.start + dt.timedelta(seconds=frame / FPS)


class _Builder:
    """Collects actors and truths of one scene."""

    def __init__(self, name: str, rule: str, seed: int, duration_s: float, config: dict[str, Any]) -> None:
        self.name, self.rule, self.seed = name, rule, seed
        self.rng = np.random.default_rng(seed)
        self.n_frames = round(duration_s * FPS)
        self.times = np.arange(self.n_frames, dtype=np.float64) / FPS
        self.config = config
        self.kinds: list[str] = []
        self.tracks: list[npt.NDArray[np.float64]] = []
        self.truths: list[TruthViolation] = []
        self.negatives: list[str] = []
        self.signals: tuple[dict[str, SignalState], ...] = tuple({} for _ in range(self.n_frames))
        self.start = START_UTC

    def add(self, actor: Actor) -> int:
        self.kinds.append(actor.kind)
        self.tracks.append(actor_boxes(actor, self.times))
        return len(self.kinds) - 1

    def add_positions(self, kind: str, lane: float, p: npt.NDArray[np.float64]) -> int:
        boxes = np.full((self.n_frames, 4), np.nan)
        for i, value in enumerate(p.tolist()):
            if not math.isnan(value):
                box = box_at(kind, lane_f(lane), value)
                if box is not None:
                    boxes[i] = box
        self.kinds.append(kind)
        self.tracks.append(boxes)
        return len(self.kinds) - 1

    def truth(self, rule_id: str, vehicles: tuple[int, ...], window: tuple[float, float], note: str) -> None:
        """A true violation of ``rule_id`` by any of ``vehicles``, reportable within ``window`` (seconds)."""
        kind = next(r["type"] for r in self.config["rules"] if r["id"] == rule_id)
        earliest, latest = window
        self.truths.append(TruthViolation(rule_id, kind, vehicles, round(earliest, 3), round(latest, 3), note))

    def signal(self, signal_id: str, state_at: Callable[[float], SignalState]) -> None:
        self.signals = tuple({**s, signal_id: state_at(t)} for s, t in zip(self.signals, self.times, strict=True))

    def build(self) -> Scene:
        class_index: dict[str, int] = {name: i for i, name in enumerate(VEHICLE_CLASSES)}
        boxes = np.stack(self.tracks) if self.tracks else np.full((0, self.n_frames, 4), np.nan)
        classes = np.array([[class_index[k]] * self.n_frames for k in self.kinds], dtype=np.int64).reshape(
            len(self.kinds), self.n_frames
        )
        return Scene(
            name=self.name,
            rule=self.rule,
            seed=self.seed,
            start=self.start,
            n_frames=self.n_frames,
            config=ViolationRulesConfig.model_validate(self.config),
            kinds=tuple(self.kinds),
            boxes=boxes,
            classes=classes,
            signals=self.signals,
            truths=tuple(self.truths),
            negatives=tuple(self.negatives),
        )


def cycle(green_until: float, amber_s: float, red_s: float) -> Callable[[float], SignalState]:
    """Green until ``green_until``, amber, red for ``red_s``, green again."""

    def state(t: float) -> SignalState:
        if t < green_until:
            return "green"
        if t < green_until + amber_s:
            return "amber"
        if t < green_until + amber_s + red_s:
            return "red"
        return "green"

    return state


# red light -----------------------------------------------------------------------------------------

RED_GRACE_S = 0.5


def _red_light_negatives(b: _Builder, p_line: float, amber_at: float, red_at: float, green_again: float) -> None:
    """The red-light scene's hard negatives in lanes 1-3."""
    rng = b.rng

    def approach(kind: VehicleKind, lane: float, v: float, cross_at: float) -> Actor:
        return Actor(kind, Path(0.0, v), p_line - v * cross_at, 1, constant(lane))

    # Lane 1: stops just before the line at red, waits, goes at green.
    kind: VehicleKind = "car" if rng.random() < 0.7 else "motorbike"
    v = float(rng.uniform(6.0, 10.0))
    gap = float(rng.uniform(0.1, 1.2))
    path = Path(0.0, v)
    start_p = p_line - v * (red_at + 2.0) - 10.0
    path.stop_at(p_line - gap - start_p, float(rng.uniform(2.0, 3.5)))
    path.change_to(green_again + float(rng.uniform(0.5, 1.5)), 8.0, 2.0)
    b.add(Actor(kind, path, start_p, 1, constant(1)))
    b.negatives.append(f"stops {gap:.1f} m before the line at red")
    # Lane 2: crossed on amber, stopped just beyond the line (blocked), pulls away during red.
    v = float(rng.uniform(4.0, 6.0))
    path = Path(0.0, v)
    cross = float(rng.uniform(amber_at + 0.2, amber_at + 1.5))
    start_p = p_line - v * cross
    path.stop_at(p_line + float(rng.uniform(0.6, 1.1)) - start_p, 3.0)
    moves_on = red_at + float(rng.uniform(2.0, 4.0))
    path.change_to(moves_on, 7.0, 2.0)
    b.add(Actor("car", path, start_p, 1, constant(2)))
    b.negatives.append("past the line at red onset, moves on during red")
    # Lane 2, after it: a queue of two at the red light.
    v = float(rng.uniform(6.0, 9.0))
    for k, extra in enumerate((0.3, 7.5)):
        path = Path(0.0, v)
        start_p = p_line - v * (moves_on + 4.0 + 2.0 * k) - 12.0
        path.stop_at(p_line - extra - start_p, 2.5)
        path.change_to(green_again + 1.0 + 1.5 * k, 8.0, 2.0)
        b.add(Actor("car", path, start_p, 1, constant(2)))
    b.negatives.append("a queue at the red light")
    # Lane 3, a free right turn beyond the segment's end: crosses at red, outside the segment.
    b.add(approach("car", 3.1, float(rng.uniform(6.0, 10.0)), float(rng.uniform(red_at + 2.0, green_again - 2.0))))
    b.negatives.append("crosses at red beyond the stop line's end")


def red_light_scene(seed: int) -> Scene:
    b = _Builder(f"red_light_{seed}", "red_light", seed, 40.0, {})
    rng = b.rng
    y_line = 0.62 * HEIGHT
    p_line = p_of_y(y_line)
    amber_at = float(rng.uniform(8.0, 11.0))
    red_at = amber_at + 3.0
    red_s = 16.0
    green_again = red_at + red_s
    b.signal("sig", cycle(amber_at, 3.0, red_s))
    b.config = {
        "signals": [{"id": "sig", "mqtt": "ctl-1"}],
        "rules": [
            {
                "type": "red_light",
                "id": "rl",
                "stop_line": stop_segment(0, 2, y_line),
                "signal_id": "sig",
                "grace_s": RED_GRACE_S,
            }
        ],
    }

    def approach(kind: VehicleKind, lane: float, v: float, cross_at: float) -> Actor:
        """A vehicle at constant speed whose front reaches the line at ``cross_at``."""
        p0 = p_line - v * cross_at
        return Actor(kind, Path(0.0, v), p0, 1, constant(lane))

    kinds: list[VehicleKind] = ["car", "car", "van", "motorbike", "truck"]
    # Positives (lane 0): run the red, at least 1 s after the grace; sometimes a second one 4-6 s later.
    cross = float(rng.uniform(red_at + RED_GRACE_S + 1.0, green_again - 6.0))
    crossings = [cross]
    if rng.random() < 0.5 and cross + 6.0 < green_again - 1.0:
        crossings.append(cross + float(rng.uniform(4.0, 6.0)))
    for cross in crossings:
        actor = approach(kinds[int(rng.integers(len(kinds)))], 0.0, float(rng.uniform(6.0, 12.0)), cross)
        vid = b.add(actor)
        b.truth("rl", (vid,), (cross - 0.5, cross + 3.0), f"crosses {cross - red_at:.1f} s into red")
    # Negatives.
    b.add(approach("car", 0, float(rng.uniform(7.0, 11.0)), float(rng.uniform(2.0, amber_at - 1.5))))
    b.negatives.append("crosses on green")
    amber_cross = float(rng.uniform(amber_at + 0.3, red_at - 0.4))
    b.add(approach(kinds[int(rng.integers(len(kinds)))], 1, float(rng.uniform(7.0, 11.0)), amber_cross))
    b.negatives.append("crosses on amber")
    _red_light_negatives(b, p_line, amber_at, red_at, green_again)
    return b.build()


# wrong way -----------------------------------------------------------------------------------------


def wrong_way_scene(seed: int) -> Scene:
    b = _Builder(f"wrong_way_{seed}", "wrong_way", seed, 30.0, {})
    rng = b.rng
    b.config = {
        "rules": [
            {
                "type": "wrong_way",
                "id": "ww",
                "lane": lane_polygon(0, 1, 0.08 * HEIGHT, 0.98 * HEIGHT),
                "flow": flow_arrow(0.5),
            }
        ]
    }
    kinds: list[VehicleKind] = ["motorbike", "motorbike", "car", "van"]
    # Positive: drives up a down lane (wrong way) for the whole view.
    v = float(rng.uniform(3.0, 8.0))
    kind = kinds[int(rng.integers(len(kinds)))]
    start = float(rng.uniform(1.0, 12.0))
    p_start = p_of_y(HEIGHT - 2)
    lane = float(rng.choice([0.0, 1.0])) + float(rng.uniform(-0.2, 0.2))
    vid = b.add(Actor(kind, Path(start, v), p_start, -1, constant(lane), appear_s=start))
    leaves = start + (p_start - p_of_y(0.08 * HEIGHT)) / v  # leaves the lane at the top of the image
    b.truth("ww", (vid,), (start + 0.5, leaves + 1.0), f"{v:.1f} m/s against the flow")
    # Negatives: normal traffic down, slow traffic down, legal traffic up in the other lanes.
    for k in range(3):
        v = float(rng.uniform(2.0, 12.0))
        t0 = float(rng.uniform(0.0, 20.0))
        b.add(Actor(kinds[int(rng.integers(len(kinds)))], Path(t0, v), 0.5, 1, constant(k % 2), appear_s=t0))
    b.negatives.append("traffic with the flow")
    for k in range(2):
        v = float(rng.uniform(4.0, 10.0))
        t0 = float(rng.uniform(0.0, 18.0))
        b.add(Actor("car", Path(t0, v), p_of_y(HEIGHT - 2), -1, constant(2 + k), appear_s=t0))
    b.negatives.append("traffic away from the camera in its own lanes")
    # Turning briefly: drives down lane 1, swings towards lane 2 with a short backward drift, then goes on.
    t0 = float(rng.uniform(2.0, 10.0))
    back = float(rng.uniform(0.3, 0.8))
    keys = ((t0, 0.0), (t0 + 2.0, 10.0), (t0 + 3.0, 12.5), (t0 + 3.8, 12.5 - back), (t0 + 4.5, 12.5 - back),
            (t0 + 12.0, 40.0))  # fmt: skip
    lanes = lane_change([(t0, 1.0), (t0 + 2.0, 1.0), (t0 + 3.5, 1.7), (t0 + 4.5, 1.7), (t0 + 6.0, 1.0)])
    b.add(Actor("car", KeyPath(keys), 1.0, 1, lanes, appear_s=t0))
    b.negatives.append(f"turns briefly with a {back:.1f} m backward drift")
    # Reversing about a metre into a parking space (less than the minimum distance).
    t0 = float(rng.uniform(2.0, 12.0))
    rev = float(rng.uniform(0.8, 1.5))
    reverse: tuple[tuple[float, float], ...] = ((t0, 0.0), (t0 + 2.0, 0.0), (t0 + 4.0, -rev), (t0 + 30.0, -rev))
    b.add(Actor("car", KeyPath(reverse), p_of_y(0.7 * HEIGHT), 1, constant(0.1), appear_s=t0))
    b.negatives.append(f"reverses {rev:.1f} m")
    return b.build()


# illegal stopping ----------------------------------------------------------------------------------

MAX_STOP_S = 15.0


def illegal_stopping_scene(seed: int) -> Scene:
    b = _Builder(f"illegal_stopping_{seed}", "illegal_stopping", seed, 45.0, {})
    rng = b.rng
    y_from, y_to = 0.3 * HEIGHT, 0.85 * HEIGHT
    b.config = {
        "rules": [
            {
                "type": "illegal_stopping",
                "id": "ns",
                "zone": lane_polygon(0, 0, y_from, y_to),
                "max_stop_s": MAX_STOP_S,
            }
        ]
    }
    p_from, p_to = p_of_y(y_from), p_of_y(y_to)
    kinds: list[VehicleKind] = ["car", "van", "truck", "motorbike", "car"]

    def stopper(t0: float, stop_p: float, hold: float, kind: VehicleKind, lane: float = 0.0) -> tuple[Actor, float]:
        v = float(rng.uniform(5.0, 9.0))
        path = Path(t0, v)
        stop = path.stop_at(stop_p - 0.5, float(rng.uniform(2.0, 3.5)))
        path.change_to(stop + hold, 6.0, 1.5)
        return Actor(kind, path, 0.5, 1, constant(lane), appear_s=t0), stop

    # Positive: stops well inside the zone for longer than the limit.
    kind = kinds[int(rng.integers(len(kinds)))]
    hold = float(rng.uniform(MAX_STOP_S + 4.0, 28.0))
    actor, stop = stopper(float(rng.uniform(0.0, 6.0)), float(rng.uniform(p_from + 6.0, p_to - 1.0)), hold, kind)
    vid = b.add(actor)
    b.truth("ns", (vid,), (stop + MAX_STOP_S - 1.5, stop + MAX_STOP_S + 3.0), f"stops {hold:.0f} s")
    # Brief stop under the limit, later in the scene.
    actor, _ = stopper(
        float(rng.uniform(14.0, 20.0)), float(rng.uniform(p_from + 6.0, p_to - 1.0)), float(rng.uniform(3.0, 10.0)),
        "car", 0.05,
    )  # fmt: skip
    b.add(actor)
    b.negatives.append("a brief stop under the limit")
    # Slow but moving through the zone.
    for _ in range(2):
        t0 = float(rng.uniform(0.0, 25.0))
        b.add(Actor("car", Path(t0, float(rng.uniform(1.0, 2.5))), 0.5, 1, constant(-0.05), appear_s=t0))
    b.negatives.append("slow but moving traffic")
    # Stopped for long just outside the zone (the next lane).
    actor, _ = stopper(float(rng.uniform(0.0, 8.0)), float(rng.uniform(p_from + 6.0, p_to - 1.0)), 30.0, "car", 1.0)
    b.add(actor)
    b.negatives.append("a long stop in the next lane, outside the zone")
    # Two stops each under the limit, with a move of a few metres between.
    t0 = float(rng.uniform(18.0, 22.0))
    arrive = (p_from + 4.0) / 6.0
    keys = ((t0, 0.0), (t0 + arrive, p_from + 4.0 - 1.2), (t0 + arrive + 0.8, p_from + 4.0), (t0 + arrive + 8.8,
            p_from + 4.0), (t0 + arrive + 11.0, p_from + 7.0), (t0 + arrive + 19.0, p_from + 7.0),
            (t0 + arrive + 30.0, p_from + 60.0))  # fmt: skip
    b.add(Actor("car", KeyPath(keys), 0.0, 1, constant(-0.1), appear_s=t0))
    b.negatives.append("two stops of 8 s with a move between")
    return b.build()


# lane violation ------------------------------------------------------------------------------------


def lane_violation_scene(seed: int) -> Scene:
    b = _Builder(f"lane_violation_{seed}", "lane_violation", seed, 30.0, {})
    rng = b.rng
    outside_hours = rng.random() < 0.3
    if outside_hours:
        b.start = START_UTC + dt.timedelta(hours=3)  # 11:00 local: the truck restriction is off
    b.config = {
        "rules": [
            {
                "type": "lane_violation",
                "id": "car-lane",
                "lane": lane_polygon(0, 0, 0.15 * HEIGHT, 0.98 * HEIGHT),
                "forbidden_classes": ["motorbike", "bicycle"],
            },
            {
                "type": "lane_violation",
                "id": "no-trucks-am",
                "lane": lane_polygon(1, 1, 0.15 * HEIGHT, 0.98 * HEIGHT),
                "allowed_classes": ["motorbike", "car", "van", "bus", "bicycle"],
                "hours": [{"start": "06:00", "end": "09:00"}],
                "timezone": "Asia/Ho_Chi_Minh",
            },
        ]
    }
    # Positive: a motorbike rides the car lane.
    t0 = float(rng.uniform(0.0, 12.0))
    v = float(rng.uniform(4.0, 9.0))  # 15-30 km/h; faster small boxes outrun the tracker at 10 fps
    vid = b.add(Actor("motorbike", Path(t0, v), 0.5, 1, constant(float(rng.uniform(-0.2, 0.2))), appear_s=t0))
    enter = t0 + max(0.0, p_of_y(0.15 * HEIGHT) - 0.5) / v
    b.truth("car-lane", (vid,), (enter + 0.5, enter + 45.0 / v), "motorbike in the car lane")
    # The truck: a positive inside the hours, a negative outside them.
    t0 = float(rng.uniform(0.0, 14.0))
    v = float(rng.uniform(5.0, 10.0))
    vid = b.add(Actor("truck", Path(t0, v), 0.5, 1, constant(1.0 + float(rng.uniform(-0.1, 0.1))), appear_s=t0))
    enter = t0 + max(0.0, p_of_y(0.15 * HEIGHT) - 0.5) / v
    if outside_hours:
        b.negatives.append("a truck in the restricted lane outside its hours")
    else:
        b.truth("no-trucks-am", (vid,), (enter + 0.5, enter + 45.0 / v), "truck in restricted hours")
    # Allowed classes in each lane.
    allowed: tuple[tuple[int, VehicleKind], ...] = ((0, "car"), (0, "van"), (1, "motorbike"), (1, "car"))
    for lane, kind in allowed:
        t0 = float(rng.uniform(0.0, 20.0))
        b.add(Actor(kind, Path(t0, float(rng.uniform(4.0, 9.0))), 0.5, 1, constant(lane), appear_s=t0))
    b.negatives.append("allowed classes in their lanes")
    # A motorbike cutting across the car lane's corner (in it for well under a second).
    t0 = float(rng.uniform(2.0, 18.0))
    b.add(Actor("motorbike", Path(t0, 8.0), p_of_y(0.5 * HEIGHT), 1,
                lane_change([(t0, 1.1), (t0 + 0.5, 0.45), (t0 + 0.9, 1.1)]), appear_s=t0))  # fmt: skip
    b.negatives.append("a motorbike cutting across the car lane")
    return b.build()


# stopped in lane, queue growth: queues from the car-following simulation ---------------------------


def _queue_traffic(
    b: _Builder,
    lanes: Sequence[tuple[float, float, Sequence[float]]],
    signal: SignalSpec | None,
    p_stop_front: float,
) -> list[int]:
    """IDM traffic down ``lanes`` ((lane, speed, planned arrival times)) that queues at a red stop line."""
    specs = tuple(
        LaneSpec(x_m=0.0, heading="away", speed_mps=speed, speed_spread=0.1, stops_at_signal=signal is not None)
        for _, speed, _ in lanes
    )
    arrivals: list[Arrival] = []
    for index, (_, speed, planned) in enumerate(lanes):
        for t in planned:
            kind: VehicleKind = "car" if b.rng.random() < 0.8 else "van"
            desired = speed * float(b.rng.uniform(0.9, 1.1))
            arrivals.append(Arrival(index, kind, round(t, 3), desired, 0.0, (0, 0, 0), (0, 0, 0), 0.5))
    arrivals.sort(key=lambda a: (a.planned_s, a.lane))

    def geometry(arrival: Arrival) -> LaneGeometry:
        half = vehicle_length_m(arrival.kind) / 2
        return LaneGeometry(enter_p=-half, exit_p=p_of_y(HEIGHT) + half + 1.0, stop_p=p_stop_front - half - 0.4)

    positions = simulate(specs, arrivals, geometry, signal, fps=FPS, n_frames=b.n_frames)
    ids = []
    for arrival, centre in zip(arrivals, positions, strict=True):
        front = centre + vehicle_length_m(arrival.kind) / 2
        ids.append(b.add_positions(arrival.kind, lanes[arrival.lane][0], front))
    return ids


def _poisson(rng: np.random.Generator, rate_per_s: float, until: float, start: float = 0.0) -> list[float]:
    times: list[float] = []
    t = start + float(rng.exponential(1.0 / rate_per_s))
    while t < until:
        times.append(t)
        t += float(rng.exponential(1.0 / rate_per_s))
    return times


STOPPED_LANE_S = 15.0


def stopped_in_lane_scene(seed: int) -> Scene:
    b = _Builder(f"stopped_in_lane_{seed}", "stopped_in_lane", seed, 60.0, {})
    rng = b.rng
    y_line = 0.85 * HEIGHT
    p_line = p_of_y(y_line)
    red_from, red_s, green_s = float(rng.uniform(3.0, 8.0)), 28.0, 14.0
    spec = SignalSpec(first_red_s=red_from, red_s=red_s, green_s=green_s)
    b.signal("sig", lambda t: "red" if spec.is_red(t) else "green")
    b.config = {
        "signals": [{"id": "sig", "mqtt": "ctl-1"}],
        "rules": [
            {
                "type": "stopped_in_lane",
                "id": "sl",
                "lane": lane_polygon(0, 1, 0.1 * HEIGHT, 0.98 * HEIGHT),
                "flow": flow_arrow(0.5),
                "max_stop_s": STOPPED_LANE_S,
                "stop_line": stop_segment(0, 1, y_line),
                "signal_id": "sig",
            }
        ],
    }
    # Normal queues at the red light in lane 1.
    breakdown_at = float(rng.uniform(6.0, 18.0))
    rate = float(rng.uniform(0.15, 0.3))
    _queue_traffic(
        b,
        [(1.0, float(rng.uniform(8.0, 11.0)), _poisson(rng, rate, 50.0))],
        spec,
        p_line,
    )  # fmt: skip
    b.negatives.append("queues at the red light (28 s red)")
    # Positive: a vehicle breaks down in lane 0, far from the stop line, and stays.
    kind: VehicleKind = "car" if rng.random() < 0.7 else "truck"
    v = float(rng.uniform(6.0, 9.0))
    path = Path(breakdown_at, v)
    stop_p = float(rng.uniform(p_of_y(0.35 * HEIGHT), p_of_y(0.6 * HEIGHT)))
    stop = path.stop_at(stop_p, float(rng.uniform(2.0, 4.0)))
    vid = b.add(Actor(kind, path, 0.0, 1, constant(0.0), appear_s=breakdown_at))
    b.truth("sl", (vid,), (stop + STOPPED_LANE_S - 1.5, stop + STOPPED_LANE_S + 3.0), "broke down")
    # Brief stop in lane 1's upstream part is covered by the queue; a slow vehicle passes the breakdown in lane 1.
    t0 = float(rng.uniform(0.0, 30.0))
    b.add(Actor("motorbike", Path(t0, float(rng.uniform(1.5, 3.0))), 0.0, 1, constant(1.3), appear_s=t0))
    b.negatives.append("slow traffic")
    return b.build()


QUEUE_GROWTH = 0.5
QUEUE_WITHIN_S = 30.0


def _regular(rng: np.random.Generator, headway: tuple[float, float], until: float, start: float = 0.0) -> list[float]:
    """Arrivals at random headways in ``headway`` (seconds): light traffic with no Poisson bunches."""
    times: list[float] = []
    t = start + float(rng.uniform(0.0, headway[1]))
    while t < until:
        times.append(t)
        t += float(rng.uniform(*headway))
    return times


def queue_growth_scene(seed: int) -> Scene:
    """Signal cycles with light traffic; in seven scenes of eight the exit is then blocked and the queue spills back.

    The rule watches the approach upstream of the normal queue (a spill-back zone): a normal red queue of one or
    two vehicles per lane barely reaches it, a blocked exit with heavy arrivals fills it within half a minute.
    """
    b = _Builder(f"queue_growth_{seed}", "queue_growth", seed, 75.0, {})
    rng = b.rng
    incident = seed % 8 != 7
    y_line = 0.92 * HEIGHT
    p_line = p_of_y(y_line)
    b.config = {
        "rules": [
            {
                "type": "queue_growth",
                "id": "qg",
                "zone": lane_polygon(0, 1, 0.1 * HEIGHT, 0.55 * HEIGHT),
                "flow": flow_arrow(0.5),
                "min_growth": QUEUE_GROWTH,
                "within_s": QUEUE_WITHIN_S,
            }
        ]
    }
    first_red = float(rng.uniform(3.0, 8.0))
    spec = SignalSpec(first_red_s=first_red, red_s=15.0, green_s=15.0)
    blocked_at = float(rng.uniform(34.0, 42.0)) if incident else math.inf
    lanes = []
    for lane in (0.0, 1.0):
        light = _regular(rng, (9.0, 16.0), min(blocked_at - 4.0, 70.0))
        heavy = _regular(rng, (1.6, 2.4), 70.0, blocked_at - 4.0) if incident else []
        lanes.append((lane, float(rng.uniform(9.0, 12.0)), light + heavy))

    class _Blocked(SignalSpec):
        def is_red(self, t: float) -> bool:
            return t >= blocked_at or spec.is_red(t)

    ids = _queue_traffic(b, lanes, _Blocked(first_red_s=0.0, red_s=1.0, green_s=1.0), p_line)
    if incident:
        b.truth("qg", tuple(ids), (blocked_at, blocked_at + 40.0), "exit blocked, queue spills back")
    b.negatives.append("normal queues at a red light")
    return b.build()


# possible accident ---------------------------------------------------------------------------------

ACCIDENT_STOPPED_S = 5.0


def _accident_negatives(b: _Builder, p_line: float) -> None:
    """The accident scene's hard negatives: a queue, two vehicles passing close, hard braking without contact."""
    rng = b.rng
    # Negatives: a normal queue at a red light in lane 1 (ordinary braking, boxes touching in the image).
    red_at = float(rng.uniform(3.0, 10.0))
    spec = SignalSpec(first_red_s=red_at, red_s=25.0, green_s=20.0)
    _queue_traffic(b, [(1.0, float(rng.uniform(8.0, 11.0)), _poisson(rng, 0.3, 35.0))], spec, p_line)
    b.negatives.append("a normal queue at a red light")
    # Two vehicles passing close (overlapping boxes) without stopping, in lanes 2 and 3.
    t0 = float(rng.uniform(0.0, 20.0))
    v = float(rng.uniform(6.0, 10.0))
    b.add(Actor("car", Path(t0, v), p_of_y(HEIGHT - 2), -1, constant(1.95), appear_s=t0))
    b.add(Actor("van", Path(t0, v * 1.3), p_of_y(HEIGHT - 2) + 6.0, -1, constant(2.55), appear_s=t0))
    b.negatives.append("two vehicles passing close")
    # Hard braking without contact: a car stops hard (6 m/s^2) well behind another and both wait.
    t0 = float(rng.uniform(0.0, 6.0))
    path = Path(t0, 9.0)
    stop_front = float(rng.uniform(p_of_y(0.55 * HEIGHT), p_of_y(0.85 * HEIGHT)))
    path.stop_at(stop_front - 0.5, 6.0)
    b.add(Actor("car", path, 0.5, 1, constant(3.2), appear_s=t0))
    b.negatives.append("hard braking (6 m/s^2) without contact")


def possible_accident_scene(seed: int) -> Scene:
    b = _Builder(f"possible_accident_{seed}", "possible_accident", seed, 40.0, {})
    rng = b.rng
    y_line = 0.8 * HEIGHT
    p_line = p_of_y(y_line)
    b.config = {
        "rules": [{"type": "possible_accident", "id": "pa", "stopped_for_s": ACCIDENT_STOPPED_S}],
    }
    # Positive: a rear-end collision in lane 0 (or a sideswipe from lane 1).
    crash_at = float(rng.uniform(8.0, 20.0))
    crash_p = float(rng.uniform(p_of_y(0.4 * HEIGHT), p_of_y(0.75 * HEIGHT)))
    sideswipe = rng.random() < 0.3
    lead_kind: VehicleKind = "car" if rng.random() < 0.7 else "van"
    hit_kind: VehicleKind = "car" if rng.random() < 0.7 else "truck"
    lead_v = float(rng.uniform(0.0, 3.0))
    hit_v = float(rng.uniform(7.0, 12.0))
    lead_len = vehicle_length_m(lead_kind)
    # Lead: reaches crash_p at crash_at going lead_v, then is shoved a little and stops.
    lead_path = Path(0.0, lead_v) if lead_v > 0 else Path(0.0, 0.0)
    lead_p0 = crash_p - lead_v * crash_at
    if lead_v > 0:
        lead_path.change(crash_at, -15.0)
    else:
        lead_path.change(crash_at, 0.0)
        lead_path.segments[-1] = (crash_at, 0.0, 1.5, -8.0)  # shoved forward
    if sideswipe:
        hit_lane = lane_change([(0.0, 1.0), (crash_at - 1.2, 1.0), (crash_at, 0.35), (crash_at + 5, 0.35)])
        gap = 0.0
    else:
        hit_lane = constant(0.0)
        gap = lead_len + 0.2
    impact = float(rng.uniform(25.0, 45.0))  # stopped by the impact within ~0.3 s
    hit_p0 = crash_p - gap - hit_v * crash_at
    if not sideswipe:
        hit_p0 -= hit_v * hit_v / (2 * impact) - 0.3  # its front ends 0.3 m into the lead's rear
    hit_path = Path(0.0, hit_v)
    hit_path.change(crash_at, -impact)
    lead = b.add(Actor(lead_kind, lead_path, lead_p0, 1, constant(0.0)))
    hit = b.add(Actor(hit_kind, hit_path, hit_p0, 1, hit_lane))
    window = (crash_at + ACCIDENT_STOPPED_S - 0.5, crash_at + ACCIDENT_STOPPED_S + 4.0)
    b.truth("pa", (lead, hit), window, "sideswipe" if sideswipe else "rear-end")
    _accident_negatives(b, p_line)
    return b.build()


GENERATORS: dict[str, Callable[[int], Scene]] = {
    "red_light": red_light_scene,
    "wrong_way": wrong_way_scene,
    "illegal_stopping": illegal_stopping_scene,
    "lane_violation": lane_violation_scene,
    "stopped_in_lane": stopped_in_lane_scene,
    "queue_growth": queue_growth_scene,
    "possible_accident": possible_accident_scene,
}


def scenes(rule: str, count: int, *, seed_offset: int = 0) -> list[Scene]:
    """``count`` scenes of one rule (seeds ``seed_offset`` .. ``seed_offset + count - 1``)."""
    return [GENERATORS[rule](seed_offset + k) for k in range(count)]


# -- the detector's view ---------------------------------------------------------------------------

Variant = Literal["clean", "noisy"]


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """How the noisy variant degrades a scene's boxes (what a real detector does)."""

    jitter: float = 0.02
    """Standard deviation of each box edge, as a fraction of the box's width or height."""
    miss_rate: float = 0.06
    """Chance a vehicle is not detected in one frame."""
    burst_rate: float = 0.01
    """Chance per frame that a vehicle starts a burst of misses of 0.3-0.6 s."""
    false_positives_per_frame: float = 0.3
    """Mean number of spurious boxes per frame (each lives 1-3 frames at a random place)."""
    class_flicker: float = 0.05
    """Chance a detection reports a neighbouring class (car<->van, motorbike<->bicycle, truck<->bus)."""


FLICKER: dict[str, str] = {"car": "van", "van": "car", "truck": "bus", "bus": "truck", "motorbike": "bicycle"}


def noisy(scene: Scene, noise: NoiseConfig | None = None) -> Scene:
    """The scene as a noisy detector would see it (deterministic per scene seed)."""
    noise = noise or NoiseConfig()
    rng = np.random.default_rng(10_000 + scene.seed)
    boxes = scene.boxes.copy()
    classes = scene.classes.copy()
    n_vehicles, n_frames, _ = boxes.shape
    class_index: dict[str, int] = {name: i for i, name in enumerate(VEHICLE_CLASSES)}
    for v in range(n_vehicles):
        present = ~np.isnan(boxes[v, :, 0])
        w = boxes[v, :, 2] - boxes[v, :, 0]
        h = boxes[v, :, 3] - boxes[v, :, 1]
        jitter = rng.normal(0.0, noise.jitter, size=(n_frames, 4)) * np.stack([w, h, w, h], axis=1)
        boxes[v] += np.where(present[:, None], jitter, 0.0)
        missed = np.asarray(rng.random(n_frames) < noise.miss_rate, dtype=np.bool_)
        for start in np.flatnonzero(rng.random(n_frames) < noise.burst_rate).tolist():
            missed[start : start + int(rng.integers(3, 7))] = True
        boxes[v, missed] = np.nan
        flicker = rng.random(n_frames) < noise.class_flicker
        other = FLICKER.get(scene.kinds[v])
        if other is not None:
            classes[v, flicker] = class_index[other]
    extra: list[tuple[int, tuple[float, float, float, float], int]] = []
    for frame in range(n_frames):
        for _ in range(int(rng.poisson(noise.false_positives_per_frame))):
            y = float(rng.uniform(60, HEIGHT - 5))
            s = scale_at(y)
            x = float(rng.uniform(50, WIDTH - 50))
            kind = ("car", "motorbike", "van")[int(rng.integers(3))]
            bw, bh = BASE_BOX[kind]
            box = (x - bw * s / 2, y - bh * s, x + bw * s / 2, y)
            for k in range(int(rng.integers(1, 4))):
                if frame + k < n_frames:
                    extra.append((frame + k, box, class_index[kind]))
    boxes = np.clip(boxes, 0.0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    return replace(scene, boxes=boxes, classes=classes, extra_boxes=tuple(extra))
