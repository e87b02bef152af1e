"""SSD MobileNetV2 (Open Images v4) from MediaPipe Objectron, run with ONNX Runtime.

The model's outputs are raw: box encodings relative to 1917 fixed anchors and
per-class logits. The anchors are those of the TF Object Detection API's default
SSD anchor generator, rebuilt here so nothing but the .onnx file is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.label_map import CLASS_NAMES, LabelMapping
from edge_agent.perception.detectors.nms import batched_nms, nms
from edge_agent.perception.detectors.onnx_session import OnnxSession, RuntimeSettings
from edge_agent.perception.types import Detections

INPUT_SIZE = 300
FEATURE_MAP_SIZES = (19, 10, 5, 3, 2, 1)
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)
"""Divisors of (ty, tx, th, tw) in the TF Object Detection API's FasterRcnnBoxCoder."""
OIDV4_HIERARCHY: dict[str, tuple[str, ...]] = {"Vehicle": ("Car", "Bicycle")}
"""Open Images label parents: a car is also a "Vehicle", and the model often scores the parent higher."""
CHILD_SHARE = 0.5
"""A box whose best label is a parent takes its best child's label when the child scores at least this
share of the parent: the specific label explains most of the evidence (P(car) <= P(vehicle) by definition)."""


def ssd_anchors() -> npt.NDArray[np.float32]:
    """The 1917 anchors as (y_center, x_center, height, width), normalised to [0, 1].

    Order matches the model's outputs: layer by layer, then grid row, grid
    column, then box shape (innermost).
    """
    n_layers = len(FEATURE_MAP_SIZES)
    scales = [MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (n_layers - 1) for i in range(n_layers)] + [1.0]
    layers: list[npt.NDArray[np.float64]] = []
    for layer, size in enumerate(FEATURE_MAP_SIZES):
        scale = scales[layer]
        if layer == 0:
            # The lowest layer is reduced to three boxes, one of them with a fixed 0.1 scale.
            shapes = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
        else:
            shapes = [(scale, ar) for ar in ASPECT_RATIOS] + [(float(np.sqrt(scale * scales[layer + 1])), 1.0)]
        shape_arr = np.array(shapes, dtype=np.float64)
        heights = shape_arr[:, 0] / np.sqrt(shape_arr[:, 1])
        widths = shape_arr[:, 0] * np.sqrt(shape_arr[:, 1])
        centers = (np.arange(size, dtype=np.float64) + 0.5) / size
        cy, cx, h = np.meshgrid(centers, centers, heights, indexing="ij")
        _, _, w = np.meshgrid(centers, centers, widths, indexing="ij")
        layers.append(np.stack([cy, cx, h, w], axis=-1).reshape(-1, 4))
    return np.concatenate(layers).astype(np.float32)


ANCHORS = ssd_anchors()


def decode_boxes(encodings: npt.NDArray[np.float32], anchors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Box encodings (ty, tx, th, tw) -> normalised (x1, y1, x2, y2)."""
    ty, tx, th, tw = (encodings / np.asarray(BOX_CODER_SCALES, dtype=np.float32)).T
    ya, xa, ha, wa = anchors.T
    yc, xc = ty * ha + ya, tx * wa + xa
    h, w = np.exp(th) * ha, np.exp(tw) * wa
    return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class SsdSettings:
    score_threshold: float
    nms_iou: float
    class_agnostic_nms: bool
    max_detections: int
    max_box_area_fraction: float = 1.0


class SsdMobilenetDetector:
    """``detect(bgr_image) -> Detections`` in the project taxonomy."""

    def __init__(
        self,
        model_path: Path,
        mapping: LabelMapping,
        settings: SsdSettings,
        runtime: RuntimeSettings | None = None,
        hierarchy: dict[str, tuple[str, ...]] | None = None,
    ):
        self._model = OnnxSession(model_path, runtime or RuntimeSettings())
        self._session = self._model.session
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if list(inputs[0].shape)[1:] != [3, INPUT_SIZE, INPUT_SIZE] or len(outputs) != 2:
            raise ValueError(
                f"{model_path} is not the converted SSD MobileNetV2 (expected input [N,3,300,300] and 2 outputs, "
                f"got {[i.shape for i in inputs]} and {len(outputs)} outputs)"
            )
        # Outputs are told apart by their last dimension: 4 for boxes, the label count for scores.
        by_width = {int(o.shape[-1]): o.name for o in outputs}
        if 4 not in by_width or len(mapping.model_labels) not in by_width:
            raise ValueError(
                f"{model_path} outputs {[o.shape for o in outputs]} do not match {len(mapping.model_labels)} labels"
            )
        self._box_output = by_width[4]
        self._score_output = by_width[len(mapping.model_labels)]
        self._mapping = mapping
        self._settings = settings
        self._kept = mapping.kept_model_ids
        self._children = self._child_table(OIDV4_HIERARCHY if hierarchy is None else hierarchy)

    def _child_table(self, hierarchy: dict[str, tuple[str, ...]]) -> npt.NDArray[np.bool_]:
        """``table[p, c]`` is True when kept label ``c`` is a child of kept label ``p`` (both mapped)."""
        kept_names = [self._mapping.model_labels[i] for i in self._kept]
        table = np.zeros((len(kept_names), len(kept_names)), dtype=bool)
        for parent, children in hierarchy.items():
            if parent in kept_names:
                for child in children:
                    if child in kept_names:
                        table[kept_names.index(parent), kept_names.index(child)] = True
        return table

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    @property
    def session(self) -> OnnxSession:
        return self._model

    def preprocess(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """BGR HxWx3 -> RGB NCHW 1x3x300x300 in [-1, 1]; the whole frame is stretched, as in training."""
        resized = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        rgb = resized[:, :, ::-1].astype(np.float32)
        return np.ascontiguousarray((rgb / 127.5 - 1.0).transpose(2, 0, 1)[None])

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[Detections]:
        """One inference for all ``images`` when the model's batch is dynamic (else one by one inside)."""
        if not images:
            return []
        batch = np.concatenate([self.preprocess(image) for image in images])
        raw_boxes, raw_logits = self._model.run([self._box_output, self._score_output], batch)
        return [
            self.postprocess(raw_boxes[i], raw_logits[i], image.shape[1], image.shape[0])
            for i, image in enumerate(images)
        ]

    def postprocess(
        self, encodings: npt.NDArray[np.float32], logits: npt.NDArray[np.float32], width: int, height: int
    ) -> Detections:
        """Raw outputs for one image ([1917,4], [1917,labels]) -> pixel-space Detections."""
        s = self._settings
        scores = (1.0 / (1.0 + np.exp(-logits[:, self._kept]))).astype(np.float32)
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(len(scores)), best]
        candidates = np.flatnonzero(best_score >= s.score_threshold)
        boxes = np.clip(decode_boxes(encodings[candidates], ANCHORS[candidates]), 0.0, 1.0)
        # Boxes are normalised here, so the area is already a fraction of the frame.
        small_enough = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) <= s.max_box_area_fraction
        candidates, boxes = candidates[small_enough], boxes[small_enough]
        if len(candidates) == 0:
            return Detections.empty(CLASS_NAMES)
        boxes = boxes * np.array([width, height, width, height], dtype=np.float32)
        confidence = best_score[candidates].astype(np.float32)
        label = self._prefer_children(best[candidates], scores[candidates], confidence)
        class_id = self._mapping.model_to_taxonomy[self._kept[label]]
        keep = (
            nms(boxes, confidence, s.nms_iou)
            if s.class_agnostic_nms
            else batched_nms(boxes, confidence, class_id, s.nms_iou)
        )
        keep = keep[: s.max_detections]
        return Detections(
            xyxy=boxes[keep], confidence=confidence[keep], class_id=class_id[keep], class_names=CLASS_NAMES
        )

    def _prefer_children(
        self, best: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], best_score: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int64]:
        """Replace a parent label by its best child where the child carries CHILD_SHARE of the evidence."""
        if not self._children.any():
            return best
        child_mask = self._children[best]  # (n, kept): the children of each box's best label
        child_scores = np.where(child_mask, scores, -1.0)
        best_child = child_scores.argmax(axis=1)
        best_child_score = child_scores[np.arange(len(best)), best_child]
        take_child = child_mask.any(axis=1) & (best_child_score >= CHILD_SHARE * best_score)
        return np.where(take_child, best_child, best).astype(np.int64)
