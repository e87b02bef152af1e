"""Draw an ``Overlay`` (tracked boxes, counting lines with their direction, running counts) on a picture.

``annotate(image, overlay)`` returns a NEW picture and never draws on its input, so it is safe
on frames shared with the analytics thread. The picture may be a downscaled copy of the frame
the boxes were measured on: everything is scaled from ``overlay.frame_width/height``.

OpenCV's Hershey fonts only have ASCII glyphs, so labels go through ``ascii_label``
("vào cầu" -> "vao cau"); operator pages that need Vietnamese draw the SSE overlay themselves.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.analytics.lines import LineConfig
from edge_agent.overlay import LineCounts, Overlay

Image = npt.NDArray[np.uint8]
Colour = tuple[int, int, int]

CLASS_COLOURS: tuple[Colour, ...] = (
    (0, 200, 0),  # BGR: green
    (255, 140, 0),  # blue
    (0, 140, 255),  # orange
    (200, 0, 200),  # magenta
    (0, 220, 220),  # yellow
    (255, 255, 0),  # cyan
    (80, 80, 255),  # red
    (180, 180, 180),  # grey
)
LINE_COLOUR: Colour = (0, 255, 255)
IN_COLOUR: Colour = (60, 220, 60)
OUT_COLOUR: Colour = (60, 60, 240)
TEXT_COLOUR: Colour = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_DIM = 0.45
"""The counts panel darkens the picture behind it to this fraction, so white text reads on any scene."""


@dataclass(frozen=True, slots=True)
class _Style:
    font_scale: float
    thickness: int
    margin: int

    @classmethod
    def for_width(cls, width: int) -> _Style:
        # Sized for a 1280-wide picture and scaled, so labels stay legible on 320 px previews and 4K clips.
        scale = max(0.35, 0.55 * width / 1280)
        return cls(font_scale=scale, thickness=max(1, round(2 * width / 1280)), margin=max(2, round(6 * width / 1280)))

    def text_size(self, text: str) -> tuple[int, int, int]:
        (w, h), baseline = cv2.getTextSize(text, FONT, self.font_scale, max(1, self.thickness - 1))
        return int(w), int(h), int(baseline)


def ascii_label(text: str) -> str:
    """``text`` in ASCII for Hershey fonts: Vietnamese diacritics stripped, anything else as '?'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return bare.encode("ascii", "replace").decode("ascii")


def annotate(image: Image, overlay: Overlay) -> Image:
    """A copy of ``image`` with the overlay drawn on it; ``image`` itself is left untouched."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"annotate needs an HxWx3 uint8 picture, got {image.shape} {image.dtype}")
    out: Image = np.array(image, dtype=np.uint8, order="C", copy=True)
    height, width = out.shape[:2]
    style = _Style.for_width(width)
    _draw_boxes(out, overlay, width / overlay.frame_width, height / overlay.frame_height, style)
    for line in overlay.lines:
        _draw_line(out, line, overlay.counts.get(line.id), style)
    _draw_counts_panel(out, overlay, style)
    return out


def _draw_boxes(out: Image, overlay: Overlay, sx: float, sy: float, style: _Style) -> None:
    tracked = overlay.tracked
    names = tracked.names
    for i in range(len(tracked)):
        x1, y1, x2, y2 = tracked.xyxy[i]
        p1 = (round(float(x1) * sx), round(float(y1) * sy))
        p2 = (round(float(x2) * sx), round(float(y2) * sy))
        colour = CLASS_COLOURS[int(tracked.class_id[i]) % len(CLASS_COLOURS)]
        cv2.rectangle(out, p1, p2, colour, style.thickness, cv2.LINE_AA)
        track_id = int(tracked.tracker_id[i])
        prefix = f"#{track_id} " if track_id >= 0 else ""
        label = ascii_label(f"{prefix}{names[i]} {float(tracked.confidence[i]):.2f}")
        _label(out, label, (p1[0], p1[1]), colour, style, above=True)


def _draw_line(out: Image, line: LineConfig, counts: LineCounts, style: _Style) -> None:
    height, width = out.shape[:2]
    ax, ay = line.start[0] * width, line.start[1] * height
    bx, by = line.end[0] * width, line.end[1] * height
    start, end = (round(ax), round(ay)), (round(bx), round(by))
    cv2.line(out, start, end, LINE_COLOUR, style.thickness + 1, cv2.LINE_AA)
    # 'in' crosses from the negative to the positive side of start->end (geometry.side_of_line);
    # in image coordinates (y down) the positive side lies along the normal (-dy, dx).
    dx, dy = bx - ax, by - ay
    length = math.hypot(dx, dy)
    nx, ny = -dy / length, dx / length
    mx, my = (ax + bx) / 2, (ay + by) / 2
    reach = max(12.0, 0.05 * width)
    tail = (round(mx - nx * reach), round(my - ny * reach))
    head = (round(mx + nx * reach), round(my + ny * reach))
    cv2.arrowedLine(out, tail, head, IN_COLOUR, style.thickness + 1, cv2.LINE_AA, tipLength=0.3)
    in_text = ascii_label(f"IN {line.in_label or 'in'}: {counts.in_total}")
    out_text = ascii_label(f"OUT {line.out_label or 'out'}: {counts.out_total}")
    _label(out, in_text, head, IN_COLOUR, style, above=False)
    _label(out, out_text, tail, OUT_COLOUR, style, above=True)
    _label(out, ascii_label(line.display_name), start, LINE_COLOUR, style, above=True, text_colour=(0, 0, 0))


def _draw_counts_panel(out: Image, overlay: Overlay, style: _Style) -> None:
    rows: list[str] = []
    for line in overlay.lines:
        counts = overlay.counts.get(line.id)
        rows.append(f"{line.display_name}: in {counts.in_total}  out {counts.out_total}")
        classes = sorted(set(counts.inbound) | set(counts.outbound))
        if classes:
            rows.append(
                "  " + "  ".join(f"{c} {counts.inbound.get(c, 0)}/{counts.outbound.get(c, 0)}" for c in classes)
            )
    rows = [ascii_label(row) for row in rows]
    if not rows:
        return
    sizes = [style.text_size(row) for row in rows]
    row_height = max(h + b for _, h, b in sizes) + style.margin
    panel_w = min(out.shape[1], max(w for w, _, _ in sizes) + 2 * style.margin)
    panel_h = min(out.shape[0], row_height * len(rows) + style.margin)
    region = out[:panel_h, :panel_w]
    region[...] = (region.astype(np.float32) * PANEL_DIM).astype(np.uint8)
    for index, row in enumerate(rows):
        baseline_y = style.margin + row_height * (index + 1) - sizes[index][2] - style.margin // 2
        cv2.putText(
            out,
            row,
            (style.margin, baseline_y),
            FONT,
            style.font_scale,
            TEXT_COLOUR,
            max(1, style.thickness - 1),
            cv2.LINE_AA,
        )


def _label(
    out: Image,
    text: str,
    anchor: tuple[int, int],
    background: Colour,
    style: _Style,
    *,
    above: bool,
    text_colour: Colour = TEXT_COLOUR,
) -> None:
    """Text on a filled box whose corner is at ``anchor``, kept inside the picture."""
    height, width = out.shape[:2]
    text_w, text_h, baseline = style.text_size(text)
    box_w, box_h = text_w + 2 * style.margin, text_h + baseline + style.margin
    x = min(max(0, anchor[0]), max(0, width - box_w))
    y_top = anchor[1] - box_h if above else anchor[1]
    y_top = min(max(0, y_top), max(0, height - box_h))
    cv2.rectangle(out, (x, y_top), (x + box_w, y_top + box_h), background, cv2.FILLED)
    cv2.putText(
        out,
        text,
        (x + style.margin, y_top + text_h + style.margin // 2),
        FONT,
        style.font_scale,
        text_colour,
        max(1, style.thickness - 1),
        cv2.LINE_AA,
    )
