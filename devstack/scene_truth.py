"""Ground truth of a rendered scene: line crossings found with the analytics' own geometry.

An object's anchor is the centre of its truth box (the whole silhouette, clipped to the
frame, whether or not a nearer vehicle hides part of it). Between two consecutive frames
the anchor's motion either crosses the counting SEGMENT (``geometry.segments_intersect``:
a crossing, 'in' when it goes from the negative to the positive side of
``geometry.side_of_line``), or crosses only the line's infinite extension beyond an end
(recorded as ``beyond_end``: a correct counter must ignore it), or neither.

The scene keeps a few promises so that the clip measures counting and not luck; the
generator drops vehicles that would break them and ``check_truth`` verifies the result.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.analytics.geometry import Point, segments_intersect, side_of_line

Box = tuple[int, int, int, int, bool]
"""(x1, y1, x2, y2, fully_inside) in pixels, exclusive ends."""
Segment = tuple[Point, Point]

END_MARGIN_PX = 20.0
"""No anchor crosses the counting line's row closer than this to one of the segment's ends (inside or
outside), so a box a few pixels off never turns a correct 'beyond the end' into a crossing or back."""
AT_LINE_PX = 4.0
"""An anchor this close to the line's row, not moving, counts as standing at the line."""


@dataclass(slots=True)
class ObjectTrack:
    """One vehicle's truth: who it is and its box in every frame it is in view."""

    object_id: int
    kind: str
    heading: str
    lane: int
    boxes: dict[int, Box]
    visible: dict[int, float] = field(default_factory=dict)
    """frame -> share of the silhouette that no nearer vehicle hides (filled while rendering)."""


def centre(box: Box) -> Point:
    x1, y1, x2, y2, _ = box
    return ((x1 + x2) / 2, (y1 + y2) / 2)


@dataclass(frozen=True, slots=True)
class LineEvents:
    """What one object's anchor did at the counting line."""

    crossings: tuple[tuple[int, str], ...]
    """(frame, direction) of each crossing of the segment."""
    beyond_end: tuple[tuple[int, float], ...]
    """(frame, pixels beyond the nearest end) of each crossing of the line's extension only."""
    closest_to_end_px: float
    """Least distance from a segment end at which the anchor crossed the line's row (inf if never)."""


def line_events(track: ObjectTrack, line: Segment, frame_width: int) -> LineEvents:
    start, end = line
    crossings: list[tuple[int, str]] = []
    beyond: list[tuple[int, float]] = []
    closest = float("inf")
    ends = [x for x in (start[0], end[0]) if 0 < x < frame_width]  # an end on the frame border is no real end
    for prev, cur in itertools.pairwise(sorted(track.boxes)):
        if cur != prev + 1:
            continue
        p, q = centre(track.boxes[prev]), centre(track.boxes[cur])
        sides = side_of_line(np.array([p, q], dtype=np.float32), start, end)
        if float(sides[0]) * float(sides[1]) >= 0:
            continue  # this horizontal line is never touched: anchors sit on half pixels, the line on a quarter
        x_at_row = p[0] + (start[1] - p[1]) * (q[0] - p[0]) / (q[1] - p[1])
        if ends:
            closest = min(closest, *(abs(x_at_row - x) for x in ends))
        if segments_intersect(p, q, start, end):
            crossings.append((cur, "in" if float(sides[0]) < 0 else "out"))
        else:
            beyond.append((cur, min(abs(x_at_row - x) for x in ends) if ends else float("inf")))
    return LineEvents(tuple(crossings), tuple(beyond), closest)


def seconds_at_line(track: ObjectTrack, line: Segment, fps: int) -> float:
    """How long the anchor stood still within AT_LINE_PX of the line's row (the stop_on_line promise)."""
    row = line[0][1]
    frames = sorted(track.boxes)
    still = 0
    for prev, cur in itertools.pairwise(frames):
        a, b = centre(track.boxes[prev]), centre(track.boxes[cur])
        if cur == prev + 1 and a == b and abs(b[1] - row) <= AT_LINE_PX:
            still += 1
    return still / fps


@dataclass(frozen=True, slots=True)
class ClipRules:
    """What the promises are checked against: the line and the clip's frame size, length and timing."""

    line: Segment
    frame_width: int
    last_frame: int
    fps: int
    first_crossing_after_s: float
    max_pair_iou: float | None


def promise_problems(track: ObjectTrack, rules: ClipRules) -> list[str]:
    """Why this object would make the clip unfair or ambiguous (empty when it keeps every promise)."""
    if not track.boxes:
        return ["never in view"]
    problems = []
    frames = sorted(track.boxes)
    if frames[0] == 0 or frames[-1] >= rules.last_frame:
        problems.append("in view at the first or the last frame (would not pass through fully)")
    if frames != list(range(frames[0], frames[-1] + 1)):
        problems.append("leaves the view and comes back")
    events = line_events(track, rules.line, rules.frame_width)
    if len(events.crossings) + len(events.beyond_end) != 1:
        problems.append(f"meets the line {len(events.crossings)} + {len(events.beyond_end)} times, not once")
    if events.closest_to_end_px < END_MARGIN_PX:
        problems.append(f"meets the line {events.closest_to_end_px:.1f} px from an end")
    first = min((f for f, _ in (*events.crossings, *events.beyond_end)), default=None)
    if first is not None and first / rules.fps < rules.first_crossing_after_s:
        problems.append(f"meets the line at {first / rules.fps:.2f} s, before {rules.first_crossing_after_s} s")
    return problems


def box_iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def overlapping_later(tracks: list[ObjectTrack], max_iou: float) -> set[int]:
    """Indices of tracks whose box overlaps an EARLIER track's box above ``max_iou`` in some frame."""
    by_frame: dict[int, list[tuple[int, Box]]] = {}
    for index, track in enumerate(tracks):
        for f, box in track.boxes.items():
            by_frame.setdefault(f, []).append((index, box))
    later: set[int] = set()
    for boxes in by_frame.values():
        for (i, a), (j, b) in itertools.combinations(boxes, 2):
            if box_iou(a, b) > max_iou:
                later.add(max(i, j))
    return later


def crossings(tracks: Iterable[ObjectTrack], line: Segment, frame_width: int, fps: int) -> list[dict[str, Any]]:
    """Every crossing of the counting segment, in frame order."""
    events = [
        {
            "object_id": track.object_id,
            "class": track.kind,
            "frame": frame,
            "time_s": round(frame / fps, 6),
            "direction": direction,
        }
        for track in tracks
        for frame, direction in line_events(track, line, frame_width).crossings
    ]
    events.sort(key=lambda e: (e["frame"], e["object_id"]))
    return events


def beyond_end(tracks: Iterable[ObjectTrack], line: Segment, frame_width: int, fps: int) -> list[dict[str, Any]]:
    """Every pass over the line's extension beyond an end: a correct counter ignores these."""
    return [
        {
            "object_id": track.object_id,
            "class": track.kind,
            "frame": frame,
            "time_s": round(frame / fps, 6),
            "px_beyond_end": round(distance, 1),
        }
        for track in tracks
        for frame, distance in line_events(track, line, frame_width).beyond_end
    ]


def count_table(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{'in': {class: n}, 'out': {class: n}}."""
    counts: dict[str, dict[str, int]] = {"in": {}, "out": {}}
    for event in events:
        by_class = counts[event["direction"]]
        by_class[event["class"]] = by_class.get(event["class"], 0) + 1
    return counts


def check_truth(tracks: list[ObjectTrack], rules: ClipRules) -> None:
    """Raise when the finished clip breaks a promise (the generator should have prevented it)."""
    problems = [
        f"object {track.object_id}: {problem}" for track in tracks for problem in promise_problems(track, rules)
    ]
    if rules.max_pair_iou is not None:
        problems += [
            f"object {tracks[i].object_id} overlaps an earlier one"
            for i in overlapping_later(tracks, rules.max_pair_iou)
        ]
    if problems:
        raise RuntimeError("scene ground truth breaks its promises: " + "; ".join(problems[:5]))
