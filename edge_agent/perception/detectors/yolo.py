"""Ultralytics-format YOLOv8 / YOLO11 / YOLO26 detect or seg ONNX exports, run with ONNX Runtime.

Two output layouts exist; the one a model has is read from its detection output's shape:

- classic (YOLOv8, YOLO11; NMS in post-processing): ``[N, 4 + nc (+ 32), A]`` with, per
  anchor, the box as (cx, cy, w, h) in letterboxed input pixels, ``nc`` class scores
  already passed through a sigmoid, and for seg models 32 mask coefficients. Decoded
  here: best kept class per anchor, threshold, NMS.
- end-to-end (YOLO26, YOLOv10; NMS-free): ``[N, D, 6 (+ 32)]`` with, per detection, x1, y1,
  x2, y2 (letterboxed input pixels), score, class id (and 32 mask coefficients). The model
  already chose one box per object, so no NMS is run; threshold, label map and the cap on
  detections apply.

Anything else is refused with the shape it has and the two it could have had. Seg models'
mask prototypes (the 4-D second output) and coefficients are ignored: counting needs boxes.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.label_map import CLASS_NAMES, LabelMapping, build_label_mapping
from edge_agent.perception.detectors.letterbox import Letterbox, letterbox
from edge_agent.perception.detectors.nms import batched_nms, nms
from edge_agent.perception.detectors.onnx_session import OnnxSession, RuntimeSettings
from edge_agent.perception.types import Detections

MASK_COEFFICIENTS = 32
END_TO_END_FIELDS = 6
"""x1, y1, x2, y2, score, class id."""

Layout = Literal["classic", "end_to_end"]
Dim = int | str | None


def names_from_metadata(metadata: dict[str, str]) -> list[str] | None:
    """Class names from the ``names`` entry Ultralytics writes into the ONNX metadata, if present."""
    raw = metadata.get("names")
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


def output_layout(shape: Sequence[Dim], n_classes: int) -> Layout | None:
    """Which Ultralytics layout a detection output of ``shape`` is; None while dimensions are symbolic.

    Raises ValueError naming both expected layouts when the shape fits neither (or, impossibly, both).
    """
    if len(shape) != 3:
        raise ValueError(_layout_error(shape, n_classes))
    _, rows, columns = shape
    classic_channels = (4 + n_classes, 4 + n_classes + MASK_COEFFICIENTS)
    end_to_end_fields = (END_TO_END_FIELDS, END_TO_END_FIELDS + MASK_COEFFICIENTS)
    classic = isinstance(rows, int) and rows in classic_channels
    end_to_end = isinstance(columns, int) and columns in end_to_end_fields
    if classic and not end_to_end:
        return "classic"
    if end_to_end and not classic:
        return "end_to_end"
    if not classic and not end_to_end and not (isinstance(rows, int) and isinstance(columns, int)):
        return None  # symbolic dimensions: decide on the first real output
    raise ValueError(_layout_error(shape, n_classes))


def _layout_error(shape: Sequence[Dim], n_classes: int) -> str:
    return (
        f"detection output {list(shape)} fits no Ultralytics layout for {n_classes} classes: expected classic "
        f"[1, {4 + n_classes} (detect) or {4 + n_classes + MASK_COEFFICIENTS} (seg), anchors] or end-to-end "
        f"[1, detections, {END_TO_END_FIELDS} (detect) or {END_TO_END_FIELDS + MASK_COEFFICIENTS} (seg)]; check "
        "class_names (their count must match the model) and that the file is an Ultralytics export"
    )


@dataclass(frozen=True, slots=True)
class YoloSettings:
    score_threshold: float
    nms_iou: float
    class_agnostic_nms: bool
    max_detections: int
    input_size: int
    max_box_area_fraction: float = 1.0


class YoloDetector:
    """``detect(bgr_image) -> Detections`` in the project taxonomy; ``detect_batch`` for several cameras."""

    def __init__(
        self,
        model_path: Path,
        label_map: dict[str, str],
        settings: YoloSettings,
        class_names: list[str] | None = None,
        runtime: RuntimeSettings | None = None,
    ):
        self._model = OnnxSession(model_path, runtime or RuntimeSettings())
        session = self._model.session
        if len(self._model.input_shape) != 4:
            raise ValueError(f"{model_path}: expected one NCHW image input, got {self._model.input_shape}")
        fixed = [d for d in self._model.input_shape[2:] if isinstance(d, int)]
        if fixed and any(d != settings.input_size for d in fixed):
            raise ValueError(f"{model_path} takes a fixed {fixed} input but input_size is {settings.input_size}")
        metadata = session.get_modelmeta().custom_metadata_map
        labels = class_names if class_names is not None else names_from_metadata(metadata)
        if labels is None:
            raise ValueError(f"{model_path} has no 'names' metadata: set class_names in the detector config")
        self._mapping: LabelMapping = build_label_mapping(labels, label_map)
        detection_outputs = [o for o in session.get_outputs() if len(o.shape) == 3]
        if not detection_outputs:
            shapes = [o.shape for o in session.get_outputs()]
            raise ValueError(f"{model_path}: no 3-D output among {shapes}; {_layout_error(shapes[0], len(labels))}")
        self._output_name: str = detection_outputs[0].name
        self._layout: Layout | None = output_layout(list(detection_outputs[0].shape), len(labels))
        self._settings = settings

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    @property
    def model_labels(self) -> tuple[str, ...]:
        return self._mapping.model_labels

    @property
    def layout(self) -> Layout | None:
        """'classic' or 'end_to_end'; None until the first inference when the output shape is symbolic."""
        return self._layout

    @property
    def session(self) -> OnnxSession:
        return self._model

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """BGR image -> letterboxed RGB NCHW 1x3xSxS in [0, 1], and where the image went."""
        canvas, placement = letterbox(image, self._settings.input_size)
        blob = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return np.ascontiguousarray(blob.transpose(2, 0, 1)[None]), placement

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """One inference for all ``images`` when the model's batch is dynamic (else one by one inside)."""
        if not images:
            return []
        prepared = [self.preprocess(image) for image in images]
        (raw,) = self._model.run([self._output_name], np.concatenate([blob for blob, _ in prepared]))
        results = []
        for output, image, (_, placement) in zip(raw, images, prepared, strict=True):
            height, width = image.shape[:2]
            dets = self.postprocess(output)
            boxes = placement.boxes_to_image(dets.xyxy, width, height)
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(width * height)
            keep = area <= self._settings.max_box_area_fraction
            results.append(Detections(boxes[keep], dets.confidence[keep], dets.class_id[keep], CLASS_NAMES))
        return results

    def postprocess(self, output: npt.NDArray[np.float32]) -> Detections:
        """One image's raw detection output (without the batch axis) -> Detections in letterboxed input pixels."""
        if self._layout is None:
            self._layout = output_layout([1, *output.shape], len(self._mapping.model_labels))
        if self._layout == "classic":
            return self._decode_classic(output)
        return self._decode_end_to_end(output)

    def _decode_classic(self, output: npt.NDArray[np.float32]) -> Detections:
        """[4 + nc (+32), A]: best kept class per anchor, threshold, NMS."""
        s = self._settings
        nc = len(self._mapping.model_labels)
        kept = self._mapping.kept_model_ids
        scores = output[4 : 4 + nc][kept].T  # (A, kept classes)
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(len(scores)), best]
        candidates = np.flatnonzero(best_score >= s.score_threshold)
        if len(candidates) == 0:
            return Detections.empty(CLASS_NAMES)
        cx, cy, w, h = output[:4, candidates]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        confidence = best_score[candidates].astype(np.float32)
        class_id = self._mapping.model_to_taxonomy[kept[best[candidates]]]
        keep = (
            nms(boxes, confidence, s.nms_iou)
            if s.class_agnostic_nms
            else batched_nms(boxes, confidence, class_id, s.nms_iou)
        )[: s.max_detections]
        return Detections(boxes[keep], confidence[keep], class_id[keep], CLASS_NAMES)

    def _decode_end_to_end(self, output: npt.NDArray[np.float32]) -> Detections:
        """[D, 6 (+32)] rows of x1, y1, x2, y2, score, class: threshold and label map; the model did the NMS."""
        s = self._settings
        nc = len(self._mapping.model_labels)
        model_class = np.rint(output[:, 5]).astype(np.int64)
        valid = (output[:, 4] >= s.score_threshold) & (model_class >= 0) & (model_class < nc)
        taxonomy_id = np.where(valid, self._mapping.model_to_taxonomy[np.clip(model_class, 0, nc - 1)], -1)
        rows = np.flatnonzero(taxonomy_id >= 0)
        rows = rows[np.argsort(-output[rows, 4], kind="stable")][: s.max_detections]
        return Detections(output[rows, :4], output[rows, 4], taxonomy_id[rows], CLASS_NAMES)
