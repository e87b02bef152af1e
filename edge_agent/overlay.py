"""What an annotated view of one analysed frame shows: tracked boxes, the lines and their running counts.

``Overlay`` is an immutable value built from a frame and its ``StepResult``; ``annotate`` draws
it on pixels (edge-agent analyze, the live MJPEG preview) and ``overlay_message`` turns it into
JSON for browsers that draw their own overlays (the preview's Server-Sent Events).
``RunningCounts`` accumulates crossings since a start (the agent's start, or the clip's first
frame) without ever changing a value already handed out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from edge_agent.analytics.lines import Crossing, LineConfig
from edge_agent.perception.types import Detections


@dataclass(frozen=True, slots=True)
class LineCounts:
    """Crossings of one line so far, per direction and class."""

    inbound: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    outbound: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def in_total(self) -> int:
        return sum(self.inbound.values())

    @property
    def out_total(self) -> int:
        return sum(self.outbound.values())

    def plus(self, crossings: Iterable[Crossing]) -> LineCounts:
        inbound, outbound = dict(self.inbound), dict(self.outbound)
        for crossing in crossings:
            bucket = inbound if crossing.direction == "in" else outbound
            bucket[crossing.vehicle_class] = bucket.get(crossing.vehicle_class, 0) + 1
        return LineCounts(
            MappingProxyType(dict(sorted(inbound.items()))), MappingProxyType(dict(sorted(outbound.items())))
        )


@dataclass(frozen=True, slots=True)
class RunningCounts:
    """``LineCounts`` of every line of one camera, in the camera's line order."""

    lines: Mapping[str, LineCounts]

    @classmethod
    def zero(cls, lines: Sequence[LineConfig]) -> RunningCounts:
        return cls(MappingProxyType({line.id: LineCounts() for line in lines}))

    def plus(self, crossings: Sequence[Crossing]) -> RunningCounts:
        """These counts with ``crossings`` added; ``self`` when there are none (the usual frame)."""
        if not crossings:
            return self
        unknown = {c.line_id for c in crossings} - set(self.lines)
        if unknown:
            raise ValueError(f"crossings of unknown lines {sorted(unknown)}")
        updated = {
            line_id: counts.plus(c for c in crossings if c.line_id == line_id) for line_id, counts in self.lines.items()
        }
        return RunningCounts(MappingProxyType(updated))

    def get(self, line_id: str) -> LineCounts:
        return self.lines.get(line_id, LineCounts())


@dataclass(frozen=True, slots=True)
class Overlay:
    """Everything drawn over one frame; boxes are in pixels of a ``frame_width`` x ``frame_height`` frame."""

    frame_width: int
    frame_height: int
    tracked: Detections
    lines: tuple[LineConfig, ...]
    counts: RunningCounts

    def __post_init__(self) -> None:
        if self.frame_width <= 0 or self.frame_height <= 0:
            raise ValueError(f"frame size must be positive, got {self.frame_width}x{self.frame_height}")


def overlay_message(
    overlay: Overlay, *, camera_id: str, sequence: int, timestamp: dt.datetime, precision: int = 1
) -> dict[str, Any]:
    """JSON-ready description of one analysed frame, for browsers that draw their own overlay.

    Boxes are pixels of the frame whose size is given; line points are normalised (0..1).
    """
    tracked = overlay.tracked
    names = tracked.names
    detections = [
        {
            "track_id": int(tracked.tracker_id[i]),
            "class": names[i],
            "confidence": round(float(tracked.confidence[i]), 3),
            "box": [round(float(v), precision) for v in tracked.xyxy[i]],
        }
        for i in range(len(tracked))
    ]
    lines = []
    for line in overlay.lines:
        counts = overlay.counts.get(line.id)
        lines.append(
            {
                "id": line.id,
                "name": line.display_name,
                "start": list(line.start),
                "end": list(line.end),
                "in_label": line.in_label,
                "out_label": line.out_label,
                "in": dict(counts.inbound),
                "out": dict(counts.outbound),
                "in_total": counts.in_total,
                "out_total": counts.out_total,
            }
        )
    return {
        "camera_id": camera_id,
        "sequence": sequence,
        "time": timestamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "width": overlay.frame_width,
        "height": overlay.frame_height,
        "detections": detections,
        "lines": lines,
    }
