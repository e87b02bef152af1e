"""Count a rendered scene with the product's own analytics and score the counts against its truth.

The counting runs ``edge_agent.pipeline.AnalyticsStep`` (detect -> track -> count lines) on every
decoded frame, offline, with the frame's index / fps as its time: the same code path a camera takes,
without the reader threads. Detections can be recorded once and replayed (``ReplayDetector``), so
tracker settings are compared on identical detector output in seconds.

Scoring: totals per direction (and per class through an explicit class map) against the truth, plus
a one-to-one matching of counts to vehicles (by box overlap at the counting frame) that says which
vehicles were missed and which counts were extra.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from devstack.scene_eval import decode_frames
from edge_agent.analytics.lines import LineConfig
from edge_agent.perception.detector import Detector
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Detections, Frame
from edge_agent.pipeline import AnalyticsStep

LINE_ID = "count"
MATCH_IOU = 0.3
"""Least IoU between a counting track's box and a vehicle's truth box for the count to be that vehicle's."""
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def scene_line(truth: Mapping[str, Any]) -> LineConfig:
    """The truth's counting line as a camera would configure it (normalised coordinates, centre anchor)."""
    width, height = float(truth["width"]), float(truth["height"])
    (x1, y1), (x2, y2) = truth["line"]["start"], truth["line"]["end"]
    return LineConfig(
        id=LINE_ID,
        start=(x1 / width, y1 / height),
        end=(x2 / width, y2 / height),
        anchor=truth["anchor"],
    )


class RecordingDetector:
    """Runs a detector and keeps every output, to replay it later."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self.outputs: list[Detections] = []

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._detector.class_names

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        dets = self._detector.detect(image)
        self.outputs.append(dets)
        return dets


class ReplayDetector:
    """Hands back recorded detections in order, whatever the image."""

    def __init__(self, outputs: Sequence[Detections]) -> None:
        if not outputs:
            raise ValueError("nothing to replay")
        self._outputs = outputs
        self._next = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._outputs[0].class_names

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        del image
        if self._next >= len(self._outputs):
            raise IndexError("replay ran out of recorded detections")
        dets = self._outputs[self._next]
        self._next += 1
        return dets


@dataclass(frozen=True, slots=True)
class CountedCrossing:
    frame: int
    track_id: int
    direction: str
    vehicle_class: str
    xyxy: tuple[float, float, float, float]
    """The track's box at the crossing (to tell which vehicle it was)."""


def count_clip(
    images: Iterable[npt.NDArray[np.uint8]] | Iterable[tuple[int, npt.NDArray[np.uint8]]],
    detector: Detector,
    tracker: TrackerConfig,
    line: LineConfig,
    fps: float,
) -> list[CountedCrossing]:
    """Run the analytics step over ``images`` (frame i taken at i / fps seconds); every crossing counted.

    ``images`` are the clip's frames in order, or (frame index, image) pairs when only some frames are
    analysed (a camera analysed at a lower rate than it sends).
    """
    step = AnalyticsStep("bench", "scene", detector, ByteTracker(tracker), lines=[line], intervals_s=(3600,))
    counted: list[CountedCrossing] = []
    # A crossing can be counted for a track that is not in this frame's output (a lost track whose
    # predicted position crossed): its box is then the last one the tracker reported for it.
    last_box: dict[int, tuple[float, float, float, float]] = {}
    for position, item in enumerate(images):
        index, image = item if isinstance(item, tuple) else (position, item)
        frame = Frame(image, "scene", index, EPOCH + dt.timedelta(seconds=index / fps))
        result = step.process(frame)
        for track_id, xyxy in zip(result.tracked.tracker_id.tolist(), result.tracked.xyxy.tolist(), strict=True):
            last_box[int(track_id)] = (float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))
        for crossing in result.crossings:
            box = last_box.get(crossing.track_id, (0.0, 0.0, 0.0, 0.0))
            counted.append(CountedCrossing(index, crossing.track_id, crossing.direction, crossing.vehicle_class, box))
    return counted


def blank_frames(width: int, height: int, count: int) -> Iterable[npt.NDArray[np.uint8]]:
    """Stand-in images for a replay (the replayed detector ignores them)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for _ in range(count):
        yield image


def count_video(
    video: Any, detector: Detector, tracker: TrackerConfig, truth: Mapping[str, Any], every: int = 1
) -> list[CountedCrossing]:
    """Count a rendered clip, analysing every ``every``-th frame (1 = all)."""
    return count_clip(decode_frames(video, every), detector, tracker, scene_line(truth), truth["fps"])


def _ratio(counted: int, true: int) -> float:
    if true == 0:
        return 0.0 if counted == 0 else float("inf")
    return abs(counted - true) / true


def score_counts(
    truth: Mapping[str, Any], counted: Sequence[CountedCrossing], class_map: Mapping[str, str] | None
) -> dict[str, Any]:
    """Counts per direction (and class, when ``class_map`` says how truth classes map to counted ones)."""
    true_events = truth["crossings"]
    true_in = sum(1 for c in true_events if c["direction"] == "in")
    true_out = len(true_events) - true_in
    counted_in = sum(1 for c in counted if c.direction == "in")
    counted_out = len(counted) - counted_in
    missed, extra = _match(truth, counted)
    result: dict[str, Any] = {
        "true": len(true_events),
        "true_in": true_in,
        "true_out": true_out,
        "counted": len(counted),
        "counted_in": counted_in,
        "counted_out": counted_out,
        "count_error": round(_ratio(len(counted), len(true_events)), 4),
        "count_error_in": round(_ratio(counted_in, true_in), 4),
        "count_error_out": round(_ratio(counted_out, true_out), 4),
        "missed": len(missed),
        "extra": len(extra),
        "missed_objects": [
            {"object_id": c["object_id"], "frame": c["frame"], "direction": c["direction"]} for c in missed
        ],
        "extra_counts": [{"track_id": c.track_id, "frame": c.frame, "direction": c.direction} for c in extra],
        "beyond_end_passes": len(truth.get("beyond_end", [])),
    }
    if class_map is not None:
        result["by_class"] = _by_class(true_events, counted, class_map)
    return result


def _match(
    truth: Mapping[str, Any], counted: Sequence[CountedCrossing]
) -> tuple[list[Mapping[str, Any]], list[CountedCrossing]]:
    """Which true crossings no count stands for, and which counts stand for no true crossing.

    A count belongs to the vehicle whose truth box overlaps the track's box most (IoU >= MATCH_IOU) at the
    counting frame; it stands for that vehicle's crossing when the directions agree and the vehicle was
    not counted already. So a vehicle counted twice, a vehicle passing beyond the line's end that was
    counted, and a count on nothing are all extra.
    """
    boxes: dict[int, list[tuple[int, tuple[int, int, int, int]]]] = {}
    for obj in truth["objects"]:
        for row in obj["boxes"]:
            boxes.setdefault(row[0], []).append((obj["id"], tuple(row[1:5])))
    crossing_of = {c["object_id"]: c for c in truth["crossings"]}
    used: set[int] = set()
    extra: list[CountedCrossing] = []
    for count in counted:
        candidates = boxes.get(count.frame, [])
        best_id, best_iou = -1, MATCH_IOU
        for object_id, box in candidates:
            iou = _iou(count.xyxy, box)
            if iou >= best_iou:
                best_id, best_iou = object_id, iou
        target = crossing_of.get(best_id)
        if target is None or best_id in used or target["direction"] != count.direction:
            extra.append(count)
        else:
            used.add(best_id)
    missed = [c for c in truth["crossings"] if c["object_id"] not in used]
    return missed, extra


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _by_class(
    true_events: Sequence[Mapping[str, Any]], counted: Sequence[CountedCrossing], class_map: Mapping[str, str]
) -> dict[str, dict[str, int]]:
    """{scored class: {true_in, true_out, counted_in, counted_out}}; truth classes go through ``class_map``."""
    table: dict[str, dict[str, int]] = {}

    def row(name: str) -> dict[str, int]:
        return table.setdefault(name, {"true_in": 0, "true_out": 0, "counted_in": 0, "counted_out": 0})

    for event in true_events:
        row(class_map.get(event["class"], event["class"]))[f"true_{event['direction']}"] += 1
    for crossing in counted:
        row(crossing.vehicle_class)[f"counted_{crossing.direction}"] += 1
    return dict(sorted(table.items()))
