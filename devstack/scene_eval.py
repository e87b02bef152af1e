"""Score a detector against a rendered scene's ground truth, frame by frame.

    python -m devstack.scene_eval --video DIR/scene.mp4 [--truth DIR/scene.truth.json] [--every N]
        [--threshold T] [--annotate OUT.png --annotate-frame F]

Recall counts truth boxes of objects fully inside the frame that a detection of
the same class matches with IoU >= 0.5; a false positive is a detection that
matches no truth box at all (partly visible objects included) with IoU >= 0.3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.detectors.nms import pairwise_iou
from edge_agent.perception.types import Detections

MATCH_IOU = 0.5
FALSE_POSITIVE_IOU = 0.3


@dataclass(frozen=True, slots=True)
class TruthBox:
    object_id: int
    cls: str
    xyxy: tuple[int, int, int, int]
    fully_inside: bool
    visible: float = 1.0
    """Share of the silhouette no nearer vehicle hides."""


def truth_by_frame(truth: dict[str, Any]) -> dict[int, list[TruthBox]]:
    frames: dict[int, list[TruthBox]] = {}
    for obj in truth["objects"]:
        for row in obj["boxes"]:
            f, x1, y1, x2, y2, full = row[:6]
            visible = row[6] / 100 if len(row) > 6 else 1.0
            frames.setdefault(f, []).append(TruthBox(obj["id"], obj["class"], (x1, y1, x2, y2), bool(full), visible))
    return frames


@dataclass
class Quality:
    """Running totals over the frames scored so far."""

    frames: int = 0
    truth_full: int = 0
    matched_full: int = 0
    detections: int = 0
    false_positives: int = 0
    missed: list[tuple[int, int]] = field(default_factory=list)
    """(frame, object id) of fully visible objects no detection matched."""

    @property
    def recall(self) -> float:
        return self.matched_full / self.truth_full if self.truth_full else 1.0

    @property
    def precision(self) -> float:
        return 1.0 - self.false_positives / self.detections if self.detections else 1.0

    def summary(self) -> dict[str, float | int]:
        return {
            "frames": self.frames,
            "truth_boxes_fully_inside": self.truth_full,
            "matched": self.matched_full,
            "recall": round(self.recall, 4),
            "detections": self.detections,
            "false_positives": self.false_positives,
            "precision": round(self.precision, 4),
        }


def score_frame(quality: Quality, frame_index: int, dets: Detections, truth: list[TruthBox]) -> None:
    """Add one frame's result to ``quality`` (greedy matching, best IoU first)."""
    quality.frames += 1
    quality.detections += len(dets)
    if not truth:
        quality.false_positives += len(dets)
        return
    boxes = np.array([t.xyxy for t in truth], dtype=np.float32)
    iou = pairwise_iou(boxes, dets.xyxy) if len(dets) else np.zeros((len(truth), 0), np.float32)
    same_class = np.array([[t.cls == name for name in dets.names] for t in truth], dtype=bool).reshape(iou.shape)
    candidate = np.where(same_class & (iou >= MATCH_IOU), iou, 0.0)
    matched_truth: set[int] = set()
    matched_dets: set[int] = set()
    for flat in np.argsort(-candidate, axis=None):
        ti, di = np.unravel_index(flat, candidate.shape)
        if candidate[ti, di] <= 0:
            break
        if ti in matched_truth or di in matched_dets:
            continue
        matched_truth.add(int(ti))
        matched_dets.add(int(di))
    for ti, t in enumerate(truth):
        if t.fully_inside:
            quality.truth_full += 1
            if ti in matched_truth:
                quality.matched_full += 1
            else:
                quality.missed.append((frame_index, t.object_id))
    for di in range(len(dets)):
        if di not in matched_dets and (iou.shape[0] == 0 or float(iou[:, di].max()) < FALSE_POSITIVE_IOU):
            quality.false_positives += 1


def decode_frames(video: Path, every: int = 1) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                image = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                yield index, image


def draw_detections(
    image: npt.NDArray[np.uint8],
    dets: Detections,
    truth: list[TruthBox],
    line: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> npt.NDArray[np.uint8]:
    """Truth in thin blue, detections in green with class and score, the counting line in yellow."""
    out = image.copy()
    if line is not None:
        (x1, y1), (x2, y2) = line
        cv2.line(out, (round(x1), round(y1)), (round(x2), round(y2)), (0, 220, 255), 1, cv2.LINE_AA)
    for t in truth:
        cv2.rectangle(out, t.xyxy[:2], t.xyxy[2:], (255, 160, 0), 1)
    for box, score, name in zip(dets.xyxy, dets.confidence, dets.names, strict=True):
        x1, y1, x2, y2 = (int(v) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 230, 0), 2)
        cv2.putText(
            out, f"{name} {score:.2f}", (x1 + 3, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 230, 0), 1, cv2.LINE_AA
        )
    return out


def evaluate(
    detector: Detector, video: Path, truth: dict[str, Any], every: int = 1, annotate: tuple[int, Path] | None = None
) -> tuple[Quality, float]:
    """Run ``detector`` on every ``every``-th frame; returns the quality and mean detector ms per frame."""
    frames_truth = truth_by_frame(truth)
    quality = Quality()
    spent = 0.0
    for index, image in decode_frames(video, every):
        started = time.perf_counter()
        dets = detector.detect(image)
        spent += time.perf_counter() - started
        score_frame(quality, index, dets, frames_truth.get(index, []))
        if annotate is not None and index == annotate[0]:
            line = (tuple(truth["line"]["start"]), tuple(truth["line"]["end"]))
            cv2.imwrite(str(annotate[1]), draw_detections(image, dets, frames_truth.get(index, []), line))
    return quality, 1000.0 * spent / max(quality.frames, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a detector on a rendered scene.")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--truth", type=Path, help="default: the video's .truth.json")
    parser.add_argument("--every", type=int, default=1, help="score every N-th frame")
    parser.add_argument("--backend", default="ssd_mobilenet_oidv4")
    parser.add_argument("--threshold", type=float, help="score threshold (default: the config default)")
    parser.add_argument("--label-map", type=json.loads, help='JSON object, e.g. {"Car": "car"}')
    parser.add_argument("--annotate", type=Path, help="write this frame, boxes drawn, as PNG")
    parser.add_argument("--annotate-frame", type=int, default=0)
    args = parser.parse_args(argv)
    truth_path = args.truth or args.video.with_suffix(".truth.json")
    truth = json.loads(truth_path.read_text())
    overrides: dict[str, Any] = {"backend": args.backend}
    if args.threshold is not None:
        overrides["score_threshold"] = args.threshold
    if args.label_map is not None:
        overrides["label_map"] = args.label_map
    detector = build_detector(DetectorConfig(**overrides))
    annotate = (args.annotate_frame, args.annotate) if args.annotate else None
    quality, ms = evaluate(detector, args.video, truth, args.every, annotate)
    report = {**quality.summary(), "detector_ms_per_frame": round(ms, 2), "missed_sample": quality.missed[:10]}
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
