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

Float64Array = npt.NDArray[np.float64]
Image = npt.NDArray[np.uint8]

SUPERSAMPLE = 3
"""Vehicles are drawn at 3x and averaged down: anti-aliased edges without seams between faces."""
LIGHT_DIR = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])
"""Sun direction (towards the sun), world coordinates."""
ROAD_HALF_WIDTH_M = 7.0
LANE_WIDTH_M = 3.5
GROUND_PX_PER_M = 16

# Face materials; colours are BGR.
BODY, GLASS, TYRE, HUB, HEADLIGHT, TAILLIGHT, PLATE, GRILLE, TRIM = range(9)
MATERIAL_BGR = {
    GLASS: (34, 30, 28),
    TYRE: (24, 24, 26),
    HUB: (150, 150, 155),
    HEADLIGHT: (225, 240, 245),
    TAILLIGHT: (30, 30, 175),
    PLATE: (235, 235, 235),
    GRILLE: (35, 35, 38),
    TRIM: (40, 40, 42),
}


@dataclass(frozen=True, slots=True)
class Face:
    points: Float64Array
    """(k, 3) vehicle-local metres: x right, y forward, z up; counter-clockwise seen from outside."""
    material: int
    layer: int = 1
    """Drawing order: 0 tyres, 1 body shell (convex, so its visible faces never overlap), 2 details on it."""


def _outward(face: Face, centre: tuple[float, float, float], layer: int) -> Face:
    """Wind ``face`` so its normal points away from ``centre`` (back-face culling relies on it)."""
    pts = face.points
    if float(_normal(pts) @ (pts.mean(axis=0) - np.asarray(centre))) < 0:
        pts = pts[::-1].copy()
    return Face(pts, face.material, layer)


@dataclass(frozen=True, slots=True)
class VehicleShape:
    """Dimensions of a car body; the mesh is built from these."""

    length: float = 4.4
    width: float = 1.8
    belt: float = 0.95
    """Height of the window line."""
    roof: float = 1.45
    hood_end: float = 1.15
    """Distance from the centre to where the windscreen starts (towards the front)."""
    roof_front: float = 0.35
    roof_back: float = -1.05
    trunk_start: float = -1.75
    """Where the rear window meets the trunk; close to -length/2 for a hatchback."""


def _quad(
    a: tuple[float, float, float],
    b: tuple[float, float, float],
    c: tuple[float, float, float],
    d: tuple[float, float, float],
    material: int,
) -> Face:
    return Face(np.array([a, b, c, d], dtype=np.float64), material)


def _box(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, material: int) -> list[Face]:  # noqa: PLR0917
    return [
        _quad((x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1), material),  # top
        _quad((x0, y0, z0), (x0, y1, z0), (x1, y1, z0), (x1, y0, z0), material),  # bottom
        _quad((x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1), material),  # right
        _quad((x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0), material),  # left
        _quad((x0, y1, z0), (x0, y1, z1), (x1, y1, z1), (x1, y1, z0), material),  # front
        _quad((x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1), material),  # rear
    ]


def _disc(x: float, y: float, z: float, radius: float, facing: float, material: int, n: int = 14) -> Face:  # noqa: PLR0917
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) * facing
    pts = np.stack([np.full(n, x), y + radius * np.cos(angles), z + radius * np.sin(angles)], axis=1)
    return Face(pts, material)


def _section(hw: float, sill: float, belt: float, top_half: float, top: float) -> Float64Array:
    """Closed cross-section (x, z) of the shell at one station, right side bottom-up then left side top-down."""
    # A bulging side: the normals turn gradually, so flat shading still reads as a curved panel.
    right = [
        (hw * 0.9, sill),
        (hw * 0.98, sill + 0.12),
        (hw, 0.5),
        (hw * 0.99, 0.64),
        (hw * 0.96, belt),
        (top_half, top),
    ]
    left = [(-x, z) for x, z in reversed(right)]
    return np.array(right + left, dtype=np.float64)


def car_mesh(shape: VehicleShape) -> list[Face]:
    """A car as a lofted shell (rounded nose and tail, glass cabin) plus tyres, lights and plates."""
    hl, hw = shape.length / 2, shape.width / 2
    cw = hw * 0.8  # cabin is narrower than the body (tumblehome)
    sill, belt, roof = 0.3, shape.belt, shape.roof
    wheel_r, wheel_y = 0.33, hl * 0.62
    # Stations from the front bumper to the rear: (y, half-width scale, belt height, top half-width, top height).
    stations = [
        (hl, 0.88, belt - 0.2, hw * 0.7, belt - 0.14),
        (hl - 0.25, 1.0, belt - 0.06, hw * 0.85, belt),
        (shape.hood_end, 1.0, belt, hw * 0.9, belt + 0.04),
        (shape.roof_front, 1.0, belt, cw, roof),
        (shape.roof_back, 1.0, belt, cw, roof - 0.02),
        (shape.trunk_start, 1.0, belt, hw * 0.9, belt + 0.04),
        (-hl + 0.2, 1.0, belt - 0.04, hw * 0.85, belt - 0.02),
        (-hl, 0.9, belt - 0.16, hw * 0.7, belt - 0.12),
    ]
    sections = [
        np.column_stack([sec[:, 0], np.full(len(sec), y), sec[:, 1]])
        for y, scale, b, top_half, top in stations
        for sec in [_section(hw * scale, sill, b, top_half, top)]
    ]
    cabin = {2, 3, 4}  # segments between stations 2..5 carry the side windows
    body: list[Face] = []
    n = len(sections[0])
    for seg in range(len(sections) - 1):
        a, b = sections[seg], sections[seg + 1]
        for e in range(n):
            quad = np.array([a[e], a[(e + 1) % n], b[(e + 1) % n], b[e]])
            material = BODY
            if e in (4, 10) and seg in cabin:
                material = GLASS  # side windows
            if e == 5 and seg in (2, 4):
                material = GLASS  # windscreen and rear window
            body.append(Face(quad, material))
    body.append(Face(sections[0].copy(), BODY))
    body.append(Face(sections[-1].copy(), BODY))
    tyres: list[Face] = []
    details: list[Face] = []
    for wy in (wheel_y, -wheel_y):
        for sx in (-1.0, 1.0):
            x0, x1 = sorted((sx * (hw - 0.24), sx * (hw - 0.01)))
            tyre_centre = ((x0 + x1) / 2, wy, wheel_r)
            tyres += [
                _outward(f, tyre_centre, 0) for f in _box(x0, x1, wy - wheel_r, wy + wheel_r, 0.0, 2 * wheel_r, TYRE)
            ]
            details.append(_disc(sx * (hw + 0.01), wy, wheel_r, wheel_r * 1.08, sx, TRIM))  # wheel arch
            details.append(_disc(sx * (hw + 0.02), wy, wheel_r, wheel_r * 0.98, sx, TYRE))
            details.append(_disc(sx * (hw + 0.03), wy, wheel_r, wheel_r * 0.55, sx, HUB, n=10))
    # Lights, grille and number plates sit just proud of the nose and tail.
    fy, ry = hl * 1.0 + 0.01, -hl - 0.01
    for sx in (-1.0, 1.0):
        x0, x1 = sorted((sx * (hw * 0.86 - 0.05), sx * (hw * 0.86 - 0.4)))
        details.append(_quad((x0, fy, 0.58), (x0, fy, 0.7), (x1, fy, 0.7), (x1, fy, 0.58), HEADLIGHT))
        details.append(_quad((x0, ry, 0.6), (x1, ry, 0.6), (x1, ry, 0.72), (x0, ry, 0.72), TAILLIGHT))
    details.append(_quad((-0.42, fy, 0.42), (-0.42, fy, 0.55), (0.42, fy, 0.55), (0.42, fy, 0.42), GRILLE))
    details.append(
        _quad(
            (-0.24, fy + 0.01, 0.32), (-0.24, fy + 0.01, 0.41), (0.24, fy + 0.01, 0.41), (0.24, fy + 0.01, 0.32), PLATE
        )
    )
    details.append(
        _quad(
            (-0.24, ry - 0.01, 0.44), (0.24, ry - 0.01, 0.44), (0.24, ry - 0.01, 0.56), (-0.24, ry - 0.01, 0.56), PLATE
        )
    )
    details += _box(-hw * 0.9, hw * 0.9, -hl - 0.02, -hl + 0.1, sill, sill + 0.1, TRIM)
    details += _box(-hw * 0.9, hw * 0.9, hl - 0.1, hl + 0.02, sill, sill + 0.1, TRIM)
    # B-pillars split the side glass into two windows.
    py = (shape.roof_front + shape.roof_back) / 2 + 0.1
    for sx in (-1.0, 1.0):
        outer, inner = sx * (hw * 0.97 + 0.01), sx * (cw + 0.01)
        details.append(
            Face(
                np.array(
                    [
                        (outer, py - 0.06, belt),
                        (outer, py + 0.06, belt),
                        (inner, py + 0.06, roof),
                        (inner, py - 0.06, roof),
                    ]
                ),
                BODY,
            )
        )
    centre = (0.0, 0.0, 0.7)
    return tyres + [_outward(f, centre, 1) for f in body] + [_outward(f, centre, 2) for f in details]


def _normal(points: Float64Array) -> Float64Array:
    n = np.cross(points[1] - points[0], points[2] - points[0])
    if np.linalg.norm(n) < 1e-12:
        n = np.cross(points[2] - points[0], points[-1] - points[0])
    return n / max(float(np.linalg.norm(n)), 1e-12)


def _shade(
    material: int, normal: Float64Array, paint: tuple[int, int, int], to_eye: Float64Array
) -> tuple[float, float, float]:
    lambert = max(0.0, float(normal @ LIGHT_DIR))
    half = LIGHT_DIR + to_eye
    specular = max(0.0, float(normal @ (half / np.linalg.norm(half)))) ** 24
    if material == BODY:
        base = np.array(paint, dtype=np.float64)
        # Ambient + diffuse + a glossy highlight, as on car paint.
        colour = base * (0.4 + 0.6 * lambert) + 90.0 * specular
    elif material == GLASS:
        colour = (
            np.array(MATERIAL_BGR[GLASS], dtype=np.float64) + 25.0 * max(0.0, float(normal[2])) ** 2 + 40.0 * specular
        )
    else:
        colour = np.array(MATERIAL_BGR[material], dtype=np.float64) * (0.7 + 0.3 * lambert)
    c = np.clip(colour, 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


@dataclass(frozen=True, slots=True)
class PlacedVehicle:
    """A vehicle at one instant: mesh, paint, ground position of its centre and heading (+1 away, -1 towards)."""

    faces: tuple[Face, ...]
    paint: tuple[int, int, int]
    x: float
    y: float
    heading: int

    def world_faces(self) -> list[Face]:
        flip = np.array([self.heading, self.heading, 1.0])
        offset = np.array([self.x, self.y, 0.0])
        out = []
        for face in self.faces:
            pts = face.points * flip + offset
            # Rotating by 180 degrees keeps the winding; no reordering needed.
            out.append(Face(pts, face.material, face.layer))
        return out

    def footprint(self) -> Float64Array:
        pts = np.concatenate([f.points for f in self.faces])
        hw, hl = float(np.abs(pts[:, 0]).max()), float(np.abs(pts[:, 1]).max())
        return np.array([[self.x - hw, self.y - hl], [self.x + hw, self.y + hl]])


def project_vehicle_box(vehicle: PlacedVehicle, camera: Camera) -> Float64Array:
    """Unclipped pixel box (x1, y1, x2, y2) of every vertex of the vehicle."""
    pts = np.concatenate([f.points for f in vehicle.world_faces()])
    uv = camera.project(pts)
    return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def draw_vehicle(
    frame: npt.NDArray[np.float32], vehicle: PlacedVehicle, camera: Camera
) -> tuple[int, int, int, int] | None:
    """Draw ``vehicle`` into ``frame`` (float BGR, changed in place: it is the renderer's own canvas).

    Returns the pixel box of what was drawn inside the frame (x1, y1, x2, y2, exclusive ends), or None.
    """
    faces = vehicle.world_faces()
    eye = np.array([0.0, 0.0, camera.height_m])
    drawable = []
    for face in faces:
        normal = _normal(face.points)
        centroid = face.points.mean(axis=0)
        if float(normal @ (eye - centroid)) <= 0:  # back face
            continue
        drawable.append(((face.layer, -float(np.linalg.norm(centroid - eye))), face, normal))
    if not drawable:
        return None
    uv_all = camera.project(np.concatenate([f.points for _, f, _ in drawable]))
    x0, y0 = int(np.floor(uv_all[:, 0].min())) - 1, int(np.floor(uv_all[:, 1].min())) - 1
    x1, y1 = int(np.ceil(uv_all[:, 0].max())) + 1, int(np.ceil(uv_all[:, 1].max())) + 1
    s = SUPERSAMPLE
    canvas = np.zeros(((y1 - y0) * s, (x1 - x0) * s, 3), dtype=np.float32)
    mask = np.zeros(canvas.shape[:2], dtype=np.float32)
    shift = 4
    origin = np.array([x0, y0], dtype=np.float64)
    for _, face, normal in sorted(drawable, key=lambda t: t[0]):
        poly = np.round((camera.project(face.points) - origin) * s * (1 << shift)).astype(np.int32)
        to_eye = eye - face.points.mean(axis=0)
        colour = _shade(face.material, normal, vehicle.paint, to_eye / np.linalg.norm(to_eye))
        cv2.fillPoly(canvas, [poly], colour, lineType=cv2.LINE_8, shift=shift)
        cv2.fillPoly(mask, [poly], 1.0, lineType=cv2.LINE_8, shift=shift)
    small = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    # Clip the sprite to the frame.
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    sx0, sy0 = fx0 - x0, fy0 - y0
    a = alpha[sy0 : sy0 + fy1 - fy0, sx0 : sx0 + fx1 - fx0, None]
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = region * (1 - a) + small[sy0 : sy0 + fy1 - fy0, sx0 : sx0 + fx1 - fx0] * a
    rows = np.flatnonzero(a[:, :, 0].max(axis=1) >= 0.5)
    cols = np.flatnonzero(a[:, :, 0].max(axis=0) >= 0.5)
    if len(rows) == 0 or len(cols) == 0:
        return None
    return (fx0 + int(cols[0]), fy0 + int(rows[0]), fx0 + int(cols[-1]) + 1, fy0 + int(rows[-1]) + 1)


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
    return cv2.resize(big, (camera.width, camera.height), interpolation=cv2.INTER_AREA).astype(np.float32)
