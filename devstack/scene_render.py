"""Rasterise the synthetic road scene: ground texture, shaded low-poly vehicles, soft shadows.

Pure functions of their inputs (no clock, no globals): the same arguments give
the same pixels, which keeps the rendered clip and its ground truth in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from devstack.scene_camera import Camera
from devstack.scene_meshes import ACCENT, BODY, GLASS, MATERIAL_BGR, VehicleKind, mesh_arrays

Float64Array = npt.NDArray[np.float64]
Image = npt.NDArray[np.uint8]

SUPERSAMPLE = 3
"""Vehicles are drawn at 3x and averaged down: anti-aliased edges without seams between faces."""
LIGHT_DIR = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])
"""Sun direction (towards the sun), world coordinates."""
ROAD_HALF_WIDTH_M = 7.0
LANE_WIDTH_M = 3.5
GROUND_PX_PER_M = 16


def _shade(
    materials: npt.NDArray[np.intp],
    normals: Float64Array,
    to_eye: Float64Array,
    paint: tuple[int, int, int],
    accent: tuple[int, int, int],
) -> Float64Array:
    """(F, 3) BGR colour of each face: ambient + diffuse, a glossy highlight on paint and glass."""
    lambert = np.clip(normals @ LIGHT_DIR, 0.0, None)[:, None]
    half = LIGHT_DIR + to_eye / np.linalg.norm(to_eye, axis=1, keepdims=True)
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    specular = (np.clip((normals * half).sum(axis=1), 0.0, None) ** 24)[:, None]
    fixed = np.array([MATERIAL_BGR.get(int(m), (0, 0, 0)) for m in materials], dtype=np.float64)
    colour = fixed * (0.7 + 0.3 * lambert)
    painted = np.where(materials[:, None] == ACCENT, np.asarray(accent, np.float64), np.asarray(paint, np.float64))
    is_paint = np.isin(materials, (BODY, ACCENT))[:, None]
    colour = np.where(is_paint, painted * (0.4 + 0.6 * lambert) + 90.0 * specular, colour)
    glass = fixed + 25.0 * np.clip(normals[:, 2:3], 0.0, None) ** 2 + 40.0 * specular
    colour = np.where((materials == GLASS)[:, None], glass, colour)
    clipped: Float64Array = np.clip(colour, 0, 255)
    return clipped


@dataclass(frozen=True, slots=True)
class PlacedVehicle:
    """A vehicle at one instant: kind, paints, ground position of its centre and heading (+1 away, -1 towards)."""

    kind: VehicleKind
    paint: tuple[int, int, int]
    x: float
    y: float
    heading: int
    accent: tuple[int, int, int] = (90, 90, 90)
    """Second colour (a motorbike rider's shirt)."""

    def _flip(self) -> Float64Array:
        # Turning round is a rotation by 180 degrees about z: it keeps every face's winding.
        return np.array([self.heading, self.heading, 1.0])

    def world_points(self) -> Float64Array:
        points: Float64Array = mesh_arrays(self.kind).points * self._flip() + np.array([self.x, self.y, 0.0])
        return points

    def footprint(self) -> Float64Array:
        mesh = mesh_arrays(self.kind)
        hw, hl = mesh.half_width, mesh.half_length
        return np.array([[self.x - hw, self.y - hl], [self.x + hw, self.y + hl]])


def project_vehicle_box(vehicle: PlacedVehicle, camera: Camera) -> Float64Array:
    """Unclipped pixel box (x1, y1, x2, y2) of every vertex of the vehicle."""
    uv = camera.project(vehicle.world_points())
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


@dataclass(frozen=True, slots=True)
class Sprite:
    """A rasterised vehicle: colour and coverage over a pixel rectangle whose top-left is (x0, y0)."""

    x0: int
    y0: int
    colour: npt.NDArray[np.float32]
    """(h, w, 3) BGR."""
    alpha: npt.NDArray[np.float32]
    """(h, w) coverage in 0..1 (anti-aliased edges)."""

    def clipped(self, width: int, height: int) -> tuple[slice, slice, slice, slice] | None:
        """(frame rows, frame cols, sprite rows, sprite cols) of the part inside a width x height frame."""
        h, w = self.alpha.shape
        fx0, fy0 = max(self.x0, 0), max(self.y0, 0)
        fx1, fy1 = min(self.x0 + w, width), min(self.y0 + h, height)
        if fx0 >= fx1 or fy0 >= fy1:
            return None
        return (
            slice(fy0, fy1),
            slice(fx0, fx1),
            slice(fy0 - self.y0, fy1 - self.y0),
            slice(fx0 - self.x0, fx1 - self.x0),
        )


def rasterize_vehicle(vehicle: PlacedVehicle, camera: Camera) -> Sprite | None:
    """Shade and rasterise ``vehicle`` (back faces culled, blocks far to near) into a sprite."""
    mesh = mesh_arrays(vehicle.kind)
    flip, offset = vehicle._flip(), np.array([vehicle.x, vehicle.y, 0.0])
    eye = camera.centre
    normals = mesh.normals * flip
    to_eye = eye - (mesh.centroids * flip + offset)
    front = np.flatnonzero((normals * to_eye).sum(axis=1) > 0)  # back faces are culled
    if len(front) == 0:
        return None
    part_distance = np.linalg.norm(mesh.part_centres * flip + offset - eye, axis=1)
    face_distance = np.linalg.norm(to_eye, axis=1)
    # Far parts first; within a part tyres, shell, details; within a layer far faces first.
    order = front[np.lexsort((-face_distance[front], mesh.layers[front], -part_distance[mesh.parts[front]]))]
    uv = camera.project(mesh.points * flip + offset)
    colours = _shade(mesh.materials, normals, to_eye, vehicle.paint, vehicle.accent)
    # Only the part inside the frame is rasterised (a vehicle right under the camera projects huge).
    x0, y0 = max(int(np.floor(uv[:, 0].min())) - 1, -1), max(int(np.floor(uv[:, 1].min())) - 1, -1)
    x1 = min(int(np.ceil(uv[:, 0].max())) + 1, camera.width + 1)
    y1 = min(int(np.ceil(uv[:, 1].max())) + 1, camera.height + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    s = SUPERSAMPLE
    shift = 4
    # Channel 0 starts below any colour, so the pixels no face covered can be told apart afterwards.
    canvas = np.full(((y1 - y0) * s, (x1 - x0) * s, 3), -1.0, dtype=np.float32)
    fixed = np.round((uv - np.array([x0, y0], dtype=np.float64)) * s * (1 << shift)).astype(np.int32)
    for i in order.tolist():
        colour = colours[i]
        cv2.fillPoly(
            canvas,
            [fixed[mesh.starts[i] : mesh.starts[i + 1]]],
            (float(colour[0]), float(colour[1]), float(colour[2])),
            lineType=cv2.LINE_8,
            shift=shift,
        )
    covered = canvas[:, :, 0] >= 0
    canvas[~covered] = 0.0
    colour_small = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(covered.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    # Premultiplied by the coverage: un-premultiply so an edge pixel keeps the face's colour.
    colour_small = colour_small / np.maximum(alpha, 1e-6)[:, :, None]
    return Sprite(x0, y0, np.asarray(colour_small, np.float32), np.asarray(alpha, np.float32))


def composite(frame: npt.NDArray[np.float32], sprite: Sprite) -> None:
    """Blend ``sprite`` over ``frame`` (float BGR, changed in place: it is the renderer's own canvas)."""
    window = sprite.clipped(frame.shape[1], frame.shape[0])
    if window is None:
        return
    rows, cols, srows, scols = window
    a = sprite.alpha[srows, scols, None]
    region = frame[rows, cols]
    region[:] = region * (1 - a) + sprite.colour[srows, scols] * a


def visible_fractions(near_to_far: list[Sprite], width: int, height: int) -> list[float]:
    """Share of each sprite's in-frame coverage that no nearer sprite hides (the truth's occlusion measure)."""
    covered = np.zeros((height, width), dtype=np.float32)
    fractions = []
    for sprite in near_to_far:
        window = sprite.clipped(width, height)
        if window is None:
            fractions.append(0.0)
            continue
        rows, cols, srows, scols = window
        a = sprite.alpha[srows, scols]
        total = float(a.sum())
        seen = float((a * (1 - covered[rows, cols])).sum())
        fractions.append(seen / total if total > 0 else 0.0)
        covered[rows, cols] += a * (1 - covered[rows, cols])
    return fractions


def draw_shadow(frame: npt.NDArray[np.float32], vehicle: PlacedVehicle, camera: Camera) -> None:
    """Darken the ground under and beside the vehicle (soft contact shadow), in place."""
    (xa, ya), (xb, yb) = vehicle.footprint()
    # The sun stands behind-left, so the shadow falls to the right and towards the camera.
    corners = np.array(
        [[xa + 0.15, ya - 0.5, 0], [xb + 0.45, ya - 0.5, 0], [xb + 0.45, yb - 0.1, 0], [xa + 0.15, yb - 0.1, 0]]
    )
    uv = camera.project(corners)
    x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 12
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 12
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if fx0 >= fx1 or fy0 >= fy1:
        return
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    cv2.fillPoly(mask, [np.round((uv - [x0, y0]) * 16).astype(np.int32)], 1.0, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), 3.0)[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    frame[fy0:fy1, fx0:fx1] *= (1 - 0.55 * mask)[:, :, None]


def ground_texture(seed: int, y_max_m: float) -> Image:
    """Top-down road map, GROUND_PX_PER_M pixels a metre, x from -20 m to 20 m and y from 0 to ``y_max_m``."""
    rng = np.random.default_rng(seed)
    k = GROUND_PX_PER_M
    h, w = int(y_max_m * k), 40 * k
    xs = (np.arange(w) + 0.5) / k - 20.0
    tex = np.empty((h, w, 3), dtype=np.float32)
    asphalt = np.array([84, 86, 88], dtype=np.float32)
    tex[:] = asphalt
    # Fine grain plus large blotches, as on worn asphalt.
    tex += rng.normal(0, 7, (h, w, 1)).astype(np.float32)
    tex += cv2.GaussianBlur(rng.normal(0, 40, (h, w)).astype(np.float32), (0, 0), 12)[:, :, None]
    road = np.abs(xs) <= ROAD_HALF_WIDTH_M
    kerb = (np.abs(xs) > ROAD_HALF_WIDTH_M) & (np.abs(xs) <= ROAD_HALF_WIDTH_M + 0.25)
    pavement = (np.abs(xs) > ROAD_HALF_WIDTH_M + 0.25) & (np.abs(xs) <= ROAD_HALF_WIDTH_M + 3.0)
    verge = np.abs(xs) > ROAD_HALF_WIDTH_M + 3.0
    tex[:, kerb] = (175, 178, 180)
    tiles = (155 + 12 * np.sin(np.arange(h)[:, None] * np.pi / (0.5 * k)) ** 40).astype(np.float32)
    tex[:, pavement] = np.repeat(tiles, int(pavement.sum()), axis=1)[:, :, None] * np.array(
        [0.92, 0.97, 1.0], np.float32
    )
    tex[:, verge] = (60, 110, 75)
    tex[:, verge] += rng.normal(0, 12, (h, int(verge.sum()), 1)).astype(np.float32)
    ys = (np.arange(h) + 0.5) / k
    paint = np.array([225, 228, 230], dtype=np.float32)
    line_w = 0.12
    # Edge lines (solid), centre line (double yellow), lane lines (3 m dashes, 6 m gaps).
    for x_line in (-ROAD_HALF_WIDTH_M + 0.3, ROAD_HALF_WIDTH_M - 0.3):
        tex[:, np.abs(xs - x_line) <= line_w / 2] = paint
    for x_line in (-0.12, 0.12):
        tex[:, np.abs(xs - x_line) <= line_w / 2] = (40, 180, 220)
    dashed = (ys % 9.0) < 3.0
    for x_line in (-LANE_WIDTH_M, LANE_WIDTH_M):
        cols = np.abs(xs - x_line) <= line_w / 2
        tex[np.ix_(dashed, cols)] = paint
    tex[:, ~road & ~kerb & ~pavement & ~verge] = asphalt
    return np.clip(tex, 0, 255).astype(np.uint8)


def render_ground(camera: Camera, texture: Image) -> npt.NDArray[np.float32]:
    """Warp the top-down texture into the camera view (float BGR frame)."""
    k = GROUND_PX_PER_M
    tex_from_ground = np.array([[k, 0, 20.0 * k], [0, k, 0], [0, 0, 1.0]])
    image_from_tex = camera.ground_homography() @ np.linalg.inv(tex_from_ground)
    # Supersample the warp so far-away lane dashes do not alias.
    s = 2
    scale = np.diag([s, s, 1.0])
    big = cv2.warpPerspective(
        texture,
        scale @ image_from_tex,
        (camera.width * s, camera.height * s),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    ground = cv2.resize(big, (camera.width, camera.height), interpolation=cv2.INTER_AREA).astype(np.float32)
    # A low camera sees the horizon: above it (and in the haze just below) paint a pale sky.
    rows = np.arange(camera.height, dtype=np.float64) + 0.5
    horizon = camera.height / 2 - camera.focal_px * np.tan(np.deg2rad(camera.pitch_deg))
    haze = np.clip(1.0 - (rows - horizon) / (0.04 * camera.height), 0.0, 1.0)[:, None, None]
    sky = np.array([225.0, 205.0, 180.0], dtype=np.float32)  # BGR: light blue-grey
    blended: npt.NDArray[np.float32] = (ground * (1 - haze) + sky * haze).astype(np.float32)
    return blended
