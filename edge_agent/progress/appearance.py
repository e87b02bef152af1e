"""Visual state of work-package regions, cell by cell, against reference images of the same camera view.

Each region's bounding box is split into grid x grid cells; cells mostly inside the polygon are judged. A cell is
described by features chosen to survive what light and weather do to a fixed view:

- The frame is first aligned photometrically to the reference on the static background (``photometry``): gain,
  colour cast, haze offset and overcast desaturation cancel; only the local look of the cell remains.
- chromaticity (2 values) and log luminance of the normalised cell mean;
- log edge density (mean gradient magnitude of the normalised luminance);
- gradient orientation histogram (8 unsigned bins, magnitude weighted, sums to 1): the layout of edges
  (formwork, rebar, brick courses, road markings);
- rotation-invariant uniform LBP histogram (10 bins, with a small tolerance so flat areas read as flat):
  the micro texture, invariant to any monotonic change of brightness.

Prototypes per cell per state come from the references (mean when several pictures show the same state). A
cell's state is its nearest prototype, except that a cell within the CHANGE THRESHOLD of its not_started
prototype is not_started. The threshold is calibrated per region at start: the 90th percentile distance
between the not_started reference and photometric variations of itself (gain, colour cast, gamma, haze, sensor
noise, slight blur) and between not_started references of the same package, times ``change_k`` (floored at
``min_change_distance``; capped at half the distance to the nearest other state's prototype). A package without
an in_progress/done reference counts a changed cell as ``changed_percent``.

Partly built cells are where the reading used to be biased HIGH (3-4 points per package on a work front, which
made the "chậm tiến độ" alert fire a day late), for two reasons, both handled here:

- Edge bleed: the texture features (gradient, orientation, LBP) of a pixel see its neighbours, so the strong edge
  between a new material and the ground (or a finished neighbouring package) leaked into the cell beyond the front
  and made an untouched cell read 13-73 %. Texture is therefore read only from pixels TEXTURE_MARGIN away from the
  cell's edges across the fill direction (colour still from every pixel).
- Non-linear mixing: magnitude-weighted histograms and log densities are dominated by the busier material, so a
  cell's position between two prototypes is not its built share (half a speckled base course read 93 %). Each
  cell's position -> share curve is measured at start from composites of the references built to known shares
  (``fill_calibration``) and inverted per frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.progress.config import PackageRegion, ProgressCameraConfig, VisualState
from edge_agent.progress.photometry import PhotometricReference, align, to_gray

ORIENTATION_BINS = 8
LBP_BINS = 10
LBP_TOLERANCE = 0.02
"""A neighbour counts as brighter only when it beats the centre by this much (aligned units, 0..1)."""
FEATURE_WEIGHTS = {"chroma": 8.0, "luminance": 1.0, "edges": 1.0, "orientation": 1.5, "lbp": 2.0}
"""Scale of each feature group so that one unit of distance means a similar visual difference in each."""
TEXTURE_SIGMA = 0.7
"""Gaussian smoothing (working pixels) before the texture features."""
TEXTURE_MARGIN = 2
"""Working pixels at each cell edge ACROSS the fill direction left out of the texture features (see layout)."""
STATE_ORDER: tuple[VisualState, ...] = ("not_started", "in_progress", "done")

FloatArray = npt.NDArray[np.float32]


def _lbp_table() -> npt.NDArray[np.int64]:
    """Map each 8-bit LBP code to its rotation-invariant uniform class: #ones for <=2 transitions, else 9."""
    table = np.empty(256, dtype=np.int64)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        transitions = sum(bits[i] != bits[(i + 1) % 8] for i in range(8))
        table[code] = sum(bits) if transitions <= 2 else 9
    return table


_LBP = _lbp_table()


def working_size(width: int, height: int, working_width: int) -> tuple[int, int]:
    """(width, height) every frame of a camera is resized to: the working width, the camera's aspect ratio."""
    scale = working_width / width
    return working_width, max(16, round(height * scale))


def to_working(image: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Per-pixel planes of one working-size frame that the cell features are summed from."""

    norm: FloatArray  # (h, w, 3) BGR aligned to the reference
    gray: FloatArray  # (h, w) its luminance
    magnitude: FloatArray  # (h, w)
    orientation: npt.NDArray[np.int64]  # (h, w) bin 0..7
    lbp: npt.NDArray[np.int64]  # (h, w) class 0..9


def prepare(aligned: FloatArray) -> Prepared:
    """Planes of a frame already aligned to the reference (float BGR about 0..1); a few ms at 640x360."""
    # Texture is read at a slightly coarser scale than the pixel grid: sensor noise, compression and the mild blur
    # the quality gate lets through then change it much less.
    gray = to_gray(aligned)
    if TEXTURE_SIGMA > 0:
        gray = np.asarray(cv2.GaussianBlur(gray, (0, 0), TEXTURE_SIGMA), dtype=np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.asarray(cv2.magnitude(gx, gy), dtype=np.float32)
    angle = cv2.phase(gx, gy)  # 0 .. 2 pi
    orientation = (angle * (ORIENTATION_BINS / np.pi)).astype(np.int64) % ORIENTATION_BINS  # unsigned: mod pi
    return Prepared(aligned, gray, magnitude, orientation, _lbp(gray))


def _lbp(gray: FloatArray) -> npt.NDArray[np.int64]:
    padded = np.pad(gray, 1, mode="edge")
    h, w = gray.shape
    centre = gray + LBP_TOLERANCE
    code = np.zeros((h, w), dtype=np.int64)
    offsets = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))  # clockwise from top-left
    for bit, (dy, dx) in enumerate(offsets):
        code |= (padded[dy : dy + h, dx : dx + w] >= centre).astype(np.int64) << bit
    return _LBP[code]


@dataclass(frozen=True, slots=True)
class RegionLayout:
    """Cells of one region at working size: which pixels (flat indices) belong to which cell."""

    package: PackageRegion
    rows: npt.NDArray[np.int64]  # (n,) grid row of each cell
    cols: npt.NDArray[np.int64]  # (n,) grid column
    pixels: npt.NDArray[np.int64]  # flat pixel indices of the cells' pixels
    labels: npt.NDArray[np.int64]  # cell of each of those pixels
    counts: npt.NDArray[np.float64]  # (n,) pixels per cell
    # per pixel of ``pixels``: at least TEXTURE_MARGIN from its cell's edges across the fill direction
    inner: npt.NDArray[np.bool_]
    inner_counts: npt.NDArray[np.float64]  # (n,) inner pixels per cell

    @property
    def cells(self) -> int:
        return len(self.rows)


def region_mask(package: PackageRegion, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    width, height = size
    points = np.round(np.asarray(package.region, dtype=np.float64) * (width - 1, height - 1)).astype(np.int32)
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [points], 1)
    return mask


def layout_region(package: PackageRegion, size: tuple[int, int], grid: int, min_inside: float) -> RegionLayout:
    """Split the region's bounding box into grid x grid cells and keep those mostly inside the polygon."""
    width, _ = size
    mask = region_mask(package, size)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError(f"package {package.id!r}: its region covers no pixel at {size[0]}x{size[1]}")
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    vertical_front = package.fill in ("left_right", "right_left", "any")
    x_edges = np.round(np.linspace(x0, x1, grid + 1)).astype(int)
    y_edges = np.round(np.linspace(y0, y1, grid + 1)).astype(int)
    for threshold in (min_inside, 1e-9):  # a thin region may have no cell mostly inside: then take any part
        rows: list[int] = []
        cols: list[int] = []
        pixels: list[npt.NDArray[np.int64]] = []
        labels: list[npt.NDArray[np.int64]] = []
        inner: list[npt.NDArray[np.bool_]] = []
        for r in range(grid):
            for c in range(grid):
                block = mask[y_edges[r] : y_edges[r + 1], x_edges[c] : x_edges[c + 1]]
                if block.size == 0 or block.mean() < threshold or int(block.sum()) < 4:
                    continue
                by, bx = np.nonzero(block)
                flat = (by + y_edges[r]).astype(np.int64) * width + (bx + x_edges[c]).astype(np.int64)
                along, extent = (bx, block.shape[1]) if vertical_front else (by, block.shape[0])
                keep = (along >= TEXTURE_MARGIN) & (along < extent - TEXTURE_MARGIN)
                inner.append(keep if keep.any() else np.ones(len(flat), dtype=bool))
                labels.append(np.full(len(flat), len(rows), dtype=np.int64))
                pixels.append(flat)
                rows.append(r)
                cols.append(c)
        if rows:
            break
    if not rows:
        raise ValueError(f"package {package.id!r}: its region is too small for any {grid}x{grid} cell")
    label_array = np.concatenate(labels)
    return RegionLayout(
        package=package,
        rows=np.asarray(rows, dtype=np.int64),
        cols=np.asarray(cols, dtype=np.int64),
        pixels=np.concatenate(pixels),
        labels=label_array,
        counts=np.bincount(label_array, minlength=len(rows)).astype(np.float64),
        inner=np.concatenate(inner),
        inner_counts=np.bincount(label_array, weights=np.concatenate(inner), minlength=len(rows)).astype(np.float64),
    )


def cell_features(prepared: Prepared, layout: RegionLayout) -> FloatArray:
    """(cells, 22) weighted feature vectors: Euclidean distance between them is the cell distance."""
    n, lab, pix = layout.cells, layout.labels, layout.pixels
    counts = layout.counts
    norm = prepared.norm.reshape(-1, 3)[pix]
    means = np.stack([np.bincount(lab, weights=norm[:, k], minlength=n) for k in range(3)], axis=1) / counts[:, None]
    means = np.maximum(means, 0.01)
    total = means.sum(axis=1, keepdims=True)
    chroma = (means[:, (0, 2)] / total) * FEATURE_WEIGHTS["chroma"]
    luminance = np.log(total / 3.0) * FEATURE_WEIGHTS["luminance"]
    # Texture only from the cells' inner pixels (see TEXTURE_MARGIN): colour above uses every pixel.
    lab, pix, counts = lab[layout.inner], pix[layout.inner], layout.inner_counts
    magnitude = prepared.magnitude.reshape(-1)[pix]
    mag_sum = np.bincount(lab, weights=magnitude, minlength=n)
    edges = np.log(0.02 + mag_sum / counts) * FEATURE_WEIGHTS["edges"]
    orientation_sums = np.bincount(
        lab * ORIENTATION_BINS + prepared.orientation.reshape(-1)[pix],
        weights=magnitude,
        minlength=n * ORIENTATION_BINS,
    ).reshape(n, ORIENTATION_BINS)
    orientation = (orientation_sums + 1e-3 * counts[:, None]) / (
        mag_sum[:, None] + 1e-3 * ORIENTATION_BINS * counts[:, None]
    )
    lbp_counts = np.bincount(lab * LBP_BINS + prepared.lbp.reshape(-1)[pix], minlength=n * LBP_BINS)
    lbp = lbp_counts.reshape(n, LBP_BINS) / counts[:, None]
    return np.concatenate(
        [
            chroma,
            luminance,
            edges[:, None],
            orientation * FEATURE_WEIGHTS["orientation"],
            lbp * FEATURE_WEIGHTS["lbp"],
        ],
        axis=1,
    ).astype(np.float32)


def cell_cover(layout: RegionLayout, occluder_mask: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.float64]:
    """Share of each cell's pixels under a detected object's box."""
    if occluder_mask is None:
        return np.zeros(layout.cells)
    covered = occluder_mask.reshape(-1)[layout.pixels].astype(np.float64)
    return np.bincount(layout.labels, weights=covered, minlength=layout.cells) / layout.counts


def photometric_variants(bgr: npt.NDArray[np.uint8], seed: int = 0) -> list[npt.NDArray[np.uint8]]:
    """What a day does to a fixed view: gain, colour cast, gamma, haze, sensor noise, slight blur."""
    rng = np.random.default_rng(seed)
    image = bgr.astype(np.float32)
    variants = [
        image * 0.6,
        image * 1.3,
        image * np.array([0.8, 1.0, 1.2], dtype=np.float32),
        image * np.array([1.15, 1.0, 0.85], dtype=np.float32),
        255.0 * (image / 255.0) ** 0.8,
        255.0 * (image / 255.0) ** 1.25,
        image * 0.75 + 0.25 * 200.0,
        image + rng.normal(0.0, 4.0, image.shape).astype(np.float32),
        cv2.GaussianBlur(image, (0, 0), 0.8),
    ]
    return [np.clip(v, 0, 255).astype(np.uint8) for v in variants]


@dataclass(frozen=True, slots=True)
class RegionJudgement:
    """One region in one frame."""

    package_id: str
    percent: float
    confidence: float
    occluded: float  # share of cells hidden
    hidden: int
    cells: int


@dataclass(slots=True)
class RegionModel:
    """Prototypes, thresholds and the recent look of one region's cells."""

    layout: RegionLayout
    prototypes: dict[VisualState, FloatArray]
    threshold: npt.NDArray[np.float64]  # (cells,) change distance from not_started
    noise: float  # 90th percentile distance of not_started looks to their prototype
    anomaly: float
    calibration: dict[tuple[VisualState, VisualState], npt.NDArray[np.float64]] = field(default_factory=dict)
    """Per pair of adjacent states: (len(CALIBRATION_SHARES), cells) position along the segment of a cell built
    to each share (see ``fill_calibration``); no entry: the position is taken as the share."""
    memory: FloatArray | None = None
    anomalous_runs: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _graded(
    features: FloatArray,
    region: RegionModel,
    states: Sequence[VisualState],
    percent_of: Callable[[VisualState], float],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Fractional % of each cell between the two states it lies between, and a confidence.

    A part-built cell lies near the segment from one prototype to the next; its position along it is mapped to the
    built share through the cell's calibration curve (``fill_calibration``: the features do not mix linearly with
    the built share), or read as the share when the region has no curve. A dead zone of the noise level at both
    ends keeps untouched and finished cells at exactly 0 and 100. The segment nearest to the cell is used; the
    confidence falls as the cell lies off it (a look no reference explains).
    """
    best_distance = np.full(len(features), np.inf)
    values = np.zeros(len(features))
    lengths = np.ones(len(features))
    for a, b in itertools.pairwise(states):
        start, end = region.prototypes[a].astype(np.float64), region.prototypes[b].astype(np.float64)
        span = end - start
        length_sq = np.maximum((span * span).sum(axis=1), 1e-12)
        position = np.clip(((features - start) * span).sum(axis=1) / length_sq, 0.0, 1.0)
        distance = np.linalg.norm(features - (start + position[:, None] * span), axis=1)
        dead = np.clip(region.noise / np.sqrt(length_sq), 0.0, 0.3)
        curve = region.calibration.get((a, b))
        share = np.clip((position - dead) / (1.0 - 2.0 * dead), 0.0, 1.0)
        if curve is not None:
            share = np.where(
                position < dead, 0.0, np.where(position > 1.0 - dead, 1.0, share_of_position(position, curve))
            )
        value = percent_of(a) + share * (percent_of(b) - percent_of(a))
        better = distance < best_distance
        best_distance = np.where(better, distance, best_distance)
        values = np.where(better, value, values)
        lengths = np.where(better, np.sqrt(length_sq), lengths)
    confidence = np.clip(1.0 - best_distance / np.maximum(lengths, 1e-9), 0.0, 1.0)
    return values, confidence


CALIBRATION_SHARES = np.linspace(0.0, 1.0, 11)
"""Built shares of the composites a cell's position -> share curve is measured at."""


def fill_fractions(layout: RegionLayout, width: int) -> npt.NDArray[np.float64]:
    """Per pixel of ``layout.pixels``: the share of its cell's pixels built before it, in the package's fill order.

    A cell is built along the package's own direction (``bottom_up`` from its lowest row, ``left_right`` from its
    left column, ...; ``any`` as ``left_right``), so a composite built to share f shows a straight front, as a
    part-built cell on site does. Ranks count pixels, so f is the built share of the cell's area.
    """
    ys = layout.pixels // width
    xs = layout.pixels % width
    along, across = {
        "bottom_up": (-ys, xs),
        "top_down": (ys, xs),
        "right_left": (-xs, ys),
    }.get(layout.package.fill, (xs, ys))
    order = np.lexsort((across, along, layout.labels))  # labels ascending, then fill order within the cell
    starts = np.searchsorted(layout.labels[order], np.arange(layout.cells))
    rank = np.empty(len(order), dtype=np.float64)
    rank[order] = np.arange(len(order)) - starts[layout.labels[order]]
    return (rank + 0.5) / layout.counts[layout.labels]


def segment_position(features: FloatArray, start: FloatArray, end: FloatArray) -> npt.NDArray[np.float64]:
    """Position (0..1, clipped) of each cell's features projected on the segment from ``start`` to ``end``."""
    a, b = start.astype(np.float64), end.astype(np.float64)
    span = b - a
    length_sq = np.maximum((span * span).sum(axis=1), 1e-12)
    return np.asarray(np.clip(((features - a) * span).sum(axis=1) / length_sq, 0.0, 1.0), dtype=np.float64)


def share_of_position(position: npt.NDArray[np.float64], curve: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Invert each cell's calibration curve (positions at CALIBRATION_SHARES, made non-decreasing) at ``position``."""
    shares = CALIBRATION_SHARES
    k = np.clip((curve <= position[None, :]).sum(axis=0) - 1, 0, len(shares) - 2)
    cells = np.arange(len(position))
    low, high = curve[k, cells], curve[k + 1, cells]
    step = np.where(high - low > 1e-9, (position - low) / np.maximum(high - low, 1e-9), 1.0)
    return np.asarray(np.clip(shares[k] + np.clip(step, 0.0, 1.0) * (shares[k + 1] - shares[k]), 0.0, 1.0))


def fill_calibration(
    layout: RegionLayout,
    width: int,
    start: tuple[FloatArray, FloatArray],
    end: tuple[FloatArray, FloatArray],
    prepare_aligned: Callable[[FloatArray], Prepared],
) -> npt.NDArray[np.float64]:
    """(len(CALIBRATION_SHARES), cells) positions between two states of cells built to each share.

    ``start``/``end``: (aligned picture of that state, that state's prototype features). The composite for share f
    is the start picture with the first f of every cell (``fill_fractions``) taken from the end picture, judged
    exactly as a frame is: what the features make of a front inside a cell, measured on this camera's own view
    and materials, not assumed. The ends are pinned to 0 and 1 and the curve made non-decreasing so it inverts;
    where it is flat (a cell whose texture has switched before it is full) the dead zone decides.
    """
    fractions = fill_fractions(layout, width)
    start_image, start_proto = start
    end_image, end_proto = end
    flat_start = start_image.reshape(-1, 3)
    flat_end = end_image.reshape(-1, 3)
    curve = np.empty((len(CALIBRATION_SHARES), layout.cells), dtype=np.float64)
    for i, share in enumerate(CALIBRATION_SHARES):
        composite = flat_start.copy()
        built = layout.pixels[fractions < share]
        composite[built] = flat_end[built]
        features = cell_features(prepare_aligned(composite.reshape(start_image.shape)), layout)
        curve[i] = segment_position(features, start_proto, end_proto)
    curve[0], curve[-1] = 0.0, 1.0
    return np.maximum.accumulate(curve, axis=0)


def contiguous_front(
    values: npt.NDArray[np.float64],
    judged: npt.NDArray[np.bool_],
    lines: npt.NDArray[np.int64],
    areas: npt.NDArray[np.float64] | None = None,
) -> float:
    """% complete counting only a contiguous front of lines (rows or columns in fill order).

    Lines are walked from where the work starts; a line with a majority done (mean >= 50) is complete and the walk
    goes on; the first line below that is the front and adds its own mean, then the walk stops. Lines without a
    judged cell are skipped (they neither stop the front nor count). Each line weighs its area (``areas``: pixels
    of each cell; a slanted edge's short lines count less), each cell within a line too.
    """
    weights = np.ones(len(values)) if areas is None else np.asarray(areas, dtype=np.float64)
    line_values: list[tuple[float, float]] = []  # (mean value, area) per line, in fill order
    for line in sorted(set(lines.tolist())):
        in_line = lines == line
        mask = in_line & judged
        if mask.any():
            line_values.append((float(np.average(values[mask], weights=weights[mask])), float(weights[in_line].sum())))
    if not line_values:
        return 0.0
    total = 0.0
    for value, area in line_values:
        total += value * area
        if value < 50.0:
            break
    return total / sum(area for _, area in line_values)


def _noise(
    layout: RegionLayout,
    same_state: list[FloatArray],
    prototype: FloatArray,
    variants: list[tuple[tuple[str, ...], list[Prepared]]],
) -> float:
    """90th percentile distance of not_started looks to the prototype: other not_started references of the
    package, and photometric variations of every not_started reference showing it."""
    distances = [np.linalg.norm(f - prototype, axis=1) for f in same_state] if len(same_state) > 1 else []
    for packages, prepared in variants:
        if layout.package.id in packages:
            distances.extend(np.linalg.norm(cell_features(p, layout) - prototype, axis=1) for p in prepared)
    return float(np.percentile(np.concatenate(distances), 90)) if distances else 0.0


class AppearanceModel:
    """All regions of one camera; ``judge`` is called once per sampled frame that passed the global gates."""

    def __init__(
        self,
        config: ProgressCameraConfig,
        references: Sequence[tuple[VisualState, tuple[str, ...], npt.NDArray[np.uint8]]],
        size: tuple[int, int],
    ) -> None:
        """``references``: (state, packages shown in that state, working-size BGR image)."""
        self._config = config
        self._size = size
        width, height = size
        background = np.ones((height, width), dtype=bool)
        layouts = []
        for package in config.packages:
            layouts.append(layout_region(package, size, config.grid, config.appearance.min_cell_inside))
            background &= region_mask(package, size) == 0
        self.background = background
        first = next(image for state, _, image in references if state == "not_started")
        self.photometric = PhotometricReference.build(first, background)
        prepared = [(state, packages, self.prepare(image)) for state, packages, image in references]
        aligned: dict[tuple[VisualState, str], FloatArray] = {}  # first picture of each state of each package
        for state, packages, image in references:
            for pid in packages:
                if (state, pid) not in aligned:
                    aligned[(state, pid)] = self.align(image)
        variants = [
            (packages, [self.prepare(v) for v in photometric_variants(image)])
            for state, packages, image in references
            if state == "not_started"
        ]
        self.regions: list[RegionModel] = []
        for layout in layouts:
            pid = layout.package.id
            by_state: dict[VisualState, list[FloatArray]] = {}
            for state, packages, prep in prepared:
                if pid in packages:
                    by_state.setdefault(state, []).append(cell_features(prep, layout))
            prototypes = {s: np.mean(np.stack(f), axis=0).astype(np.float32) for s, f in by_state.items()}
            noise = _noise(layout, by_state.get("not_started", []), prototypes["not_started"], variants)
            ac = config.appearance
            base = max(ac.min_change_distance, ac.change_k * noise)
            threshold = np.full(layout.cells, base, dtype=np.float64)
            for state, prototype in prototypes.items():
                if state != "not_started":  # a cell must be judged changed before it is halfway to another state
                    gap = np.linalg.norm(prototype - prototypes["not_started"], axis=1)
                    threshold = np.minimum(threshold, np.maximum(0.5 * gap, 1e-3))
            present = [s for s in STATE_ORDER if s in prototypes]
            calibration = {
                (a, b): fill_calibration(
                    layout, width, (aligned[(a, pid)], prototypes[a]), (aligned[(b, pid)], prototypes[b]), prepare
                )
                for a, b in itertools.pairwise(present)
            }
            self.regions.append(
                RegionModel(
                    layout=layout,
                    prototypes=prototypes,
                    threshold=threshold,
                    noise=noise,
                    anomaly=ac.anomaly_factor * base,
                    calibration=calibration,
                    anomalous_runs=np.zeros(layout.cells, dtype=np.int64),
                )
            )

    def align(self, image: npt.NDArray[np.uint8]) -> FloatArray:
        """``image`` (working size) in the first not_started reference's photometric space."""
        return align(image, self.photometric).apply(image)

    def prepare(self, image: npt.NDArray[np.uint8]) -> Prepared:
        return prepare(self.align(image))

    def occluder_mask(self, occluders: npt.NDArray[np.float32] | None, scale: float) -> npt.NDArray[np.uint8] | None:
        if occluders is None or len(occluders) == 0:
            return None
        width, height = self._size
        mask = np.zeros((height, width), dtype=np.uint8)
        boxes = np.asarray(occluders, dtype=np.float64).reshape(-1, 4) * scale
        for x1, y1, x2, y2 in boxes:
            if not np.all(np.isfinite((x1, y1, x2, y2))):
                continue
            a, b = int(max(0, np.floor(min(x1, x2)))), int(min(width, np.ceil(max(x1, x2))))
            c, d = int(max(0, np.floor(min(y1, y2)))), int(min(height, np.ceil(max(y1, y2))))
            if a < b and c < d:
                mask[c:d, a:b] = 1
        return mask

    def judge(self, prepared: Prepared, occluder_mask: npt.NDArray[np.uint8] | None) -> tuple[RegionJudgement, ...]:
        """Judge every region; also updates each cell's recent look (call only for frames that passed the
        brightness/sharpness/fog gates, whether or not the frame is then rejected as occluded)."""
        return tuple(self._judge_region(region, prepared, occluder_mask) for region in self.regions)

    def _judge_region(
        self, region: RegionModel, prepared: Prepared, occluder_mask: npt.NDArray[np.uint8] | None
    ) -> RegionJudgement:
        ac = self._config.appearance
        layout = region.layout
        features = cell_features(prepared, layout)
        states = [s for s in STATE_ORDER if s in region.prototypes]
        distances = np.stack([np.linalg.norm(features - region.prototypes[s], axis=1) for s in states])
        covered = cell_cover(layout, occluder_mask) >= max(ac.occluder_cover, 1e-9)
        unlike_refs = distances.min(axis=0) > region.anomaly
        if region.memory is not None:
            unlike_refs &= np.linalg.norm(features - region.memory, axis=1) > region.anomaly
        anomalous = unlike_refs & ~covered
        hidden = covered | anomalous
        # Recent look: judged cells take the new look; a persistent anomaly is adopted after a few samples.
        runs = np.where(anomalous, region.anomalous_runs + 1, 0)
        adopt = (~covered & ~anomalous) | (runs >= ac.anomaly_adopt_samples)
        memory = features.copy() if region.memory is None else region.memory
        memory[adopt] = features[adopt]
        region.memory = memory
        region.anomalous_runs = np.where(adopt, 0, runs)

        if len(states) > 1:
            values, confidence = _graded(features, region, states, self._percent_of)
        else:
            d_ns = distances[0]
            values = np.where(d_ns > region.threshold, ac.changed_percent, 0.0)
            confidence = np.minimum(1.0, np.abs(d_ns - region.threshold) / np.maximum(region.threshold, 1e-9))
        judged = ~hidden
        n = layout.cells
        share = float(judged.sum()) / n
        if not judged.any():
            return RegionJudgement(layout.package.id, 0.0, 0.0, 1.0, n, n)
        percent = self._region_percent(layout, values.astype(np.float64), judged)
        return RegionJudgement(
            package_id=layout.package.id,
            percent=float(np.clip(percent, 0.0, 100.0)),
            confidence=float(confidence[judged].mean()) * share,
            occluded=1.0 - share,
            hidden=int(hidden.sum()),
            cells=n,
        )

    def _percent_of(self, state: VisualState) -> float:
        return {"not_started": 0.0, "in_progress": self._config.in_progress_percent, "done": 100.0}[state]

    def _region_percent(
        self, layout: RegionLayout, values: npt.NDArray[np.float64], judged: npt.NDArray[np.bool_]
    ) -> float:
        fill = layout.package.fill
        grid = self._config.grid
        if fill == "any":
            return float(np.average(values[judged], weights=layout.counts[judged]))
        lines = {
            "bottom_up": grid - 1 - layout.rows,
            "top_down": layout.rows,
            "left_right": layout.cols,
            "right_left": grid - 1 - layout.cols,
        }[fill]
        return contiguous_front(values, judged, lines, layout.counts)


def reference_sets(
    config: ProgressCameraConfig, images: Mapping[str, npt.NDArray[np.uint8]]
) -> list[tuple[VisualState, tuple[str, ...], npt.NDArray[np.uint8]]]:
    """(state, packages, image) of every configured reference, packages 'all' expanded."""
    all_ids = tuple(p.id for p in config.packages)
    return [
        (ref.state, all_ids if ref.packages == "all" else tuple(ref.packages), images[ref.image])
        for ref in config.references
    ]
