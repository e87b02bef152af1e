"""From detected text lines to plate candidates: lines alone, lines side by side, and two-line stacks.

A one-line car plate is one text line (sometimes split in two at the dash); a two-line plate is two
lines of similar height stacked with their x-ranges overlapping. When the detector merges the two
lines of a small square plate into one box (a box not much wider than tall), that box is cut into its
top and bottom halves. Each candidate's text is parsed as a Vietnamese plate; a valid parse beats an
invalid one, then the higher confidence wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.plates.recognise import LineText
from edge_agent.plates.text_detect import TextBox
from edge_agent.plates.vn_format import PlateParse, parse_plate
from event_contract.traffic import PlateLayout

TWO_LINE_BLOCK_RATIO = 2.6
"""A text box narrower than this many heights may hold both lines of a two-line plate (or be one short line,
such as a square plate's ``75Y``): both readings are tried."""
CORRECTION_PENALTY = 0.97
"""Confidence factor per character changed between look-alike letters and digits."""


@dataclass(frozen=True, slots=True)
class LineRead:
    box: TextBox
    text: LineText


@dataclass(frozen=True, slots=True)
class PlateCandidate:
    """A plate reading built from one or two lines."""

    lines: tuple[LineRead, ...]
    layout_hint: PlateLayout
    parse: PlateParse
    confidence: float
    char_probs: tuple[float, ...]
    """Probability of each letter/digit of ``parse.compact`` (separators dropped), for the vote."""

    def box(self, width: int, height: int, pad: float = 0.25) -> tuple[int, int, int, int]:
        """The plate's box in the crop: the lines' union grown by ``pad`` line heights (the plate's margin)."""
        quads = np.concatenate([line.box.quad for line in self.lines])
        grow = pad * float(np.mean([line.box.height for line in self.lines]))
        x1, y1 = quads.min(axis=0) - grow
        x2, y2 = quads.max(axis=0) + grow
        return (max(0, int(x1)), max(0, int(y1)), min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2))))


def split_two_line_blocks(boxes: Sequence[TextBox]) -> list[TextBox]:
    """Boxes as text lines: a box narrow for its height is kept and its top and bottom halves are added."""
    out: list[TextBox] = []
    for box in boxes:
        out.append(box)
        if box.width >= TWO_LINE_BLOCK_RATIO * box.height:
            continue
        tl, tr, br, bl = box.quad
        ml, mr = (tl + bl) / 2, (tr + br) / 2
        out.append(TextBox(np.array([tl, tr, mr, ml], np.float32), box.score))
        out.append(TextBox(np.array([ml, mr, br, bl], np.float32), box.score))
    return out


def _alnum_probs(line: LineRead) -> list[float]:
    return [p for c, p in zip(line.text.text, line.text.char_probs, strict=True) if c.isalnum()]


def _candidate(lines: tuple[LineRead, ...], layout: PlateLayout) -> PlateCandidate | None:
    raw = ("\n" if layout == "two_line" else "").join(line.text.text for line in lines)
    probs = tuple(p for line in lines for p in _alnum_probs(line))
    if not probs:
        return None
    parse = parse_plate(raw, layout_hint=layout)
    confidence = float(np.mean(probs)) * CORRECTION_PENALTY**parse.corrections
    return PlateCandidate(lines, layout, parse, confidence, probs)


def _stacked(top: TextBox, bottom: TextBox) -> bool:
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = top.xyxy, bottom.xyxy
    if (ay1 + ay2) / 2 >= (by1 + by2) / 2:
        return False
    overlap = min(ax2, bx2) - max(ax1, bx1)
    heights = (ay2 - ay1, by2 - by1)
    return (
        overlap >= 0.5 * min(ax2 - ax1, bx2 - bx1)
        and by1 - ay2 < 0.8 * max(heights)
        and 0.5 <= heights[0] / max(heights[1], 1e-6) <= 2.0
    )


def _side_by_side(left: TextBox, right: TextBox) -> bool:
    (ax1, ay1, ax2, ay2), (bx1, by1, _bx2, by2) = left.xyxy, right.xyxy
    overlap = min(ay2, by2) - max(ay1, by1)
    height = max(ay2 - ay1, by2 - by1)
    return ax1 < bx1 and overlap >= 0.5 * min(ay2 - ay1, by2 - by1) and bx1 - ax2 < 1.5 * height


def plate_candidates(lines: Sequence[LineRead]) -> list[PlateCandidate]:
    """Every line alone, every side-by-side pair (one-line plate split at a gap), every stacked pair."""
    out: list[PlateCandidate] = []
    for line in lines:
        if (one := _candidate((line,), "one_line")) is not None:
            out.append(one)
    for a in lines:
        for b in lines:
            if a is b:
                continue
            if _side_by_side(a.box, b.box) and (joined := _candidate((a, b), "one_line")) is not None:
                out.append(joined)
            if _stacked(a.box, b.box) and (stack := _candidate((a, b), "two_line")) is not None:
                out.append(stack)
    return out


def best_candidate(candidates: Sequence[PlateCandidate]) -> PlateCandidate | None:
    """The valid candidate with the highest confidence; else the most confident one with 4+ characters."""
    valid = [c for c in candidates if c.parse.valid]
    if valid:
        return max(valid, key=lambda c: c.confidence)
    plausible = [c for c in candidates if len(c.parse.compact) >= 4]
    return max(plausible, key=lambda c: c.confidence) if plausible else None
