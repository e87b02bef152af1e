"""Text-line detection with a DB (differentiable binarisation) model such as PP-OCRv4's, post-processed with OpenCV.

The model outputs a text-probability map at the input's resolution. Its connected regions above a
threshold are the text "kernels" (shrunk at training time), so each region's minimum-area rectangle
is grown back by ``area * unclip_ratio / perimeter`` on every side, which is what PaddleOCR's polygon
offset does for a rectangle (no shapely/pyclipper needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.onnx_session import OnnxSession

Quad = npt.NDArray[np.float32]
"""Four corners (tl, tr, br, bl), shape (4, 2), in the crop's pixels."""


@dataclass(frozen=True, slots=True)
class TextBox:
    """A detected text line: its corners and its mean text probability."""

    quad: Quad
    score: float

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (
            float(self.quad[:, 0].min()),
            float(self.quad[:, 1].min()),
            float(self.quad[:, 0].max()),
            float(self.quad[:, 1].max()),
        )

    @property
    def height(self) -> float:
        return float(max(np.linalg.norm(self.quad[0] - self.quad[3]), np.linalg.norm(self.quad[1] - self.quad[2])))

    @property
    def width(self) -> float:
        return float(max(np.linalg.norm(self.quad[0] - self.quad[1]), np.linalg.norm(self.quad[3] - self.quad[2])))


def order_corners(points: npt.NDArray[np.float32]) -> Quad:
    """Corners sorted tl, tr, br, bl (by x, then y within the left and the right pair)."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def det_input(image: npt.NDArray[np.uint8], max_side: int) -> tuple[npt.NDArray[np.float32], float, float]:
    """The NCHW input (BGR, ``(x/255 - 0.5) / 0.5``, sides multiples of 32) and the x, y scale back to the crop."""
    h, w = image.shape[:2]
    ratio = max_side / max(h, w)
    rh = max(32, round(h * ratio / 32) * 32)
    rw = max(32, round(w * ratio / 32) * 32)
    resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR if ratio > 1 else cv2.INTER_AREA)
    blob = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(blob), w / rw, h / rh


def boxes_from_map(
    prob: npt.NDArray[np.float32],
    *,
    threshold: float,
    box_threshold: float,
    unclip_ratio: float,
    scale_x: float,
    scale_y: float,
    max_boxes: int = 64,
    min_side: float = 3.0,
) -> list[TextBox]:
    """Text boxes from a probability map (H, W), in crop pixels, best score first."""
    mask = cv2.dilate((prob > threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[TextBox] = []
    for contour in contours[:1000]:
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < min_side:
            continue
        score = _mean_inside(prob, np.asarray(contour, np.int32))
        if score < box_threshold:
            continue
        (cx, cy), (rw, rh), angle = rect
        distance = rw * rh * unclip_ratio / max(2 * (rw + rh), 1e-6)
        grown = ((cx, cy), (rw + 2 * distance, rh + 2 * distance), angle)
        if min(grown[1]) < min_side + 2:
            continue
        corners = cv2.boxPoints(grown).astype(np.float32)
        corners[:, 0] = np.clip(corners[:, 0] * scale_x, 0, prob.shape[1] * scale_x)
        corners[:, 1] = np.clip(corners[:, 1] * scale_y, 0, prob.shape[0] * scale_y)
        boxes.append(TextBox(order_corners(corners), score))
    boxes.sort(key=lambda b: -b.score)
    return boxes[:max_boxes]


def _mean_inside(prob: npt.NDArray[np.float32], contour: npt.NDArray[np.int32]) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [contour.reshape(-1, 2) - [x, y]], 1)
    return float(cv2.mean(prob[y : y + h, x : x + w], mask)[0])


class TextDetector:
    """A DB text detector on one ONNX session (thread-safe: ONNX Runtime sessions may run concurrently)."""

    def __init__(
        self,
        session: OnnxSession,
        *,
        max_side: int,
        threshold: float,
        box_threshold: float,
        unclip_ratio: float,
    ) -> None:
        self.session = session
        self.output = session.session.get_outputs()[0].name
        self.max_side = max_side
        self.threshold = threshold
        self.box_threshold = box_threshold
        self.unclip_ratio = unclip_ratio

    def __call__(self, image: npt.NDArray[np.uint8]) -> list[TextBox]:
        blob, sx, sy = det_input(image, self.max_side)
        prob = self.session.run([self.output], blob)[0][0, 0]
        return boxes_from_map(
            prob,
            threshold=self.threshold,
            box_threshold=self.box_threshold,
            unclip_ratio=self.unclip_ratio,
            scale_x=sx,
            scale_y=sy,
        )
