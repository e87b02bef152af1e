"""Counting lines: a tracked vehicle whose anchor moves across a line SEGMENT is one crossing.

Rules, chosen so counts stay honest on real, noisy tracks:

- Only the segment counts, not its infinite extension: the motion from the track's previous
  anchor to its current one must intersect ``start -> end`` (``geometry.segments_intersect``).
  An object that only touches or crosses the extension beyond an end is never counted.
- The previous anchor is kept while the track is briefly lost (lost and re-found under the same
  id), so a vehicle that crosses while undetected is still counted when it reappears, once.
- Direction follows ``geometry.side_of_line``: from the negative to the positive side is ``in``.
- Each vehicle is counted at most ONCE per line, in the direction of its first crossing. A vehicle
  wobbling on the line (box jitter, stopped at a red light) therefore never inflates the counts;
  the price is that a real U-turn over the same line is not counted twice.
- An anchor exactly on the line has not crossed yet: the crossing is decided when it leaves the
  line, and only if it leaves on the other side from where it came.
- A track first seen already past the line has no motion across it, so it is not counted
  (unless it continues a vanished track, below).
- ID switches: a track id this line has never seen, appearing while another track has vanished
  (not in this frame, last seen at most ``id_switch_max_gap_s`` ago), within ``id_switch_radius``
  box sizes of where that track was last seen or would be now at its last (smoothed) speed, is a
  CANDIDATE to continue it; the closest pair wins and each vanished track is reserved for one new
  id. A vanished track that was already counted is a candidate only for a new id on the side it
  crossed to (or on the line): a second vehicle following close behind is still on the near side
  when its track starts, so it keeps its own count.
  The candidate is confirmed once the new id has moved ``MIN_STEP_BOXES`` from where it appeared
  (or after ``id_switch_max_gap_s``): if it moves against the vanished track's motion (both clearly
  moving) it is oncoming traffic and keeps its own passage; otherwise it continues the vanished
  track and shares its passage, so the vehicle is counted once whichever of its ids crosses, and a
  crossing made between the vanished id's last anchor and the new id's first one counts (once).
  While the decision is open, the new id's own crossing is held and reported at the decision.
  If the vanished track's own id is seen again (it was hidden, not switched), the link was wrong: the
  new id is another vehicle. The two are split, each with its own passage, and a crossing the new id
  made meanwhile that the shared passage swallowed is reported then, so occlusion never merges two
  vehicles into one count.
- Per-track memory is forgotten ``forget_after_s`` after the track was last seen, and capped at
  ``max_tracks`` (oldest-seen dropped first, counted in ``tracks_evicted``).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.analytics.geometry import Point, segments_intersect, side_of_line
from edge_agent.perception.types import Detections
from event_contract import Direction
from event_contract.models import IDENTIFIER_PATTERN

NormalisedPoint = tuple[float, float]


class LineConfig(BaseModel):
    """One counting line of one camera, drawn in normalised image coordinates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=IDENTIFIER_PATTERN, description="Stable id, sent in events as line_id.")
    start: NormalisedPoint = Field(
        description="(x, y) in 0..1 of the image width/height; the line's arrow starts here."
    )
    end: NormalisedPoint = Field(
        description="(x, y) in 0..1; 'in' is crossing from the left of start->end to its right."
    )
    name: str = Field(default="", max_length=200, description="Display name; empty shows the id.")
    anchor: Literal["center", "bottom_center"] = Field(
        default="bottom_center",
        description="Point of the box that must cross. bottom_center is where a vehicle meets the road, so a line "
        "drawn on the road works on oblique cameras; use center for top-down views.",
    )
    in_label: str | None = Field(default=None, max_length=100, description="Human name of the 'in' direction.")
    out_label: str | None = Field(default=None, max_length=100, description="Human name of the 'out' direction.")
    min_track_hits: int = Field(
        default=2,
        ge=2,
        description="Frames this line must have seen a track (the crossing frame included) before it counts; "
        "2 is the least, since a crossing needs a previous position.",
    )
    forget_after_s: float = Field(
        default=10.0, gt=0.0, description="Seconds after a track was last seen that the line forgets it."
    )
    max_tracks: int = Field(default=4096, ge=1, description="Bound on tracks remembered by this line.")
    id_switch_max_gap_s: float = Field(
        default=1.5,
        ge=0.0,
        description="A new track id continues a track that vanished at most this many seconds earlier (an ID "
        "switch), so the vehicle is not counted twice; 0 turns ID-switch handling off.",
    )
    id_switch_radius: float = Field(
        default=1.0,
        gt=0.0,
        description="How close, in sizes of the vanished track's box (its longer side), the new id must appear "
        "to where that track was last seen or would be now at its last speed.",
    )

    @field_validator("start", "end")
    @classmethod
    def _inside_image(cls, point: NormalisedPoint) -> NormalisedPoint:
        if not all(0.0 <= v <= 1.0 for v in point):
            raise ValueError(f"line points are normalised image coordinates in 0..1, got {point}")
        return point

    @model_validator(mode="after")
    def _not_degenerate(self) -> LineConfig:
        if self.start == self.end:
            raise ValueError(f"line {self.id!r}: start and end are the same point")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class Crossing:
    """One track crossing one line."""

    line_id: str
    track_id: int
    vehicle_class: str
    direction: Direction
    timestamp: dt.datetime


@dataclass(slots=True)
class _Passage:
    """One vehicle's passage over the line; shared by the track ids an ID switch links."""

    counted: Direction | None = None
    counted_by: int | None = None
    """The track id whose crossing counted it."""


@dataclass(slots=True)
class _Candidate:
    """A new id that may continue ``predecessor``, until its motion shows whether it does."""

    predecessor: _TrackMemory
    first_anchor: Point
    first_side: float
    since: dt.datetime
    held: Direction | None = None
    """The new id's own first crossing while undecided."""


@dataclass(slots=True)
class _TrackMemory:
    track_id: int
    class_id: int
    anchor: Point
    side: float
    """Sign of the last side the anchor was strictly on (+1 / -1), 0 while it has only been on the line."""
    hits: int
    last_seen: dt.datetime
    size: float
    """Longer side of the last box, pixels: the unit of ``id_switch_radius``."""
    velocity: Point = (0.0, 0.0)
    """Pixels per second, smoothed over about ``VELOCITY_SMOOTHING_S`` so box jitter averages out."""
    passage: _Passage = field(default_factory=_Passage)
    reserved: bool = False
    """A new id continues this vanished track, or is being checked for it."""
    candidate: _Candidate | None = None
    successor: _TrackMemory | None = None
    """The new id that continues (or may continue) this vanished track."""
    swallowed: Direction | None = None
    """A crossing of this id that was not counted because its (shared) passage already was."""


@dataclass(frozen=True, slots=True)
class _Sighting:
    row: int
    track_id: int
    point: Point
    side: float
    size: float
    class_id: int


class CountingLine:
    """Turns tracked detections of one camera into crossings of one line. Not thread-safe."""

    def __init__(self, config: LineConfig, frame_width: int, frame_height: int) -> None:
        if frame_width <= 0 or frame_height <= 0:
            raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
        self._config = config
        self._start: Point = (config.start[0] * frame_width, config.start[1] * frame_height)
        self._end: Point = (config.end[0] * frame_width, config.end[1] * frame_height)
        self._tracks: dict[int, _TrackMemory] = {}
        self._forget_after = dt.timedelta(seconds=config.forget_after_s)
        self._tracks_evicted = 0
        self._id_switches = 0
        self._links_undone = 0

    @property
    def config(self) -> LineConfig:
        return self._config

    @property
    def segment_px(self) -> tuple[Point, Point]:
        """The line in pixels of this camera's frames (for drawing)."""
        return self._start, self._end

    @property
    def remembered_tracks(self) -> int:
        return len(self._tracks)

    @property
    def tracks_evicted(self) -> int:
        """Tracks forgotten early because max_tracks were held."""
        return self._tracks_evicted

    @property
    def id_switches(self) -> int:
        """New track ids that were confirmed to continue a vanished track."""
        return self._id_switches

    @property
    def links_undone(self) -> int:
        """Links (candidate or confirmed) dropped because the vanished track's own id came back."""
        return self._links_undone

    def update(self, tracked: Detections, timestamp: dt.datetime) -> tuple[Crossing, ...]:
        """Crossings made between the previous update and this one. Rows with tracker_id -1 are ignored."""
        if timestamp.tzinfo is None:
            raise ValueError("line update timestamp must be timezone-aware (UTC)")
        rows = np.flatnonzero(tracked.tracker_id >= 0)
        ids = tracked.tracker_id[rows]
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"line {self._config.id!r}: a tracker id appears twice in one frame")
        anchors = tracked.anchor_points(self._config.anchor)[rows]
        sides = np.sign(side_of_line(anchors, self._start, self._end)) if len(rows) else np.empty(0)
        boxes = tracked.xyxy[rows]
        sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) if len(rows) else np.empty(0)
        sightings = [
            _Sighting(int(row), int(tid), (float(a[0]), float(a[1])), float(side), float(size), int(cls))
            for row, tid, a, side, size, cls in zip(
                rows.tolist(),
                ids.tolist(),
                anchors.tolist(),
                sides.tolist(),
                sizes.tolist(),
                tracked.class_id[rows].tolist(),
                strict=True,
            )
        ]
        known = [s for s in sightings if s.track_id in self._tracks]
        new = [s for s in sightings if s.track_id not in self._tracks]
        directions: dict[int, Direction] = {}
        late: list[tuple[_TrackMemory, Direction]] = []
        # Known tracks first, so that every track still present is marked seen before new ids
        # look for a vanished track to continue.
        for sighting in known:
            memory = self._tracks[sighting.track_id]
            if memory.successor is not None:
                late.extend(self._unlink(memory))
            direction = self._observe(memory, sighting, timestamp)
            if direction is not None:
                directions[sighting.row] = direction
        for sighting in new:
            self._tracks[sighting.track_id] = _TrackMemory(
                track_id=sighting.track_id,
                class_id=sighting.class_id,
                anchor=sighting.point,
                side=sighting.side,
                hits=1,
                last_seen=timestamp,
                size=sighting.size,
            )
        for sighting, predecessor in self._continuations(new, timestamp):
            successor = self._tracks[sighting.track_id]
            predecessor.reserved = True
            predecessor.successor = successor
            successor.candidate = _Candidate(predecessor, sighting.point, sighting.side, timestamp)
        crossings = tuple(
            Crossing(
                line_id=self._config.id,
                track_id=sighting.track_id,
                vehicle_class=tracked.class_names[sighting.class_id],
                direction=directions[sighting.row],
                timestamp=timestamp,
            )
            for sighting in sightings
            if sighting.row in directions
        ) + tuple(
            Crossing(self._config.id, memory.track_id, tracked.class_names[memory.class_id], direction, timestamp)
            for memory, direction in late
        )
        self._forget(timestamp)
        return crossings

    def _unlink(self, predecessor: _TrackMemory) -> list[tuple[_TrackMemory, Direction]]:
        """The vanished track is back under its own id: the id that continued it is another vehicle.

        Returns the other vehicle's crossing that the shared passage swallowed, to be counted now.
        """
        successor = predecessor.successor
        assert successor is not None
        predecessor.successor = None
        predecessor.reserved = False
        self._links_undone += 1
        if successor.candidate is not None and successor.candidate.predecessor is predecessor:
            # Still undecided: the held crossing is the other vehicle's own.
            held = successor.candidate.held
            successor.candidate = None
            counted = self._count(successor, held)
            return [(successor, counted)] if counted is not None else []
        if successor.passage is not predecessor.passage:
            return []
        self._id_switches -= 1
        shared = predecessor.passage
        if shared.counted_by == successor.track_id:
            predecessor.passage = _Passage()  # the count was the other vehicle's; this one has not crossed
            return []
        successor.passage = _Passage()
        swallowed, successor.swallowed = successor.swallowed, None
        counted = self._count(successor, swallowed)
        return [(successor, counted)] if counted is not None else []

    def _observe(self, memory: _TrackMemory, sighting: _Sighting, timestamp: dt.datetime) -> Direction | None:
        point, side = sighting.point, sighting.side
        crossed = (
            side * memory.side < 0  # strictly opposite sides; 0 means "on the line"
            and segments_intersect(memory.anchor, point, self._start, self._end)
        )
        memory.hits += 1
        direction: Direction | None = None
        if crossed and memory.hits >= self._config.min_track_hits:
            direction = "in" if side > 0 else "out"
        elapsed = (timestamp - memory.last_seen).total_seconds()
        if elapsed > 0:
            # The first step sets the velocity; later ones are smoothed into it.
            weight = 1.0 if memory.hits == 2 else min(1.0, elapsed / VELOCITY_SMOOTHING_S)
            step = ((point[0] - memory.anchor[0]) / elapsed, (point[1] - memory.anchor[1]) / elapsed)
            memory.velocity = (
                memory.velocity[0] + weight * (step[0] - memory.velocity[0]),
                memory.velocity[1] + weight * (step[1] - memory.velocity[1]),
            )
        memory.anchor = point
        memory.last_seen = timestamp
        memory.size = sighting.size
        memory.class_id = sighting.class_id
        if side != 0:
            memory.side = side
        if memory.candidate is not None:
            return self._decide(memory, direction, timestamp)
        return self._count(memory, direction)

    def _decide(self, memory: _TrackMemory, direction: Direction | None, timestamp: dt.datetime) -> Direction | None:
        """A new id that may continue a vanished track: hold its crossing until its motion tells."""
        candidate = memory.candidate
        assert candidate is not None
        if candidate.held is None:
            candidate.held = direction
        predecessor = candidate.predecessor
        step = (memory.anchor[0] - candidate.first_anchor[0], memory.anchor[1] - candidate.first_anchor[1])
        unit = max(predecessor.size, 1.0)
        waited = (timestamp - candidate.since).total_seconds() >= self._config.id_switch_max_gap_s
        if math.hypot(*step) < MIN_STEP_BOXES * unit and not waited:
            return None
        memory.candidate = None
        moving = math.hypot(*predecessor.velocity) >= MIN_SPEED_BOXES_PER_S * unit
        oncoming = moving and step[0] * predecessor.velocity[0] + step[1] * predecessor.velocity[1] < 0
        if oncoming and math.hypot(*step) >= MIN_STEP_BOXES * unit:
            predecessor.reserved = False  # another vehicle: a later new id may still continue it
            predecessor.successor = None
            return self._count(memory, candidate.held)
        self._id_switches += 1
        memory.passage = predecessor.passage
        memory.hits += predecessor.hits
        # The vehicle may have crossed between the vanished id's last sighting and the new id's first.
        bridged = candidate.first_side * predecessor.side < 0 and segments_intersect(
            predecessor.anchor, candidate.first_anchor, self._start, self._end
        )
        if bridged:
            return self._count(memory, "in" if candidate.first_side > 0 else "out")
        return self._count(memory, candidate.held)

    @staticmethod
    def _count(memory: _TrackMemory, direction: Direction | None) -> Direction | None:
        """Count ``direction`` unless this vehicle's passage was already counted (then keep it aside)."""
        if direction is None:
            return None
        passage = memory.passage
        if passage.counted is not None:
            memory.swallowed = memory.swallowed or direction
            return None
        passage.counted, passage.counted_by = direction, memory.track_id
        return direction

    def _continuations(self, new: list[_Sighting], timestamp: dt.datetime) -> list[tuple[_Sighting, _TrackMemory]]:
        """Candidate (new id, vanished track) pairs, closest first; each side used at most once."""
        max_gap = self._config.id_switch_max_gap_s
        if not new or max_gap <= 0:
            return []
        new_ids = {s.track_id for s in new}
        vanished = [
            memory
            for track_id, memory in self._tracks.items()
            if track_id not in new_ids
            and not memory.reserved
            and memory.last_seen < timestamp
            and (timestamp - memory.last_seen).total_seconds() <= max_gap
        ]
        candidates: list[tuple[float, int, int]] = []
        for i, sighting in enumerate(new):
            for j, memory in enumerate(vanished):
                if memory.passage.counted is not None:
                    crossed_to = 1.0 if memory.passage.counted == "in" else -1.0
                    if sighting.side * crossed_to < 0:
                        continue  # on the near side: a vehicle that has not crossed yet
                gap = (timestamp - memory.last_seen).total_seconds()
                distance = _distance_to_path(sighting.point, memory.anchor, memory.velocity, gap)
                if distance <= self._config.id_switch_radius * max(memory.size, 1.0):
                    candidates.append((distance, i, j))
        pairs: list[tuple[_Sighting, _TrackMemory]] = []
        used_new: set[int] = set()
        used_old: set[int] = set()
        for _, i, j in sorted(candidates):
            if i not in used_new and j not in used_old:
                used_new.add(i)
                used_old.add(j)
                pairs.append((new[i], vanished[j]))
        return pairs

    def _forget(self, now: dt.datetime) -> None:
        stale = [tid for tid, m in self._tracks.items() if now - m.last_seen > self._forget_after]
        for tid in stale:
            del self._tracks[tid]
        overflow = len(self._tracks) - self._config.max_tracks
        if overflow > 0:
            oldest = sorted(self._tracks, key=lambda tid: self._tracks[tid].last_seen)[:overflow]
            for tid in oldest:
                del self._tracks[tid]
            self._tracks_evicted += overflow


VELOCITY_SMOOTHING_S = 0.5
"""Time constant of the track velocity's exponential smoothing."""
MIN_SPEED_BOXES_PER_S = 0.5
"""Below this smoothed speed (box sizes per second) a vanished track counts as stopped: direction unknown."""
MIN_STEP_BOXES = 0.25
"""How far (box sizes) a new id must move from where it appeared before its direction is judged."""


def _distance_to_path(point: Point, last: Point, velocity: Point, gap_s: float) -> float:
    """Distance from ``point`` to the path from ``last`` to where constant ``velocity`` leads in ``gap_s``."""
    end = (last[0] + velocity[0] * gap_s, last[1] + velocity[1] * gap_s)
    dx, dy = end[0] - last[0], end[1] - last[1]
    length_sq = dx * dx + dy * dy
    along = (point[0] - last[0]) * dx + (point[1] - last[1]) * dy
    t = 0.0 if length_sq == 0 else max(0.0, min(1.0, along / length_sq))
    return math.hypot(point[0] - (last[0] + t * dx), point[1] - (last[1] + t * dy))
