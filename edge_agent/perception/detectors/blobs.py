"""Foreground mask -> vehicle boxes: morphology, connected components, fragment merging, scores, size classes.

Pure functions on arrays (no background model here), so every rule is tested on hand-made masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from edge_agent.perception.detectors.label_map import TAXONOMY
from edge_agent.perception.detectors.motion_config import MotionConfig

CONFIDENT_SIZE = 4.0
"""A blob of at least this many times ``min_area`` is big enough to be fully trusted on size alone."""

Mask = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Blobs:
    """Merged blobs in mask pixels: boxes (n, 4) x1, y1, x2, y2 (end exclusive), foreground pixels, scores."""

    xyxy: npt.NDArray[np.float32]
    foreground_px: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.confidence)


def clean_mask(mask: Mask, open_kernel: int, close_kernel: int) -> Mask:
    """Opening drops speckle; closing fills the holes (windows, seams) inside a vehicle."""
    out = mask
    if open_kernel > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (open_kernel,) * 2)
        out = np.asarray(cv2.morphologyEx(out, cv2.MORPH_OPEN, kernel), dtype=np.uint8)
    if close_kernel > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_kernel,) * 2)
        out = np.asarray(cv2.morphologyEx(out, cv2.MORPH_CLOSE, kernel), dtype=np.uint8)
    return out


def merge_groups(
    xyxy: npt.NDArray[np.float32], gap_px: float, stack_gap_px: float = 0.0, stack_overlap: float = 1.0
) -> npt.NDArray[np.int32]:
    """Group label of each box (transitively): boxes closer than ``gap_px`` in both x and y are one group,
    and so are boxes stacked one above the other (their x ranges overlap by at least ``stack_overlap`` of
    the narrower one) less than ``stack_gap_px`` apart in y."""
    n = len(xyxy)
    if n == 0:
        return np.empty(0, dtype=np.int32)
    gap_x = np.maximum(xyxy[:, None, 0], xyxy[None, :, 0]) - np.minimum(xyxy[:, None, 2], xyxy[None, :, 2])
    gap_y = np.maximum(xyxy[:, None, 1], xyxy[None, :, 1]) - np.minimum(xyxy[:, None, 3], xyxy[None, :, 3])
    near = (gap_x <= gap_px) & (gap_y <= gap_px)
    if stack_gap_px > 0:
        widths = xyxy[:, 2] - xyxy[:, 0]
        narrower = np.maximum(np.minimum(widths[:, None], widths[None, :]), 1e-6)
        near |= (-gap_x >= stack_overlap * narrower) & (gap_y <= stack_gap_px)
    _, labels = connected_components(csr_matrix(near), directed=False)
    return np.asarray(labels, dtype=np.int32)


def find_blobs(mask: Mask, config: MotionConfig) -> Blobs:
    """Boxes of the moving things in a binary foreground ``mask`` (0 or 255), fragments of one vehicle merged.

    Confidence is the geometric mean of the blob's fill (foreground share of its box: a solid
    vehicle fills most of it, scattered noise does not) and its size relative to
    ``CONFIDENT_SIZE * min_area`` (capped at 1), so small or ragged blobs fall below the
    tracker's thresholds for starting tracks while whole vehicles pass them.
    """
    height, width = mask.shape
    frame_px = float(height * width)
    cleaned = clean_mask(mask, config.open_kernel, config.close_kernel)
    _, _, stats, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
    stats = stats[1:]  # row 0 is the background
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= config.min_fragment_area * frame_px]
    if len(stats) == 0:
        return _empty()
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    boxes = np.stack(
        [left, top, left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]], axis=1
    ).astype(np.float32)
    groups = merge_groups(boxes, config.merge_gap * width, config.stack_gap * width, config.stack_overlap)
    n_groups = int(groups.max()) + 1
    merged = np.empty((n_groups, 4), dtype=np.float32)
    merged[:, :2] = np.inf
    merged[:, 2:] = -np.inf
    np.minimum.at(merged[:, 0], groups, boxes[:, 0])
    np.minimum.at(merged[:, 1], groups, boxes[:, 1])
    np.maximum.at(merged[:, 2], groups, boxes[:, 2])
    np.maximum.at(merged[:, 3], groups, boxes[:, 3])
    foreground = np.zeros(n_groups, dtype=np.int64)
    np.add.at(foreground, groups, stats[:, cv2.CC_STAT_AREA].astype(np.int64))
    keep = foreground >= config.min_area * frame_px
    merged, foreground = merged[keep], foreground[keep]
    box_px = (merged[:, 2] - merged[:, 0]) * (merged[:, 3] - merged[:, 1])
    fill = np.clip(foreground / np.maximum(box_px, 1.0), 0.0, 1.0)
    size = np.clip(foreground / (CONFIDENT_SIZE * config.min_area * frame_px), 0.0, 1.0)
    confidence = np.sqrt(fill * size).astype(np.float32)
    return Blobs(xyxy=merged, foreground_px=foreground, confidence=confidence)


def size_class_ids(area_fraction: npt.NDArray[np.float32], config: MotionConfig) -> npt.NDArray[np.int64]:
    """Taxonomy id of each blob by its box area (fraction of the frame): the first size class that fits."""
    limits = np.array([size.max_area for size in config.size_classes], dtype=np.float64)
    ids = np.array([TAXONOMY.index(s.label) for s in config.size_classes] + [TAXONOMY.index(config.default_class)])
    return ids[np.searchsorted(limits, np.asarray(area_fraction, dtype=np.float64), side="left")].astype(np.int64)


def _empty() -> Blobs:
    return Blobs(
        xyxy=np.empty((0, 4), dtype=np.float32),
        foreground_px=np.empty(0, dtype=np.int64),
        confidence=np.empty(0, dtype=np.float32),
    )
