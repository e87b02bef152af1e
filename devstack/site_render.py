"""Rasterise the generated construction site: static view, material fills, people, a truck, weather and light.

Pure functions of their inputs (numpy + OpenCV, no clock, no globals but a small cache of the static layers):
the same arguments give the same pixels, so a frame and its ground truth never drift apart.

The view is fixed (a camera on a pole at the site fence). Every work package is a polygon in normalised image
coordinates; its material fills the polygon in a known ORDER (bricks course by course, slab bays left to right,
road lengths left to right), so the built share of the polygon's pixels IS the package's true % (to one brick).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatImage = npt.NDArray[np.float32]
Image = npt.NDArray[np.uint8]
Polygon = tuple[tuple[float, float], ...]

HORIZON = 0.40
"""Normalised row of the horizon (the tree line sits on it)."""
MATERIALS = ("concrete", "brick", "roof", "base", "asphalt")
CONDITIONS = ("clear", "overcast", "dawn", "dusk", "night", "rain", "fog", "crowd", "truck_parked")
HI_VIS_BGR = ((40, 235, 215), (0, 140, 255), (60, 220, 120))
"""Vest colours: yellow-green, orange, lime."""


@dataclass(frozen=True, slots=True)
class FillSpec:
    """How a package's material fills its polygon: the material and the order the cells are built in."""

    polygon: Polygon
    material: str
    order: str
    """``left_right`` (bays or road lengths), ``bottom_up`` (courses, each laid left to right)."""
    cell: tuple[int, int]
    """(width, height) in pixels of one placed unit: a bay, a brick, a sheet, a road length."""


@dataclass(frozen=True, slots=True)
class Figure:
    """A standing worker: feet at (x, y) pixels, height in pixels, vest colour."""

    x: float
    y: float
    height: float
    vest: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Truck:
    """A parked dump truck: its box (pixels) and paint."""

    x0: float
    y0: float
    x1: float
    y1: float
    paint: tuple[int, int, int]


def polygon_mask(polygon: Polygon, size: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Pixels (h, w) inside the normalised ``polygon`` (pixel centres)."""
    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    points = np.round(np.array(polygon, dtype=np.float64) * [width, height] * 16).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


@functools.lru_cache(maxsize=64)
def fill_rank(spec: FillSpec, size: tuple[int, int]) -> FloatImage:
    """Per pixel, the share of the polygon's area built when this pixel's unit is HALF done (inf outside).

    At percent p the built pixels are ``rank < p / 100``: whole units, placed in order, a unit drawn once the
    work has reached its middle, so the drawn area share is p rounded to the nearest unit (never a whole unit
    ahead of the truth the scene reports). The ranks count pixels, not rows, so an uneven polygon still
    fills by area.
    """
    width, height = size
    inside = polygon_mask(spec.polygon, size)
    ys, xs = np.nonzero(inside)
    rank = np.full((height, width), np.inf, dtype=np.float32)
    if len(xs) == 0:
        return rank
    cw, ch = spec.cell
    x0, y1 = xs.min(), ys.max()
    column = (xs - x0) // cw
    if spec.order == "bottom_up":
        course = (y1 - ys) // ch
        # Bricks of alternate courses are offset by half a brick, as laid.
        column = (xs - x0 + (course % 2) * (cw // 2)) // cw
        key = course * 10_000 + column
    elif spec.order == "left_right":
        key = column
    else:
        raise ValueError(f"unknown fill order {spec.order!r}")
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    middles = (np.cumsum(counts) - counts / 2) / len(xs)
    rank[ys, xs] = middles[inverse].astype(np.float32)
    return rank


@functools.lru_cache(maxsize=16)
def _noise(seed: int, size: tuple[int, int], sigma: float) -> FloatImage:
    """Smooth noise (h, w), unit standard deviation, features ``sigma`` pixels wide."""
    width, height = size
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), sigma)
    std = float(field.std()) or 1.0
    return np.asarray(field / std, dtype=np.float32)


def _grain(seed: int, size: tuple[int, int], sd: float) -> FloatImage:
    width, height = size
    rng = np.random.default_rng(seed)
    return rng.normal(0, sd, (height, width)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def static_view(seed: int, size: tuple[int, int]) -> tuple[FloatImage, npt.NDArray[np.bool_]]:
    """The site before any work: (BGR float image, sky mask). Sky, tree line, dirt ground, an office, piles."""
    width, height = size
    rows = (np.arange(height, dtype=np.float32) + 0.5) / height
    image = np.zeros((height, width, 3), dtype=np.float32)
    horizon_px = HORIZON * height
    # Sky: deeper blue at the top, paler at the horizon.
    t = np.clip(rows / HORIZON, 0, 1)[:, None]
    sky = (1 - t) * np.array([205, 150, 95], np.float32) + t * np.array([235, 215, 195], np.float32)
    image[:] = sky[:, None, :]
    # Tree line: bumpy dark green band standing on the horizon.
    bumps = _noise(seed + 1, (width, 1), 6.0)[0] * 0.012 * height + 0.035 * height
    tree_top = horizon_px - np.clip(bumps, 0.01 * height, None)
    yy = np.arange(height, dtype=np.float32)[:, None]
    trees = (yy >= tree_top[None, :]) & (yy < horizon_px + 0.01 * height)
    foliage = np.array([55, 95, 60], np.float32) + 18 * _noise(seed + 2, size, 1.5)[:, :, None]
    image[trees] = foliage[trees]
    sky_mask = yy < tree_top[None, :]
    sky_mask = np.broadcast_to(sky_mask, (height, width)).copy()
    # Ground: dirt, darker and coarser near the camera, with tyre ruts.
    ground = yy >= horizon_px + 0.01 * height
    ground = np.broadcast_to(ground, (height, width))
    depth = np.clip((rows - HORIZON) / (1 - HORIZON), 0, 1)[:, None, None]
    dirt = np.array([80, 110, 140], np.float32) * (0.92 + 0.12 * depth)
    dirt = dirt + 14 * _noise(seed + 3, size, 4.0)[:, :, None] + _grain(seed + 4, size, 9.0)[:, :, None]
    image[ground] = np.broadcast_to(dirt, (height, width, 3))[ground]
    for k in range(3):
        y_rut = int((0.76 + 0.012 * k) * height)
        cv2.line(image, (0, y_rut), (width, y_rut + int(0.02 * height)), (70, 95, 120), max(1, height // 180))
    # Site office container and material piles on the right: static texture outside the packages.
    ox0, oy0, ox1, oy1 = int(0.70 * width), int(0.50 * height), int(0.90 * width), int(0.66 * height)
    cv2.rectangle(image, (ox0, oy0), (ox1, oy1), (150, 110, 40), -1)
    for x in range(ox0, ox1, max(3, width // 160)):
        cv2.line(image, (x, oy0), (x, oy1), (130, 95, 35), 1)
    cv2.rectangle(image, (ox0 + width // 40, oy0 + height // 40), (ox0 + width // 14, oy0 + height // 14),
                  (90, 70, 50), -1)  # fmt: skip
    pile = np.array([[0.72, 0.76], [0.80, 0.69], [0.88, 0.76]]) * [width, height]
    cv2.fillPoly(image, [pile.astype(np.int32)], (120, 150, 170))
    cv2.fillPoly(image, [(pile + np.array([0.10 * width, 0.0])).astype(np.int32)], (110, 115, 120))
    return image, sky_mask


@functools.lru_cache(maxsize=16)
def material(name: str, seed: int, size: tuple[int, int]) -> FloatImage:
    """A full-frame texture of ``name`` (only the pixels a package has built are shown)."""
    width, height = size
    ys = np.arange(height)[:, None]
    xs = np.arange(width)[None, :]
    out = np.zeros((height, width, 3), dtype=np.float32)
    grain = _grain(seed, size, 6.0)[:, :, None]
    blotch = _noise(seed + 7, size, 8.0)[:, :, None]
    unit = max(2, height // 90)
    if name == "concrete":
        out[:] = np.array([178, 180, 176], np.float32) + 8 * blotch + grain
        # Formwork joints every bay.
        out[:, (xs[0] % (6 * unit)) == 0] *= 0.7
    elif name == "brick":
        brick_w, brick_h = 6 * unit, 2 * unit
        out[:] = np.array([60, 85, 165], np.float32) + 10 * blotch + grain
        course = ys // brick_h
        mortar_row = (ys % brick_h) == 0
        mortar_col = ((xs + (course % 2) * (brick_w // 2)) % brick_w) == 0
        mortar = np.broadcast_to(mortar_row | mortar_col, (height, width))
        out[mortar] = (185, 190, 195)
        # Concrete columns every 16 bricks, and dark window openings between them.
        column = ((xs // brick_w) % 16) < 2
        out[np.broadcast_to(column, (height, width))] = np.array([175, 178, 175], np.float32)
        window = (((xs // brick_w) % 16) >= 6) & (((xs // brick_w) % 16) < 10) & (((ys // brick_h) % 9) >= 3)
        window &= ((ys // brick_h) % 9) < 7
        out[window] = np.array([70, 60, 55], np.float32) + 0.5 * grain[window]
    elif name == "roof":
        ribs = 0.5 + 0.5 * np.cos(2 * np.pi * xs / (3 * unit))
        out[:] = np.array([150, 125, 95], np.float32) + 45 * ribs[:, :, None] + grain * 0.6
    elif name == "base":
        speckle = _grain(seed + 11, size, 26.0)[:, :, None]
        out[:] = np.array([140, 150, 158], np.float32) + speckle + 6 * blotch
    elif name == "asphalt":
        out[:] = np.array([62, 62, 64], np.float32) + grain * 0.8 + 6 * blotch
        for y_line in (0.835, 0.925):
            y = int(y_line * height)
            out[y : y + max(1, unit // 2) + 1] = (225, 228, 230)
    else:
        raise ValueError(f"unknown material {name!r}")
    return np.clip(out, 0, 255).astype(np.float32)


def draw_fills(image: FloatImage, fills: Sequence[tuple[FillSpec, float]], seed: int, size: tuple[int, int]) -> None:
    """Paint each (spec, share 0..1) in place: the first ``share`` of the polygon's units, in fill order."""
    for spec, share in fills:
        if share <= 0:
            continue
        built = fill_rank(spec, size) < share - 1e-9
        texture = material(spec.material, seed, size)
        image[built] = texture[built]


def draw_figures(image: FloatImage, figures: Sequence[Figure]) -> npt.NDArray[np.float32]:
    """Draw workers (helmet, hi-vis vest, dark trousers); returns their boxes (n, 4) pixel xyxy."""
    boxes = []
    for f in figures:
        h = f.height
        w = 0.38 * h
        x0, x1 = f.x - w / 2, f.x + w / 2
        top = f.y - h
        legs = np.array([[x0 + 0.1 * w, f.y - 0.45 * h], [x1 - 0.1 * w, f.y]])
        cv2.rectangle(image, _pt(legs[0]), _pt(legs[1]), (50, 45, 40), -1)
        cv2.rectangle(image, _pt((x0, top + 0.2 * h)), _pt((x1, f.y - 0.45 * h)), f.vest, -1)
        cv2.line(image, _pt((x0, top + 0.4 * h)), _pt((x1, top + 0.4 * h)), (215, 215, 215), max(1, int(h / 14)))
        cv2.circle(image, _pt((f.x, top + 0.1 * h)), max(1, int(0.11 * h)), (120, 160, 200), -1)
        cv2.ellipse(image, _pt((f.x, top + 0.07 * h)), (max(1, int(0.13 * h)), max(1, int(0.07 * h))), 0, 180,
                    360, (245, 245, 245), -1)  # fmt: skip
        boxes.append((x0, top, x1, f.y))
    return np.array(boxes, dtype=np.float32).reshape(-1, 4)


def draw_truck(image: FloatImage, truck: Truck) -> tuple[float, float, float, float]:
    """A dump truck (cab on the left, tipper body, wheels); returns its box."""
    x0, y0, x1, y1 = truck.x0, truck.y0, truck.x1, truck.y1
    w, h = x1 - x0, y1 - y0
    cab_x = x0 + 0.28 * w
    cv2.rectangle(image, _pt((x0, y0 + 0.15 * h)), _pt((cab_x, y1 - 0.2 * h)), (160, 90, 30), -1)
    cv2.rectangle(image, _pt((x0 + 0.05 * w, y0 + 0.22 * h)), _pt((cab_x - 0.04 * w, y0 + 0.45 * h)),
                  (110, 80, 60), -1)  # fmt: skip
    cv2.rectangle(image, _pt((cab_x, y0)), _pt((x1, y1 - 0.25 * h)), truck.paint, -1)
    for k in range(1, 5):
        x = cab_x + k * (x1 - cab_x) / 5
        cv2.line(image, _pt((x, y0)), _pt((x, y1 - 0.25 * h)), tuple(0.7 * c for c in truck.paint), 1)
    cv2.rectangle(image, _pt((x0, y1 - 0.3 * h)), _pt((x1, y1 - 0.18 * h)), (40, 40, 40), -1)
    for wx in (x0 + 0.16 * w, x0 + 0.62 * w, x0 + 0.84 * w):
        cv2.circle(image, _pt((wx, y1 - 0.13 * h)), max(2, int(0.13 * h)), (25, 25, 25), -1)
        cv2.circle(image, _pt((wx, y1 - 0.13 * h)), max(1, int(0.05 * h)), (140, 140, 140), -1)
    return (x0, y0, x1, y1)


def _pt(point: Sequence[float] | npt.NDArray[np.float64]) -> tuple[int, int]:
    return (round(float(point[0])), round(float(point[1])))


LIGHT: Mapping[str, tuple[float, tuple[float, float, float], tuple[float, float, float]]] = {
    # condition: (gain, BGR cast, sky BGR)
    "clear": (1.0, (1.0, 1.0, 1.0), (0, 0, 0)),
    "crowd": (1.0, (1.0, 1.0, 1.0), (0, 0, 0)),
    "truck_parked": (1.0, (1.0, 1.0, 1.0), (0, 0, 0)),
    "overcast": (0.8, (1.0, 1.0, 0.98), (188, 186, 182)),
    "dawn": (0.66, (0.8, 0.92, 1.12), (170, 175, 225)),
    "dusk": (0.58, (0.74, 0.86, 1.15), (120, 150, 215)),
    "night": (0.07, (1.15, 1.0, 0.9), (25, 15, 10)),
    "rain": (0.66, (1.02, 1.0, 0.96), (165, 160, 155)),
    "fog": (0.95, (1.0, 1.0, 1.0), (210, 210, 206)),
}


def apply_condition(
    image: FloatImage, sky: npt.NDArray[np.bool_], condition: str, rng: np.random.Generator
) -> FloatImage:
    """Light, weather and the sensor: returns a new float image (clipped to 0..255 later by the caller)."""
    gain, cast, sky_colour = LIGHT[condition]
    height, width = image.shape[:2]
    out = image.copy()
    if condition in ("overcast", "dawn", "dusk", "night", "rain", "fog"):
        out[sky] = 0.25 * out[sky] + 0.75 * np.array(sky_colour, np.float32)
    if condition in ("overcast", "rain"):
        grey = out.mean(axis=2, keepdims=True)
        out = grey + 0.7 * (out - grey)
    out *= np.array(cast, np.float32) * gain * float(1 + rng.normal(0, 0.03))
    if condition == "rain":
        # Heavy rain: water on the lens blurs the view, the air is grey, streaks are faint and motion-blurred.
        mean = out.mean(axis=(0, 1), keepdims=True)
        out = mean + 0.6 * (out - mean)
        out = cv2.GaussianBlur(out, (0, 0), 0.016 * height)
        streaks = np.zeros((height, width), dtype=np.float32)
        length = max(4, height // 20)
        for _ in range(width * height // 900):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(streaks, (x, y), (x + length // 4, y + length), 1.0, 1)
        out += 16 * cv2.GaussianBlur(streaks, (0, 0), 1.5)[:, :, None]
    elif condition == "fog":
        rows = (np.arange(height, dtype=np.float32) + 0.5) / height
        density = (0.88 - 0.2 * rows)[:, None, None]
        out = out * (1 - density) + np.array(sky_colour, np.float32) * density
        out = cv2.GaussianBlur(out, (0, 0), 0.003 * height)
    elif condition == "night":
        # A floodlight on the site office.
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        glow = np.exp(-(((xx - 0.8 * width) / (0.12 * width)) ** 2 + ((yy - 0.5 * height) / (0.15 * height)) ** 2))
        out += 60 * glow[:, :, None] * np.array([0.7, 0.9, 1.0], np.float32)
    out += rng.normal(0, 2.5 if condition != "night" else 4.0, out.shape).astype(np.float32)
    return np.asarray(out, dtype=np.float32)


def to_uint8(image: FloatImage) -> Image:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
