"""Greedy non-maximum suppression on NumPy arrays (no model framework needed)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def pairwise_iou(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float32]:
    """IoU of every box in ``a`` (n,4) with every box in ``b`` (m,4), boxes as x1,y1,x2,y2: (n, m)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


PRE_NMS_TOP_K = 2000
"""Only the best this many candidates enter NMS: the IoU matrix is k x k floats (16 MB at 2000). A low score
threshold on a YOLO's 8400 anchors would otherwise ask for a 280 MB matrix."""


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float, top_k: int = PRE_NMS_TOP_K) -> IntArray:
    """Indices of the boxes kept, best score first.

    The best ``top_k`` candidates are kept, their IoU matrix is computed once
    (vectorised), and the greedy pass then only reads rows of it, which is
    cheap for the few hundred boxes left after the score threshold.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")[:top_k]
    if len(order) == 0:
        return np.empty(0, dtype=np.int64)
    iou = pairwise_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


def batched_nms(boxes: FloatArray, scores: FloatArray, class_ids: IntArray, iou_threshold: float) -> IntArray:
    """Per-class NMS in one pass: boxes of different classes are shifted apart so they never overlap."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    span = float(boxes.max() - boxes.min()) + 1.0
    offsets = np.asarray(class_ids, dtype=np.float32)[:, None] * span
    return nms(boxes + offsets, scores, iou_threshold)
