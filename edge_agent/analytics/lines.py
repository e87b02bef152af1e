"""Counting lines: a tracked vehicle whose anchor moves across a line SEGMENT is one crossing.

Rules, chosen so counts stay honest on real, noisy tracks:

- Only the segment counts, not its infinite extension: the motion from the track's previous
  anchor to its current one must intersect ``start -> end`` (``geometry.segments_intersect``).
  The previous anchor is kept while the track is briefly lost, so a vehicle that crosses while
  undetected is still counted when it reappears.
- Direction follows ``geometry.side_of_line``: from the negative to the positive side is ``in``.
- Each track is counted at most ONCE per line, in the direction of its first crossing. A vehicle
  wobbling on the line (box jitter, stopped at a red light) therefore never inflates the counts;
  the price is that a real U-turn over the same line is not counted twice.
- An anchor exactly on the line has not crossed yet: the crossing is decided when it leaves the
  line, and only if it leaves on the other side from where it came.
- A track first seen already past the line has no motion across it, so it is not counted.
- Per-track memory is forgotten ``forget_after_s`` after the track was last seen, and capped at
  ``max_tracks`` (oldest-seen dropped first, counted in ``tracks_evicted``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
class _TrackMemory:
    anchor: Point
    side: float
    """Sign of the last side the anchor was strictly on (+1 / -1), 0 while it has only been on the line."""
    hits: int
    last_seen: dt.datetime
    counted: bool = False


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

    def update(self, tracked: Detections, timestamp: dt.datetime) -> tuple[Crossing, ...]:
        """Crossings made between the previous update and this one. Rows with tracker_id -1 are ignored."""
        if timestamp.tzinfo is None:
            raise ValueError("line update timestamp must be timezone-aware (UTC)")
        has_id = tracked.tracker_id >= 0
        ids = tracked.tracker_id[has_id]
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"line {self._config.id!r}: a tracker id appears twice in one frame")
        anchors = tracked.anchor_points(self._config.anchor)[has_id]
        class_ids = tracked.class_id[has_id]
        sides = np.sign(side_of_line(anchors, self._start, self._end)) if len(anchors) else np.empty(0)

        crossings: list[Crossing] = []
        for track_id, anchor, side, class_id in zip(
            ids.tolist(), anchors.tolist(), sides.tolist(), class_ids.tolist(), strict=True
        ):
            point: Point = (float(anchor[0]), float(anchor[1]))
            direction = self._observe(int(track_id), point, float(side), timestamp)
            if direction is not None:
                crossings.append(
                    Crossing(
                        line_id=self._config.id,
                        track_id=int(track_id),
                        vehicle_class=tracked.class_names[int(class_id)],
                        direction=direction,
                        timestamp=timestamp,
                    )
                )
        self._forget(timestamp)
        return tuple(crossings)

    def _observe(self, track_id: int, point: Point, side: float, timestamp: dt.datetime) -> Direction | None:
        memory = self._tracks.get(track_id)
        if memory is None:
            self._tracks[track_id] = _TrackMemory(anchor=point, side=side, hits=1, last_seen=timestamp)
            return None
        direction: Direction | None = None
        crossed = (
            side * memory.side < 0  # strictly opposite sides; 0 means "on the line"
            and segments_intersect(memory.anchor, point, self._start, self._end)
        )
        memory.hits += 1
        if crossed and not memory.counted and memory.hits >= self._config.min_track_hits:
            direction = "in" if side > 0 else "out"
            memory.counted = True
        memory.anchor = point
        memory.last_seen = timestamp
        if side != 0:
            memory.side = side
        return direction

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
