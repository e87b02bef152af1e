"""Ultralytics-format YOLOv8/YOLO11 detect or seg ONNX exports, run with ONNX Runtime.

Output layout: [1, 4 + nc (+ 32 mask coefficients), N] with boxes as (cx, cy, w, h)
in letterboxed input pixels and per-class scores already passed through a
sigmoid. Masks are ignored for now.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge_agent.perception.detectors.label_map import TAXONOMY, LabelMapping, build_label_mapping
from edge_agent.perception.detectors.letterbox import letterbox
from edge_agent.perception.detectors.nms import batched_nms, nms
from edge_agent.perception.detectors.onnx_session import open_session
from edge_agent.perception.types import Detections

MASK_COEFFICIENTS = 32


def names_from_metadata(session: ort.InferenceSession) -> list[str] | None:
    """Class names from the ``names`` entry Ultralytics writes into the ONNX metadata, if present."""
    raw = session.get_modelmeta().custom_metadata_map.get("names")
    if not raw:
        return None
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"model metadata 'names' is not a literal dict or list: {raw[:200]!r}") from exc
    if isinstance(parsed, dict):
        return [str(parsed[k]) for k in sorted(parsed)]
    if isinstance(parsed, list):
        return [str(v) for v in parsed]
    raise ValueError(f"model metadata 'names' has an unexpected type {type(parsed).__name__}")


@dataclass(frozen=True, slots=True)
class YoloSettings:
    score_threshold: float
    nms_iou: float
    class_agnostic_nms: bool
    max_detections: int
    input_size: int
    max_box_area_fraction: float = 1.0


class YoloDetector:
    """``detect(bgr_image) -> Detections`` in the project taxonomy."""

    def __init__(
        self,
        model_path: Path,
        label_map: dict[str, str],
        settings: YoloSettings,
        class_names: list[str] | None = None,
        intra_op_threads: int = 0,
    ):
        self._session = open_session(model_path, intra_op_threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{model_path}: expected one NCHW image input, got {[i.shape for i in inputs]}")
        self._input_name = inputs[0].name
        fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int)]
        if fixed and any(d != settings.input_size for d in fixed):
            raise ValueError(f"{model_path} takes a fixed {fixed} input but input_size is {settings.input_size}")
        self._output_name = self._session.get_outputs()[0].name
        labels = class_names if class_names is not None else names_from_metadata(self._session)
        if labels is None:
            raise ValueError(f"{model_path} has no 'names' metadata: set class_names in the detector config")
        channels = self._session.get_outputs()[0].shape[1]
        if isinstance(channels, int) and channels not in (4 + len(labels), 4 + len(labels) + MASK_COEFFICIENTS):
            raise ValueError(
                f"{model_path} outputs {channels} channels per box, which fits neither detect nor seg with "
                f"{len(labels)} classes {labels}"
            )
        self._mapping: LabelMapping = build_label_mapping(labels, label_map)
        self._settings = settings

    @property
    def class_names(self) -> tuple[str, ...]:
        return TAXONOMY

    @property
    def model_labels(self) -> tuple[str, ...]:
        return self._mapping.model_labels

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        height, width = image.shape[:2]
        canvas, placement = letterbox(image, self._settings.input_size)
        blob = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        (raw,) = self._session.run([self._output_name], {self._input_name: blob.transpose(2, 0, 1)[None]})[:1]
        dets_input = self.postprocess(np.asarray(raw, dtype=np.float32)[0])
        boxes = placement.boxes_to_image(dets_input.xyxy, width, height)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(width * height)
        keep = area <= self._settings.max_box_area_fraction
        return Detections(boxes[keep], dets_input.confidence[keep], dets_input.class_id[keep], TAXONOMY)

    def postprocess(self, output: npt.NDArray[np.float32]) -> Detections:
        """One image's raw output [4+nc(+32), N] -> Detections in letterboxed input pixels."""
        s = self._settings
        nc = len(self._mapping.model_labels)
        kept = self._mapping.kept_model_ids
        scores = output[4 : 4 + nc][kept].T  # (N, kept classes)
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(len(scores)), best]
        candidates = np.flatnonzero(best_score >= s.score_threshold)
        if len(candidates) == 0:
            return Detections.empty(TAXONOMY)
        cx, cy, w, h = output[:4, candidates]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        confidence = best_score[candidates].astype(np.float32)
        class_id = self._mapping.model_to_taxonomy[kept[best[candidates]]]
        keep = (
            nms(boxes, confidence, s.nms_iou)
            if s.class_agnostic_nms
            else batched_nms(boxes, confidence, class_id, s.nms_iou)
        )[: s.max_detections]
        return Detections(boxes[keep], confidence[keep], class_id[keep], TAXONOMY)
