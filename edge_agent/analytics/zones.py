"""Zones: polygons with occupancy (vehicles inside, by class) and dwell time (enter -> exit per track).

Rules:

- A zone is a polygon in normalised image coordinates (at least 3 points, each in 0..1, edges
  that do not cross or touch each other, non-zero area), validated in ``ZoneConfig``.
- A vehicle is inside when its anchor point (``bottom_center`` by default: where it meets the
  road) is inside the polygon. Only tracked rows count (tracker_id >= 0).
- Occupancy of a frame: the tracked vehicles inside it, by class.
- A track ENTERS when it is first seen inside (a track first seen already inside enters then).
  It stays inside while it is seen inside again within ``exit_grace_s``; it EXITS once it has not
  been seen inside for longer than that (lost by the tracker, or seen outside), and the exit is
  dated when it was last seen inside. So a track briefly lost, or jittering over the boundary,
  neither leaves nor re-enters, and its dwell (exit - entry) is what was observed.
- ``expire(now)`` applies the same rule without a frame, for times when no frames come (a dead
  camera): visits then end at their last sighting instead of hanging open.
- Visits held are capped at ``max_tracks`` (the longest unseen dropped first, counted in
  ``visits_evicted``; an evicted visit is not reported as an exit).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edge_agent.analytics.geometry import points_in_polygon, polygon_area, self_intersection
from edge_agent.perception.types import Detections
from event_contract.models import IDENTIFIER_PATTERN

NormalisedPoint = tuple[float, float]
MIN_ZONE_AREA = 1e-4
"""Least polygon area, as a fraction of the image: smaller is a drawing mistake (a sliver or a line)."""


def check_simple_polygon(polygon: tuple[NormalisedPoint, ...], what: str) -> tuple[NormalisedPoint, ...]:
    """A drawn area (``what``: "zone", "rule area"): 3 to 64 points in 0..1, edges that do not cross, an area."""
    if not 3 <= len(polygon) <= 64:
        raise ValueError(f"a {what} polygon needs 3 to 64 points, got {len(polygon)}")
    for index, point in enumerate(polygon):
        if not all(0.0 <= v <= 1.0 for v in point):  # NaN fails too
            raise ValueError(f"point {index} {point}: {what} points are normalised image coordinates in 0..1")
    crossing = self_intersection(polygon)
    if crossing is not None:
        i, j = crossing
        raise ValueError(
            f"the polygon's edges {i} (point {i} -> {(i + 1) % len(polygon)}) and {j} "
            f"(point {j} -> {(j + 1) % len(polygon)}) cross or overlap: draw the points in order around the {what}"
        )
    if polygon_area(polygon) < MIN_ZONE_AREA:
        raise ValueError(f"the polygon's area is below {MIN_ZONE_AREA} of the image: it is a line, not a {what}")
    return polygon


class ZoneConfig(BaseModel):
    """One zone of one camera, drawn in normalised image coordinates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=IDENTIFIER_PATTERN, description="Stable id, sent in events as zone_id.")
    name: str = Field(default="", max_length=200, description="Display name; empty shows the id.")
    polygon: tuple[NormalisedPoint, ...] = Field(
        description="3 to 64 (x, y) points in 0..1 of the image width/height, in drawing order; the last point "
        "joins the first. Edges must not cross."
    )
    anchor: Literal["center", "bottom_center"] = Field(
        default="bottom_center",
        description="Point of the box that must be inside: bottom_center (where the vehicle meets the road) for "
        "oblique cameras, center for top-down views.",
    )
    exit_grace_s: float = Field(
        default=2.0,
        ge=0.0,
        le=60.0,
        description="Seconds a vehicle may go unseen inside (lost by the tracker, or jittering over the edge) "
        "before it counts as having left; its exit is dated at its last sighting inside.",
    )
    max_tracks: int = Field(default=4096, ge=1, description="Bound on vehicles held inside this zone at once.")

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, polygon: tuple[NormalisedPoint, ...]) -> tuple[NormalisedPoint, ...]:
        return check_simple_polygon(polygon, "zone")

    @property
    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class ZoneEntry:
    track_id: int
    vehicle_class: str
    timestamp: dt.datetime


@dataclass(frozen=True, slots=True)
class ZoneExit:
    track_id: int
    vehicle_class: str
    entered: dt.datetime
    exited: dt.datetime
    """When the vehicle was last seen inside."""

    @property
    def dwell_s(self) -> float:
        return (self.exited - self.entered).total_seconds()


@dataclass(frozen=True, slots=True)
class ZoneObservation:
    """What one zone saw at one time."""

    zone_id: str
    timestamp: dt.datetime
    occupancy: tuple[tuple[str, int], ...] | None
    """(class, vehicles inside) for the classes present, sorted; None when no frame was analysed (``expire``)."""
    entries: tuple[ZoneEntry, ...]
    exits: tuple[ZoneExit, ...]
    longest_inside_s: float | None
    """Longest stay so far of the vehicles still inside (within their grace); None when none is."""

    @property
    def occupancy_total(self) -> int | None:
        return None if self.occupancy is None else sum(n for _, n in self.occupancy)


@dataclass(slots=True)
class _Visit:
    entered: dt.datetime
    last_inside: dt.datetime
    vehicle_class: str


class Zone:
    """Occupancy and dwell of one zone of one camera. Not thread-safe."""

    def __init__(self, config: ZoneConfig, frame_width: int, frame_height: int) -> None:
        if frame_width <= 0 or frame_height <= 0:
            raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
        self._config = config
        self._polygon = np.array(config.polygon, dtype=np.float64) * np.array([frame_width, frame_height])
        self._grace = dt.timedelta(seconds=config.exit_grace_s)
        self._visits: dict[int, _Visit] = {}
        self._visits_evicted = 0

    @property
    def config(self) -> ZoneConfig:
        return self._config

    @property
    def polygon_px(self) -> tuple[tuple[float, float], ...]:
        """The polygon in pixels of this camera's frames (for drawing)."""
        return tuple((float(x), float(y)) for x, y in self._polygon)

    @property
    def inside(self) -> int:
        """Vehicles currently inside (their grace included)."""
        return len(self._visits)

    @property
    def visits_evicted(self) -> int:
        return self._visits_evicted

    def update(self, tracked: Detections, timestamp: dt.datetime) -> ZoneObservation:
        """Occupancy at ``timestamp`` and the entries and exits it decides."""
        if timestamp.tzinfo is None:
            raise ValueError("zone update timestamp must be timezone-aware (UTC)")
        rows = np.flatnonzero(tracked.tracker_id >= 0)
        ids = tracked.tracker_id[rows]
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"zone {self._config.id!r}: a tracker id appears twice in one frame")
        anchors = tracked.anchor_points(self._config.anchor)[rows]
        inside = points_in_polygon(anchors, self._polygon) if len(rows) else np.zeros(0, dtype=np.bool_)
        occupancy: dict[str, int] = {}
        entries: list[ZoneEntry] = []
        for track_id, class_id in zip(ids[inside].tolist(), tracked.class_id[rows][inside].tolist(), strict=True):
            vehicle_class = tracked.class_names[int(class_id)]
            occupancy[vehicle_class] = occupancy.get(vehicle_class, 0) + 1
            visit = self._visits.get(int(track_id))
            if visit is None:
                self._visits[int(track_id)] = _Visit(timestamp, timestamp, vehicle_class)
                entries.append(ZoneEntry(int(track_id), vehicle_class, timestamp))
            else:
                visit.last_inside = max(visit.last_inside, timestamp)
                visit.vehicle_class = vehicle_class  # the tracker's class vote may settle over time
        exits = self._expire(timestamp)
        self._evict()
        return ZoneObservation(
            zone_id=self._config.id,
            timestamp=timestamp,
            occupancy=tuple(sorted(occupancy.items())),
            entries=tuple(entries),
            exits=exits,
            longest_inside_s=self._longest_inside(timestamp),
        )

    def expire(self, now: dt.datetime) -> ZoneObservation:
        """Exits decided by the passing of time alone (no frame analysed at ``now``)."""
        if now.tzinfo is None:
            raise ValueError("zone expire time must be timezone-aware (UTC)")
        exits = self._expire(now)
        return ZoneObservation(self._config.id, now, None, (), exits, self._longest_inside(now))

    def _expire(self, now: dt.datetime) -> tuple[ZoneExit, ...]:
        gone = [tid for tid, visit in self._visits.items() if now - visit.last_inside > self._grace]
        exits = tuple(
            ZoneExit(tid, self._visits[tid].vehicle_class, self._visits[tid].entered, self._visits[tid].last_inside)
            for tid in sorted(gone, key=lambda tid: (self._visits[tid].last_inside, tid))
        )
        for tid in gone:
            del self._visits[tid]
        return exits

    def _longest_inside(self, now: dt.datetime) -> float | None:
        if not self._visits:
            return None
        return max(0.0, *((now - visit.entered).total_seconds() for visit in self._visits.values()))

    def _evict(self) -> None:
        overflow = len(self._visits) - self._config.max_tracks
        if overflow > 0:
            oldest = sorted(self._visits, key=lambda tid: self._visits[tid].last_inside)[:overflow]
            for tid in oldest:
                del self._visits[tid]
            self._visits_evicted += overflow
