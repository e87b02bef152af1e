"""Synthetic Vietnamese licence plates on vehicle-like crops, with exact ground truth, for accuracy tests.

The plates follow the real layouts and proportions: one-line car plates 520x110 mm, two-line car plates
330x165 mm and two-line motorbike plates 190x140 mm; dark characters on white (private), yellow
(commercial transport) or white characters on blue (state) with the printed frame. A plate is a small
part of its vehicle crop (the reader must find it), and each sample has a named condition: clean, blur,
angle (perspective), low light with noise, partial occlusion, small size. Everything is deterministic
by seed.

The glyphs come from a TrueType font of a Debian package (``fonts-dejavu-core``: DejaVu Sans Condensed
Bold, close to the condensed sans of real plates), read by the small outline reader below (OpenCV has no
TrueType renderer and Pillow is not a dependency). Without that font the Hershey stroke font of OpenCV is
used and the plates look less real.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.plates.vn_format import PROVINCES, SERIES_LETTERS, printed_form
from event_contract.traffic import PlateColour, PlateLayout

Image = npt.NDArray[np.uint8]
PlateShape = Literal["car_long", "car_square", "motorbike"]
Condition = Literal[
    "clean",
    "blur_mild",
    "blur_strong",
    "angle_mild",
    "angle_strong",
    "low_light_mild",
    "low_light_strong",
    "occlusion",
    "small",
]
CONDITIONS: tuple[Condition, ...] = (
    "clean",
    "blur_mild",
    "blur_strong",
    "angle_mild",
    "angle_strong",
    "low_light_mild",
    "low_light_strong",
    "occlusion",
    "small",
)
MILD_CONDITIONS: frozenset[Condition] = frozenset({"clean", "blur_mild", "angle_mild", "low_light_mild"})
"""The clean and mildly degraded conditions the >= 95 % full-plate target applies to."""
SHAPES: tuple[PlateShape, ...] = ("car_long", "car_square", "motorbike")
SHAPE_MM: dict[PlateShape, tuple[int, int]] = {
    "car_long": (520, 110),
    "car_square": (330, 165),
    "motorbike": (190, 140),
}
SHAPE_LAYOUT: dict[PlateShape, PlateLayout] = {
    "car_long": "one_line",
    "car_square": "two_line",
    "motorbike": "two_line",
}
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"),
    Path("/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf"),
)
_PX_PER_MM = 4.0  # the flat plate is drawn at this resolution, then warped down into the crop

# ---------------------------------------------------------------------------------------------------------------
# TrueType outlines (simple glyphs of the 'glyf' table; enough for digits, capitals, '-' and '.')


@dataclass(frozen=True, slots=True)
class Glyph:
    """One glyph: closed polygons in font units (y up) and the advance width."""

    contours: tuple[npt.NDArray[np.float64], ...]
    advance: int


class TrueTypeFont:
    """Reads the outlines of a TrueType font (cmap format 4, simple glyphs); composite glyphs are refused."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        self.tables = self._tables()
        head = self.tables["head"]
        self.units_per_em = self._u16(head + 18)
        self.long_loca = self._i16(head + 50) == 1
        self.num_hmetrics = self._u16(self.tables["hhea"] + 34)
        self.cmap = self._cmap()

    def _u16(self, at: int) -> int:
        value: int = struct.unpack_from(">H", self.data, at)[0]
        return value

    def _i16(self, at: int) -> int:
        value: int = struct.unpack_from(">h", self.data, at)[0]
        return value

    def _u32(self, at: int) -> int:
        value: int = struct.unpack_from(">I", self.data, at)[0]
        return value

    def _tables(self) -> dict[str, int]:
        count = self._u16(4)
        out: dict[str, int] = {}
        for i in range(count):
            tag = self.data[12 + 16 * i : 16 + 16 * i].decode("latin-1")
            out[tag] = self._u32(12 + 16 * i + 8)
        return out

    def _cmap(self) -> dict[int, int]:
        base = self.tables["cmap"]
        for i in range(self._u16(base + 2)):
            platform, encoding, offset = struct.unpack_from(">HHI", self.data, base + 4 + 8 * i)
            sub = base + offset
            if (platform, encoding) in ((3, 1), (0, 3), (0, 4)) and self._u16(sub) == 4:
                return self._cmap4(sub)
        raise ValueError("font has no Unicode cmap of format 4")

    def _cmap4(self, sub: int) -> dict[int, int]:
        segs = self._u16(sub + 6) // 2
        ends, starts = sub + 14, sub + 16 + 2 * segs
        deltas, ranges = starts + 2 * segs, starts + 4 * segs
        out: dict[int, int] = {}
        for s in range(segs):
            end, start = self._u16(ends + 2 * s), self._u16(starts + 2 * s)
            delta, range_offset = self._i16(deltas + 2 * s), self._u16(ranges + 2 * s)
            for code in range(start, min(end, 0x2FF) + 1):
                if range_offset == 0:
                    out[code] = (code + delta) & 0xFFFF
                else:
                    glyph = self._u16(ranges + 2 * s + range_offset + 2 * (code - start))
                    out[code] = (glyph + delta) & 0xFFFF if glyph else 0
        return out

    def _glyph_offset(self, index: int) -> tuple[int, int]:
        loca = self.tables["loca"]
        if self.long_loca:
            return self._u32(loca + 4 * index), self._u32(loca + 4 * index + 4)
        return 2 * self._u16(loca + 2 * index), 2 * self._u16(loca + 2 * index + 2)

    def glyph(self, char: str) -> Glyph:
        index = self.cmap.get(ord(char), 0)
        hm = min(index, self.num_hmetrics - 1)
        advance = self._u16(self.tables["hmtx"] + 4 * hm)
        start, end = self._glyph_offset(index)
        if start == end:
            return Glyph((), advance)
        at = self.tables["glyf"] + start
        n_contours = self._i16(at)
        if n_contours < 0:
            raise ValueError(f"glyph {char!r} is composite; not supported")
        return Glyph(tuple(_flatten(c) for c in self._points(at, n_contours)), advance)

    def _points(self, at: int, n_contours: int) -> list[list[tuple[float, float, bool]]]:
        ends = [self._u16(at + 10 + 2 * i) for i in range(n_contours)]
        n_points = ends[-1] + 1 if ends else 0
        pos = at + 10 + 2 * n_contours
        pos += 2 + self._u16(pos)  # skip the instructions
        flags: list[int] = []
        while len(flags) < n_points:
            flag = self.data[pos]
            pos += 1
            flags.append(flag)
            if flag & 8:
                flags.extend([flag] * self.data[pos])
                pos += 1
        xs, pos = self._coords(pos, flags, short_bit=2, same_bit=16)
        ys, pos = self._coords(pos, flags, short_bit=4, same_bit=32)
        contours: list[list[tuple[float, float, bool]]] = []
        first = 0
        for end in ends:
            contours.append([(xs[i], ys[i], bool(flags[i] & 1)) for i in range(first, end + 1)])
            first = end + 1
        return contours

    def _coords(self, pos: int, flags: Sequence[int], *, short_bit: int, same_bit: int) -> tuple[list[float], int]:
        values: list[float] = []
        value = 0
        for flag in flags:
            if flag & short_bit:
                step = self.data[pos]
                pos += 1
                value += step if flag & same_bit else -step
            elif not flag & same_bit:
                value += self._i16(pos)
                pos += 2
            values.append(float(value))
        return values, pos


def _flatten(points: list[tuple[float, float, bool]], steps: int = 6) -> npt.NDArray[np.float64]:
    """A contour of on/off-curve points (quadratic B-splines) as a polygon."""
    if not points:
        return np.zeros((0, 2))
    # Make the contour start on an on-curve point (insert the midpoint when none is).
    start = next((i for i, p in enumerate(points) if p[2]), None)
    if start is None:
        a, b = points[0], points[1 % len(points)]
        points = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, True), *points]
        start = 0
    ring = points[start:] + points[:start]
    out: list[tuple[float, float]] = [(ring[0][0], ring[0][1])]
    control: tuple[float, float] | None = None
    for x, y, on in [*ring[1:], ring[0]]:
        if on:
            if control is None:
                out.append((x, y))
            else:
                out.extend(_quad(out[-1], control, (x, y), steps))
                control = None
        elif control is None:
            control = (x, y)
        else:
            mid = ((control[0] + x) / 2, (control[1] + y) / 2)
            out.extend(_quad(out[-1], control, mid, steps))
            control = (x, y)
    return np.asarray(out, dtype=np.float64)


def _quad(
    p0: tuple[float, float], p1: tuple[float, float], p2: tuple[float, float], steps: int
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for t in np.linspace(0, 1, steps + 1)[1:]:
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        out.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return out


@lru_cache(maxsize=1)
def plate_font() -> TrueTypeFont | None:
    """The first TrueType font found (see ``FONT_CANDIDATES``), or None (then the Hershey font is used)."""
    for path in FONT_CANDIDATES:
        if path.is_file():
            return TrueTypeFont(path)
    return None


# ---------------------------------------------------------------------------------------------------------------
# Text and flat plates


def draw_text_line(canvas: Image, text: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    """Draw ``text`` filling ``box`` (x, y, w, h): cap height = box height, squeezed to the width if needed."""
    x, y, w, h = box
    font = plate_font()
    if font is None:
        _hershey_line(canvas, text, box, colour)
        return
    cap = font.glyph("H")
    cap_height = max(float(np.max(c[:, 1])) for c in cap.contours)
    scale = h / cap_height
    advances = [font.glyph(ch).advance for ch in text]
    total = sum(advances) * scale
    squeeze = min(1.0, w / total)
    x0 = x + (w - total * squeeze) / 2
    polygons: list[npt.NDArray[np.int32]] = []
    shift = 4  # sub-pixel precision of fillPoly
    for ch, advance in zip(text, advances, strict=True):
        for contour in font.glyph(ch).contours:
            px = (x0 + contour[:, 0] * scale * squeeze) * (1 << shift)
            py = (y + h - contour[:, 1] * scale) * (1 << shift)
            polygons.append(np.stack([px, py], axis=1).round().astype(np.int32))
        x0 += advance * scale * squeeze
    cv2.fillPoly(canvas, polygons, colour, lineType=cv2.LINE_AA, shift=shift)


def _hershey_line(canvas: Image, text: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    x, y, w, h = box
    face, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(2, h // 7)
    (tw, th), _ = cv2.getTextSize(text, face, 1.0, thickness)
    layer = np.zeros((th + 2 * thickness, tw + 2 * thickness), np.uint8)
    cv2.putText(layer, text, (thickness, th + thickness), face, 1.0, 255, thickness, cv2.LINE_AA)
    scaled = np.asarray(cv2.resize(layer, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)
    region = canvas[y : y + h, x : x + w]
    alpha = scaled[..., None].astype(np.float32) / 255
    region[:] = (region * (1 - alpha) + np.asarray(colour, np.float32) * alpha).astype(np.uint8)


BACKGROUND: dict[PlateColour, tuple[int, int, int]] = {
    "white": (235, 238, 236),
    "yellow": (40, 200, 240),
    "blue": (160, 80, 20),
    "red": (40, 40, 200),
}
INK: dict[PlateColour, tuple[int, int, int]] = {
    "white": (25, 25, 25),
    "yellow": (25, 25, 25),
    "blue": (235, 235, 235),
    "red": (235, 235, 235),
}


@dataclass(frozen=True, slots=True)
class PlateSpec:
    """What to draw: the shape, the two printed parts and the colour."""

    shape: PlateShape
    province: str
    series: str
    number: str
    colour: PlateColour = "white"

    @property
    def truth(self) -> str:
        """The normalised printed form the reader must return (``30A-123.45``, ``59X1-234.56``)."""
        return printed_form(self.province, self.series, self.number)

    @property
    def layout(self) -> PlateLayout:
        return SHAPE_LAYOUT[self.shape]

    def lines(self) -> tuple[str, ...]:
        """The text as printed: one line, or the top and bottom lines (the motorbike's top has a dash)."""
        digits = f"{self.number[:3]}.{self.number[3:]}" if len(self.number) == 5 else self.number
        if self.shape == "car_long":
            return (f"{self.province}{self.series}-{digits}",)
        if self.shape == "car_square":
            return (f"{self.province}{self.series}", digits)
        return (f"{self.province}-{self.series}", digits)


def render_flat_plate(spec: PlateSpec, px_per_mm: float = _PX_PER_MM) -> Image:
    """The plate face-on, ``px_per_mm`` pixels a millimetre, with its frame."""
    w_mm, h_mm = SHAPE_MM[spec.shape]
    w, h = round(w_mm * px_per_mm), round(h_mm * px_per_mm)
    plate = np.empty((h, w, 3), np.uint8)
    plate[:] = BACKGROUND[spec.colour]
    ink = INK[spec.colour]
    border = max(2, round(4 * px_per_mm))
    inset = max(2, round(3 * px_per_mm))
    cv2.rectangle(plate, (inset, inset), (w - inset - 1, h - inset - 1), ink, border, cv2.LINE_AA)
    margin_x = round((14 if spec.shape == "car_long" else 12) * px_per_mm)
    lines = spec.lines()
    if len(lines) == 1:
        text_h = round(0.62 * h)
        draw_text_line(plate, lines[0], (margin_x, (h - text_h) // 2, w - 2 * margin_x, text_h), ink)
    else:
        gap = round(0.09 * h)
        text_h = round((h - 2 * round(0.13 * h) - gap) / 2)
        top = round(0.13 * h)
        draw_text_line(plate, lines[0], (margin_x, top, w - 2 * margin_x, text_h), ink)
        draw_text_line(plate, lines[1], (margin_x, top + text_h + gap, w - 2 * margin_x, text_h), ink)
    return plate


# ---------------------------------------------------------------------------------------------------------------
# Vehicles and conditions


@dataclass(frozen=True, slots=True)
class RenderedPlate:
    """One vehicle crop with its plate and the exact truth."""

    image: Image
    truth: str
    spec: PlateSpec
    condition: Condition
    plate_box: tuple[int, int, int, int]
    """The plate's pixel box (x1, y1, x2, y2) in ``image``."""
    seed: int

    @property
    def layout(self) -> PlateLayout:
        return self.spec.layout


def random_spec(rng: np.random.Generator, shape: PlateShape | None = None) -> PlateSpec:
    """A plausible plate: a province code in use, an issued series, 5 digits (4 on one in five, the old form)."""
    shape = shape or SHAPES[int(rng.integers(len(SHAPES)))]
    province = str(rng.choice(sorted(PROVINCES)))
    letters = sorted(SERIES_LETTERS)
    digits = 5 if rng.random() < 0.8 else 4
    number = "".join(str(d) for d in rng.integers(0, 10, digits))
    if shape == "motorbike":
        series = str(rng.choice(letters)) + str(int(rng.integers(1, 10)))
        colour: PlateColour = "white" if rng.random() < 0.9 else "blue"
    else:
        series = str(rng.choice(letters)) if rng.random() < 0.9 else str(rng.choice(["LD", "KT"]))
        roll = rng.random()
        colour = "white" if roll < 0.6 else ("yellow" if roll < 0.85 else "blue")
    return PlateSpec(shape, province, series, number, colour)


_BODY_COLOURS = ((220, 220, 220), (40, 40, 40), (170, 170, 175), (40, 40, 170), (150, 90, 30), (60, 110, 60))


def _vehicle(rng: np.random.Generator, motorbike: bool, width: int, height: int) -> Image:
    """A rear view: road, body, window, lights, bumper (car) or wheel, fender, rider (motorbike)."""
    image = np.empty((height, width, 3), np.uint8)
    road = int(rng.integers(70, 130))
    image[:] = (road, road, road + 5)
    body = tuple(int(c) for c in _BODY_COLOURS[int(rng.integers(len(_BODY_COLOURS)))])

    def rect(x1: float, y1: float, x2: float, y2: float, colour: tuple[int, ...]) -> None:
        cv2.rectangle(image, (int(width * x1), int(height * y1)), (int(width * x2), int(height * y2)), colour, -1)

    if motorbike:
        rider = tuple(int(c) for c in rng.integers(20, 220, 3))
        cv2.ellipse(
            image, (width // 2, int(height * 0.3)), (int(width * 0.32), int(height * 0.3)), 0, 0, 360, rider, -1
        )
        rect(0.28, 0.5, 0.72, 0.72, body)  # rear fender
        rect(0.42, 0.78, 0.58, 1.0, (20, 20, 20))  # tyre
        rect(0.4, 0.46, 0.6, 0.5, (30, 30, 200))  # tail light
    else:
        rect(0.04, 0.12, 0.96, 0.92, body)
        rect(0.16, 0.16, 0.84, 0.42, (45, 40, 35))  # rear window
        rect(0.07, 0.48, 0.2, 0.58, (30, 30, 190))  # tail lights
        rect(0.8, 0.48, 0.93, 0.58, (30, 30, 190))
        rect(0.04, 0.8, 0.96, 0.92, (35, 35, 35))  # bumper
    noise = rng.normal(0, 3, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _plate_quad(
    rng: np.random.Generator, center: tuple[float, float], size: tuple[float, float], yaw_deg: float, roll_deg: float
) -> npt.NDArray[np.float32]:
    """Corners (tl, tr, br, bl) of a plate turned by ``yaw`` (foreshortened, the far side shorter) and ``roll``."""
    w, h = size
    yaw = math.radians(yaw_deg)
    half_w = w * math.cos(yaw) / 2
    shrink = 1 - 0.35 * abs(math.sin(yaw))  # the far edge's height
    left_h, right_h = (h * shrink, h) if yaw > 0 else (h, h * shrink)
    corners = np.array(
        [[-half_w, -left_h / 2], [half_w, -right_h / 2], [half_w, right_h / 2], [-half_w, left_h / 2]], np.float64
    )
    roll = math.radians(roll_deg)
    rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    quad: npt.NDArray[np.float32] = np.asarray(corners @ rot.T + np.asarray(center), np.float32)
    return quad


def _motion_blur(image: Image, length: int, angle_deg: float) -> Image:
    line = np.zeros((length, length), np.float32)
    line[length // 2, :] = 1
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_deg, 1.0)
    kernel = np.asarray(cv2.warpAffine(line, rot, (length, length)), np.float32)
    kernel /= max(float(kernel.sum()), 1e-6)
    return np.asarray(cv2.filter2D(image, -1, kernel), np.uint8)


def render_sample(
    seed: int, condition: Condition = "clean", shape: PlateShape | None = None, *, spec: PlateSpec | None = None
) -> RenderedPlate:
    """One vehicle crop with a random plate under ``condition`` (or ``spec``'s plate: several views of one
    vehicle); the same seed gives the same image."""
    rng = np.random.default_rng(seed)
    drawn = random_spec(rng, shape)
    spec = spec or drawn
    motorbike = spec.shape == "motorbike"
    width = int(rng.integers(220, 260)) if motorbike else int(rng.integers(380, 460))
    height = int(width * (1.25 if motorbike else 0.72))
    image = _vehicle(rng, motorbike, width, height)
    w_mm, h_mm = SHAPE_MM[spec.shape]
    # A plate of 0.52 m on a 1.8 m wide car / 0.19 m on a 0.7 m wide motorbike (the crop is the vehicle).
    plate_w = width * (0.3 if motorbike else 0.33) * float(rng.uniform(0.9, 1.15))
    if condition == "small":
        plate_w *= float(rng.uniform(0.5, 0.6))
    plate_h = plate_w * h_mm / w_mm
    yaw, roll = float(rng.uniform(-4, 4)), float(rng.uniform(-2, 2))
    if condition == "angle_mild":
        yaw, roll = float(rng.choice([-1, 1]) * rng.uniform(10, 20)), float(rng.uniform(-6, 6))
    elif condition == "angle_strong":
        yaw, roll = float(rng.choice([-1, 1]) * rng.uniform(28, 38)), float(rng.choice([-1, 1]) * rng.uniform(8, 14))
    cy = height * (0.62 if motorbike else 0.7) + float(rng.uniform(-0.03, 0.03)) * height
    cx = width / 2 + float(rng.uniform(-0.05, 0.05)) * width
    quad = _plate_quad(rng, (cx, cy), (plate_w, plate_h), yaw, roll)
    flat = render_flat_plate(spec)
    # Shrink first (area averaging), then warp: a direct warp of the big plate would alias.
    small_w = max(8, round(plate_w * 2))
    small = cv2.resize(flat, (small_w, round(small_w * h_mm / w_mm)), interpolation=cv2.INTER_AREA)
    src = np.array([[0, 0], [small.shape[1], 0], [small.shape[1], small.shape[0]], [0, small.shape[0]]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad)
    warped = cv2.warpPerspective(small, matrix, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full(small.shape[:2], 255, np.uint8), matrix, (width, height), flags=cv2.INTER_LINEAR)
    alpha = mask[..., None].astype(np.float32) / 255
    image = (image * (1 - alpha) + warped * alpha).astype(np.uint8)
    x1, y1 = np.floor(quad.min(axis=0)).astype(int)
    x2, y2 = np.ceil(quad.max(axis=0)).astype(int)
    box = (max(0, int(x1)), max(0, int(y1)), min(width, int(x2)), min(height, int(y2)))
    image = _degrade(image, condition, rng, box)
    return RenderedPlate(image, spec.truth, spec, condition, box, seed)


def _degrade(image: Image, condition: Condition, rng: np.random.Generator, box: tuple[int, int, int, int]) -> Image:
    """Blur, darkness and noise, or an occluder over part of the plate; a little sensor noise always."""
    out: npt.NDArray[np.float64] = image.astype(np.float64)
    noise = 2.0
    if condition == "blur_mild":
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.8, 1.1))), np.float64)
    elif condition == "blur_strong":
        blurred = _motion_blur(image, int(rng.integers(6, 9)), float(rng.uniform(-20, 20)))
        out = np.asarray(cv2.GaussianBlur(blurred.astype(np.float64), (0, 0), 1.2), np.float64)
    elif condition == "low_light_mild":
        out = 255 * (out / 255) ** 1.6 * float(rng.uniform(0.45, 0.6))
        noise = 5.0
    elif condition == "low_light_strong":
        out = 255 * (out / 255) ** 2.0 * float(rng.uniform(0.2, 0.3))
        noise = 8.0
    elif condition == "occlusion":
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        # A bar (a bracket, a rope, a tow hook) across a corner of the plate: covers part of an edge character.
        left = bool(rng.random() < 0.5)
        bw = int(w * float(rng.uniform(0.06, 0.1)))
        bx = x1 + (int(w * 0.02) if left else w - bw - int(w * 0.02))
        top = bool(rng.random() < 0.5)
        by1, by2 = (y1, y1 + int(h * 0.45)) if top else (y2 - int(h * 0.45), y2)
        colour = tuple(int(c) for c in rng.integers(10, 90, 3))
        cv2.rectangle(out, (bx, by1), (bx + bw, by2), colour, -1)
    out += rng.normal(0, noise, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)
