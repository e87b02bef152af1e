"""What the engine remembers of each track: recent positions, a jitter-proof speed, stopped or moving, class.

Every rule reads the same ``FrameView`` built here once per frame (arrays of the tracks seen in it), so a
speed or a stop is measured once and means the same thing in every rule.

- Speed is the anchor's displacement over ``speed_window_s`` divided by the box size (box sizes per second):
  frame-to-frame steps would turn box jitter into speed.
- Stopped/moving has hysteresis: stopped at or below ``stopped_speed``, moving again only above
  ``moving_speed``. ``stopped_since`` is the start of the window in which it stood still.
- A track keeps its memory while briefly lost (same id). A NEW id whose box overlaps the box of a track that
  vanished while stopped (within ``relink_max_gap_s``) continues that track: the tracker dropped a vehicle
  that did not move and found it again, and its stop must not start over. Rules are told (``renamed``) so
  they carry their own per-track state over.
- Memory is bounded: forgotten ``forget_after_s`` after last seen, at most ``max_tracks`` (oldest-seen dropped
  first, counted in ``evicted``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.perception.types import Detections
from edge_agent.violations.config import MotionConfig

Box = tuple[float, float, float, float]


@dataclass(slots=True)
class TrackState:
    """Mutable memory of one track; owned by ``TrackBook``."""

    track_id: int
    first_seen: float
    last_seen: float
    box: Box
    vehicle_class: str
    class_since: float
    """When the tracker's class vote last changed to ``vehicle_class``."""
    times: list[float] = field(default_factory=list)
    points: list[tuple[float, float, float]] = field(default_factory=list)
    """(anchor x, anchor y, box size) per sample."""
    speed: float = math.nan
    """Box sizes per second over the speed window; NaN while the track is younger than half the window."""
    velocity: tuple[float, float] = (0.0, 0.0)
    """Pixels per second over the speed window."""
    stopped: bool = False
    stopped_since: float | None = None

    def position_at(self, t: float) -> tuple[float, float, float] | None:
        """The latest sample at or before ``t`` (None when the history starts after ``t``)."""
        index = bisect.bisect_right(self.times, t) - 1
        return None if index < 0 else self.points[index]

    def sample_index_at(self, t: float) -> int:
        return bisect.bisect_right(self.times, t) - 1


@dataclass(frozen=True, slots=True)
class FrameView:
    """The tracks seen in one frame, as parallel arrays, plus their memory."""

    t: float
    """Seconds since the engine's first frame."""
    time: dt.datetime
    ids: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float64]
    anchors: npt.NDArray[np.float32]
    sizes: npt.NDArray[np.float64]
    """Longer side of each box, pixels: the unit of box-size distances and speeds."""
    speeds: npt.NDArray[np.float64]
    stopped: npt.NDArray[np.bool_]
    classes: tuple[str, ...]
    states: tuple[TrackState, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def box_of(self, row: int) -> Box:
        x1, y1, x2, y2 = (float(v) for v in self.boxes[row])
        return (x1, y1, x2, y2)


def box_iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class TrackBook:
    """Per-track memory shared by the rules of one camera. Not thread-safe."""

    def __init__(self, config: MotionConfig, anchor: str) -> None:
        self._config = config
        self._anchor = anchor
        self._tracks: dict[int, TrackState] = {}
        self._evicted = 0
        self._relinked = 0

    @property
    def evicted(self) -> int:
        """Tracks forgotten early because max_tracks were held."""
        return self._evicted

    @property
    def relinked(self) -> int:
        """New track ids that continued a track that vanished while stopped."""
        return self._relinked

    @property
    def remembered(self) -> int:
        return len(self._tracks)

    def get(self, track_id: int) -> TrackState | None:
        return self._tracks.get(track_id)

    def observe(
        self, tracked: Detections, t: float, time: dt.datetime
    ) -> tuple[FrameView, dict[int, int], tuple[int, ...]]:
        """Record one frame. Returns the view, the renames (old id -> new id) and the ids forgotten."""
        rows = np.flatnonzero(tracked.tracker_id >= 0)
        ids = tracked.tracker_id[rows]
        if len(np.unique(ids)) != len(ids):
            raise ValueError("violations: a tracker id appears twice in one frame")
        boxes = np.asarray(tracked.xyxy[rows], dtype=np.float64)
        anchors = np.asarray(tracked.anchor_points(self._anchor)[rows], dtype=np.float32)
        sizes = np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1.0)
        classes = tuple(tracked.class_names[int(c)] for c in tracked.class_id[rows])
        renames: dict[int, int] = {}
        seen = set(ids.tolist())
        states: list[TrackState] = []
        for i, track_id in enumerate(ids.tolist()):
            box: Box = (float(boxes[i, 0]), float(boxes[i, 1]), float(boxes[i, 2]), float(boxes[i, 3]))
            state = self._tracks.get(track_id)
            if state is None:
                state = self._relink(box, t, seen)
                if state is not None:
                    renames[state.track_id] = track_id
                    del self._tracks[state.track_id]
                    state.track_id = track_id
                else:
                    state = TrackState(track_id, t, t, box, classes[i], t)
                self._tracks[track_id] = state
            if classes[i] != state.vehicle_class:
                state.vehicle_class = classes[i]
                state.class_since = t
            state.box = box
            state.last_seen = t
            self._add_sample(state, t, float(anchors[i, 0]), float(anchors[i, 1]), float(sizes[i]))
            states.append(state)
        speeds = np.array([s.speed for s in states], dtype=np.float64)
        stopped = np.array([s.stopped for s in states], dtype=np.bool_)
        forgotten = self._forget(t)
        view = FrameView(t, time, ids.astype(np.int64), boxes, anchors, sizes, speeds, stopped, classes, tuple(states))
        return view, renames, forgotten

    def expire(self, t: float) -> tuple[int, ...]:
        return self._forget(t)

    def _relink(self, box: Box, t: float, seen: set[int]) -> TrackState | None:
        cfg = self._config
        if cfg.relink_max_gap_s <= 0:
            return None
        best: TrackState | None = None
        best_iou = cfg.relink_min_iou
        for state in self._tracks.values():
            if state.track_id in seen or not state.stopped or t - state.last_seen > cfg.relink_max_gap_s:
                continue
            if state.last_seen >= t:
                continue
            iou = box_iou(state.box, box)
            if iou >= best_iou:
                best, best_iou = state, iou
        if best is not None:
            self._relinked += 1
        return best

    def _add_sample(self, state: TrackState, t: float, x: float, y: float, size: float) -> None:
        cfg = self._config
        state.times.append(t)
        state.points.append((x, y, size))
        if len(state.times) > 8 and state.times[0] < t - cfg.history_s:
            cut = bisect.bisect_left(state.times, t - cfg.history_s)
            del state.times[:cut]
            del state.points[:cut]
        window = cfg.speed_window_s
        index = state.sample_index_at(t - window)
        if index < 0:
            if t - state.times[0] < window / 2:
                return  # too young to tell: speed stays unknown, stopped state unchanged
            index = 0
        t0 = state.times[index]
        if t0 >= t:
            return
        x0, y0, s0 = state.points[index]
        elapsed = t - t0
        vx, vy = (x - x0) / elapsed, (y - y0) / elapsed
        state.velocity = (vx, vy)
        state.speed = math.hypot(vx, vy) / ((size + s0) / 2)
        if state.stopped and state.speed > cfg.moving_speed:
            state.stopped, state.stopped_since = False, None
        elif not state.stopped and state.speed <= cfg.stopped_speed:
            state.stopped, state.stopped_since = True, t0

    def _forget(self, t: float) -> tuple[int, ...]:
        cfg = self._config
        gone = [tid for tid, s in self._tracks.items() if t - s.last_seen > cfg.forget_after_s]
        overflow = len(self._tracks) - len(gone) - cfg.max_tracks
        if overflow > 0:
            keep = sorted((s for tid, s in self._tracks.items() if tid not in set(gone)), key=lambda s: s.last_seen)
            gone.extend(s.track_id for s in keep[:overflow])
            self._evicted += overflow
        for tid in gone:
            del self._tracks[tid]
        return tuple(gone)
