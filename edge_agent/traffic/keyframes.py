"""Evidence pictures: the frame of a violation with the vehicle boxed and the rule drawn, and a plate crop.

Pure drawing on copies (the frame is shared with other readers); ``store`` encodes a picture and puts it in
the evidence store for the camera stages (traffic evidence, the site timelapse).
Rule shapes are found by name on the rule's config (``stop_line`` segments, ``lane``/``zone`` polygons,
``flow`` arrows), so every rule type of ``edge_agent.violations`` draws without a case per type.
Labels are ASCII (OpenCV's Hershey fonts): see ``annotate.ascii_label``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.annotate import ascii_label
from edge_agent.evidence.config import EvidencePurpose
from edge_agent.preview.jpeg import downscale, encode_jpeg

if TYPE_CHECKING:
    from edge_agent.evidence.store import EvidenceStore
    from event_contract.evidence import EvidenceRef

log = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
Point = tuple[float, float]

VEHICLE_COLOUR = (0, 0, 255)  # BGR red
RULE_COLOUR = (0, 255, 255)  # yellow
PLATE_COLOUR = (0, 255, 0)
TEXT_COLOUR = (255, 255, 255)


@dataclass(frozen=True, slots=True)
class RuleShapes:
    """A rule's geometry in normalised image coordinates: segments, closed polygons and arrows."""

    segments: tuple[tuple[Point, Point], ...] = ()
    polygons: tuple[tuple[Point, ...], ...] = ()
    arrows: tuple[tuple[Point, Point], ...] = ()


def shapes_of(rule: object) -> RuleShapes:
    """The shapes a rule config carries (``stop_line``, ``lane``, ``zone``, ``flow``), whatever its type."""
    segments: list[tuple[Point, Point]] = []
    polygons: list[tuple[Point, ...]] = []
    arrows: list[tuple[Point, Point]] = []
    for name in ("stop_line",):
        segment = getattr(rule, name, None)
        if segment is not None:
            segments.append((tuple(segment.start), tuple(segment.end)))
    for name in ("lane", "zone", "polygon"):
        polygon = getattr(rule, name, None)
        if polygon:
            polygons.append(tuple(tuple(point) for point in polygon))
    flow = getattr(rule, "flow", None)
    if flow is not None:
        arrows.append((tuple(flow.start), tuple(flow.end)))
    return RuleShapes(tuple(segments), tuple(polygons), tuple(arrows))


def _px(point: Point, width: int, height: int) -> tuple[int, int]:
    return round(point[0] * width), round(point[1] * height)


def violation_picture(
    image: Image,
    box_xyxy: Sequence[float],
    label: str,
    shapes: RuleShapes,
    *,
    max_width: int,
    related_boxes: Sequence[Sequence[float]] = (),
) -> Image:
    """A copy of the frame, no wider than ``max_width``, with the rule's shapes, the vehicle box and a label."""
    width = image.shape[1]
    out: Image = np.array(downscale(image, max_width), dtype=np.uint8, copy=True)
    out_h, out_w = out.shape[:2]
    scale = out_w / width
    thickness = max(2, round(3 * out_w / 1280))
    for polygon in shapes.polygons:
        points = np.array([_px(p, out_w, out_h) for p in polygon], dtype=np.int32)
        cv2.polylines(out, [points], True, RULE_COLOUR, thickness, cv2.LINE_AA)
    for start, end in shapes.segments:
        cv2.line(out, _px(start, out_w, out_h), _px(end, out_w, out_h), RULE_COLOUR, thickness + 1, cv2.LINE_AA)
    for start, end in shapes.arrows:
        a, b = _px(start, out_w, out_h), _px(end, out_w, out_h)
        cv2.arrowedLine(out, a, b, RULE_COLOUR, thickness, cv2.LINE_AA, tipLength=0.15)
    for related in related_boxes:
        _box(out, related, scale, (0, 165, 255), thickness)
    _box(out, box_xyxy, scale, VEHICLE_COLOUR, thickness + 1)
    x1, y1 = round(box_xyxy[0] * scale), round(box_xyxy[1] * scale)
    _text(out, ascii_label(label), (x1, y1), VEHICLE_COLOUR)
    return out


def plate_picture(crop: Image, plate_box: Sequence[int] | None, text: str) -> Image:
    """The vehicle crop whose reading won, with the plate boxed and the voted text over it."""
    out: Image = np.array(crop, dtype=np.uint8, copy=True)
    if out.shape[1] < 240:  # small crops are enlarged so the label stays readable
        factor = 240 / out.shape[1]
        out = np.asarray(cv2.resize(out, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
        if plate_box is not None:
            plate_box = [round(v * factor) for v in plate_box]
    if plate_box is not None:
        _box(out, [float(v) for v in plate_box], 1.0, PLATE_COLOUR, 2)
    _text(out, ascii_label(text), (0, out.shape[0]), PLATE_COLOUR)
    return out


def encode(image: Image, quality: int) -> bytes:
    return encode_jpeg(image, quality)


def store(
    evidence: EvidenceStore,
    picture: Image,
    *,
    time: dt.datetime,
    purpose: EvidencePurpose,
    jpeg_quality: int,
    what: str,
) -> EvidenceRef | None:
    """Encode ``picture`` and put it in ``evidence``; None (logged with ``what``) when it could not be stored:
    evidence must never cost the event it proves."""
    try:
        return evidence.put(encode(picture, jpeg_quality), time=time, purpose=purpose)
    except Exception:
        log.exception("could not store %s", what)
        return None


def _box(out: Image, box: Sequence[float], scale: float, colour: tuple[int, int, int], thickness: int) -> None:
    x1, y1, x2, y2 = (round(float(v) * scale) for v in box[:4])
    cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)


def _text(out: Image, text: str, anchor: tuple[int, int], background: tuple[int, int, int]) -> None:
    """Text on a filled box above ``anchor`` (kept inside the picture)."""
    height, width = out.shape[:2]
    scale = max(0.4, 0.6 * width / 1280)
    thick = max(1, round(width / 1280))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    box_w, box_h = text_w + 8, text_h + baseline + 6
    x = min(max(0, anchor[0]), max(0, width - box_w))
    y = min(max(0, anchor[1] - box_h), max(0, height - box_h))
    cv2.rectangle(out, (x, y), (x + box_w, y + box_h), background, cv2.FILLED)
    cv2.putText(out, text, (x + 4, y + text_h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thick, cv2.LINE_AA)
