"""Low-poly vehicle meshes for the synthetic scene: car, van, truck, bus and motorbike with rider.

Vehicle-local metres: x right, y forward (the direction of travel), z up, origin on the
ground under the vehicle's centre. Every face is wound counter-clockwise seen from
outside, so the rasteriser can cull back faces; ``part`` groups the faces of one convex
block (a truck's cab and its cargo box) so blocks are drawn far to near.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]

# Face materials; colours are BGR.
BODY, GLASS, TYRE, HUB, HEADLIGHT, TAILLIGHT, PLATE, GRILLE, TRIM, ACCENT, SKIN, ROOF = range(12)
"""BODY takes the vehicle's paint, ACCENT its second colour (a rider's shirt); the others are fixed."""
MATERIAL_BGR = {
    GLASS: (34, 30, 28),
    TYRE: (24, 24, 26),
    HUB: (150, 150, 155),
    HEADLIGHT: (225, 240, 245),
    TAILLIGHT: (30, 30, 175),
    PLATE: (235, 235, 235),
    GRILLE: (35, 35, 38),
    TRIM: (40, 40, 42),
    SKIN: (120, 150, 190),
    ROOF: (215, 218, 220),
}


@dataclass(frozen=True, slots=True)
class Face:
    points: Float64Array
    """(k, 3) vehicle-local metres: x right, y forward, z up; counter-clockwise seen from outside."""
    material: int
    layer: int = 1
    """Drawing order within a part: 0 tyres, 1 body shell (convex, so its visible faces never overlap),
    2 details on it."""
    part: int = 0
    """Convex block the face belongs to; parts are drawn far to near."""


def _outward(face: Face, centre: tuple[float, float, float], layer: int, part: int = 0) -> Face:
    """Wind ``face`` so its normal points away from ``centre`` (back-face culling relies on it)."""
    pts = face.points
    if float(normal(pts) @ (pts.mean(axis=0) - np.asarray(centre))) < 0:
        pts = pts[::-1].copy()
    return Face(pts, face.material, layer, part)


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


def normal(points: Float64Array) -> Float64Array:
    """Unit normal of a planar polygon (right-hand rule over its first vertices)."""
    n = np.cross(points[1] - points[0], points[2] - points[0])
    if np.linalg.norm(n) < 1e-12:
        n = np.cross(points[2] - points[0], points[-1] - points[0])
    return n / max(float(np.linalg.norm(n)), 1e-12)


def _hexahedron(corners: list[tuple[float, float, float]], material: int, part: int, layer: int = 1) -> list[Face]:
    """A convex block from 8 corners: bottom ring then top ring, both in the same order round the block."""
    c = np.asarray(corners, dtype=np.float64)
    rings = [(0, 1, 2, 3), (4, 5, 6, 7)] + [(i, (i + 1) % 4, (i + 1) % 4 + 4, i + 4) for i in range(4)]
    centre = tuple(float(v) for v in c.mean(axis=0))
    return [_outward(Face(c[list(r)].copy(), material), centre, layer, part) for r in rings]  # type: ignore[arg-type]


def _block(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float, material: int, part: int) -> list[Face]:  # noqa: PLR0917
    return _hexahedron(
        [
            (x0, y0, z0),
            (x1, y0, z0),
            (x1, y1, z0),
            (x0, y1, z0),
            (x0, y0, z1),
            (x1, y0, z1),
            (x1, y1, z1),
            (x0, y1, z1),
        ],
        material,
        part,
    )


def _panel(x: float, y0: float, y1: float, z0: float, z1: float, material: int, part: int) -> Face:  # noqa: PLR0917
    """A flat rectangle on the side plane x = const (windows on a bus or a cab), layer 2."""
    return Face(np.array([(x, y0, z0), (x, y1, z0), (x, y1, z1), (x, y0, z1)]), material, 2, part)


def _end_panel(y: float, x0: float, x1: float, z0: float, z1: float, material: int, part: int) -> Face:  # noqa: PLR0917
    """A flat rectangle on the end plane y = const (windscreens, lights, plates), layer 2."""
    return Face(np.array([(x0, y, z0), (x1, y, z0), (x1, y, z1), (x0, y, z1)]), material, 2, part)


def _wheels(axles: tuple[float, ...], half_track: float, radius: float, width: float, part: int) -> list[Face]:
    faces: list[Face] = []
    for wy in axles:
        for sx in (-1.0, 1.0):
            x0, x1 = sorted((sx * (half_track - width), sx * half_track))
            faces += [
                Face(f.points, f.material, 0, part)
                for f in _block(x0, x1, wy - radius, wy + radius, 0.0, 2 * radius, TYRE, part)
            ]
    return faces


def _oriented(face: Face, centre: tuple[float, float, float]) -> Face:
    """Wind a detail panel outwards from its block's centre, keeping layer and part."""
    return _outward(face, centre, face.layer, face.part)


def bus_mesh() -> list[Face]:
    """A city bus: one tall box, a band of side windows, a windscreen, a light roof."""
    hl, hw, top = 5.5, 1.25, 3.1
    centre = (0.0, 0.0, top / 2)
    faces = _block(-hw, hw, -hl, hl, 0.35, top, BODY, 0)
    faces += [
        Face(f.points, ROOF, 2, 0) for f in _block(-hw + 0.15, hw - 0.15, -hl + 0.3, hl - 0.3, top, top + 0.12, 0, 0)
    ]
    details: list[Face] = []
    for sx in (-1.0, 1.0):
        x = sx * (hw + 0.01)
        details += [_panel(x, y0, y0 + 1.55, 1.35, 2.55, GLASS, 0) for y0 in np.arange(-hl + 0.4, hl - 2.0, 1.7)]
        details.append(_panel(x, hl - 1.6, hl - 0.5, 0.45, 2.55, GLASS, 0))  # front door
    fy, ry = hl + 0.01, -hl - 0.01
    details.append(_end_panel(fy, -hw + 0.1, hw - 0.1, 1.15, 2.85, GLASS, 0))
    details.append(_end_panel(ry, -hw + 0.25, hw - 0.25, 1.95, 2.8, GLASS, 0))
    for sx in (-1.0, 1.0):
        x0, x1 = sorted((sx * (hw - 0.1), sx * (hw - 0.45)))
        details.append(_end_panel(fy + 0.01, x0, x1, 0.55, 0.75, HEADLIGHT, 0))
        details.append(_end_panel(ry - 0.01, x0, x1, 0.7, 1.0, TAILLIGHT, 0))
    details.append(_end_panel(fy + 0.01, -0.26, 0.26, 0.4, 0.52, PLATE, 0))
    details.append(_end_panel(ry - 0.01, -0.26, 0.26, 0.45, 0.57, PLATE, 0))
    faces += [_oriented(f, centre) for f in details]
    return _wheels((hl - 1.9, -hl + 2.3), hw - 0.02, 0.5, 0.3, 0) + faces


def truck_mesh() -> list[Face]:
    """A light box truck: a cab with a windscreen, a separate cargo box behind it, a dark chassis."""
    hl, hw = 3.5, 1.15
    cab_back, cab_top = 1.95, 2.6
    faces: list[Face] = []
    cab = _block(-hw, hw, cab_back, hl, 0.45, cab_top, BODY, 1)
    cab_centre = (0.0, (cab_back + hl) / 2, (0.45 + cab_top) / 2)
    details = [_end_panel(hl + 0.01, -hw + 0.12, hw - 0.12, 1.45, 2.4, GLASS, 1)]
    for sx in (-1.0, 1.0):
        details.append(_panel(sx * (hw + 0.01), cab_back + 0.25, hl - 0.2, 1.45, 2.35, GLASS, 1))
        x0, x1 = sorted((sx * (hw - 0.08), sx * (hw - 0.4)))
        details.append(_end_panel(hl + 0.02, x0, x1, 0.6, 0.78, HEADLIGHT, 1))
    details.append(_end_panel(hl + 0.02, -0.26, 0.26, 0.45, 0.56, PLATE, 1))
    faces += cab + [_oriented(f, cab_centre) for f in details]
    cargo_hw = hw + 0.08
    faces += [Face(f.points, ROOF, 1, 2) for f in _block(-cargo_hw, cargo_hw, -hl, cab_back - 0.08, 0.95, 3.2, 0, 2)]
    cargo_centre = (0.0, (-hl + cab_back) / 2, 2.1)
    rear = [
        _end_panel(-hl - 0.01, x0, x1, 0.6, 0.9, TAILLIGHT, 2)
        for x0, x1 in ((-cargo_hw, -cargo_hw + 0.3), (cargo_hw - 0.3, cargo_hw))
    ]
    rear.append(_end_panel(-hl - 0.01, -0.26, 0.26, 0.62, 0.74, PLATE, 2))
    faces += [_oriented(f, cargo_centre) for f in rear]
    faces += [Face(f.points, TRIM, 1, 0) for f in _block(-hw + 0.2, hw - 0.2, -hl + 0.2, hl - 0.3, 0.45, 0.95, 0, 0)]
    return _wheels((hl - 0.85, -hl + 1.1, -hl + 2.1), hw - 0.02, 0.45, 0.3, 0) + faces


def motorbike_mesh() -> list[Face]:
    """A scooter with its rider, the most common vehicle on Vietnamese roads, seen from a pole."""
    faces = _wheels((0.62, -0.62), 0.06, 0.3, 0.12, 0)
    faces += _block(-0.17, 0.17, -0.75, 0.5, 0.3, 0.62, BODY, 0)
    faces += [Face(f.points, TRIM, 1, 0) for f in _block(-0.15, 0.15, -0.7, -0.05, 0.62, 0.76, 0, 0)]
    faces += _hexahedron(  # front shield, leaning back
        [
            (-0.22, 0.45, 0.35),
            (0.22, 0.45, 0.35),
            (0.22, 0.75, 0.35),
            (-0.22, 0.75, 0.35),
            (-0.2, 0.45, 1.0),
            (0.2, 0.45, 1.0),
            (0.2, 0.6, 1.0),
            (-0.2, 0.6, 1.0),
        ],
        BODY,
        1,
    )
    faces += [Face(f.points, TRIM, 1, 1) for f in _block(-0.38, 0.38, 0.44, 0.52, 0.98, 1.04, 0, 1)]
    faces.append(_oriented(_end_panel(0.76, -0.08, 0.08, 0.75, 0.88, HEADLIGHT, 1), (0.0, 0.6, 0.7)))
    faces.append(_oriented(_end_panel(-0.76, -0.1, 0.1, 0.55, 0.62, TAILLIGHT, 0), (0.0, 0.0, 0.5)))
    for sx in (-1.0, 1.0):  # thighs, then forearms reaching for the handlebar
        xa, xb = sorted((sx * 0.05, sx * 0.24))
        faces += [Face(f.points, TRIM, 1, 2 if sx < 0 else 3) for f in _block(xa, xb, -0.35, 0.15, 0.72, 0.9, 0, 0)]
        x_sh, x_hand = sx * 0.2, sx * 0.34
        faces += _hexahedron(
            [
                (x_sh - 0.05, -0.22, 1.3),
                (x_sh + 0.05, -0.22, 1.3),
                (x_hand + 0.05, 0.47, 1.0),
                (x_hand - 0.05, 0.47, 1.0),
                (x_sh - 0.05, -0.22, 1.4),
                (x_sh + 0.05, -0.22, 1.4),
                (x_hand + 0.05, 0.47, 1.08),
                (x_hand - 0.05, 0.47, 1.08),
            ],
            ACCENT,
            4 if sx < 0 else 5,
        )
    faces += _hexahedron(  # torso, leaning forward
        [
            (-0.22, -0.45, 0.88),
            (0.22, -0.45, 0.88),
            (0.22, -0.2, 0.88),
            (-0.22, -0.2, 0.88),
            (-0.21, -0.33, 1.45),
            (0.21, -0.33, 1.45),
            (0.21, -0.08, 1.45),
            (-0.21, -0.08, 1.45),
        ],
        ACCENT,
        6,
    )
    faces += [Face(f.points, SKIN, 1, 7) for f in _block(-0.07, 0.07, -0.26, -0.12, 1.45, 1.52, 0, 7)]
    faces += _hexahedron(  # helmet
        [
            (-0.15, -0.36, 1.5),
            (0.15, -0.36, 1.5),
            (0.15, -0.04, 1.5),
            (-0.15, -0.04, 1.5),
            (-0.11, -0.32, 1.78),
            (0.11, -0.32, 1.78),
            (0.11, -0.1, 1.78),
            (-0.11, -0.1, 1.78),
        ],
        BODY,
        8,
    )
    return faces


VehicleKind = Literal["car", "van", "truck", "bus", "motorbike"]
"""Rendered kinds; each is also its class in the project taxonomy (``event_contract.VEHICLE_CLASSES``)."""
VEHICLE_KINDS: tuple[VehicleKind, ...] = get_args(VehicleKind)

VAN_SHAPE = VehicleShape(
    length=5.0, width=1.95, belt=1.1, roof=2.05, hood_end=1.75, roof_front=1.25, roof_back=-2.0, trunk_start=-2.2
)


@functools.cache
def vehicle_mesh(kind: VehicleKind) -> tuple[Face, ...]:
    """The mesh of one kind (built once; meshes are immutable)."""
    if kind == "car":
        return tuple(car_mesh(VehicleShape()))
    if kind == "van":
        return tuple(car_mesh(VAN_SHAPE))
    if kind == "truck":
        return tuple(truck_mesh())
    if kind == "bus":
        return tuple(bus_mesh())
    return tuple(motorbike_mesh())


@functools.cache
def vehicle_length_m(kind: VehicleKind) -> float:
    """Bumper to bumper, from the mesh itself."""
    ys = np.concatenate([f.points[:, 1] for f in vehicle_mesh(kind)])
    return float(ys.max() - ys.min())


@dataclass(frozen=True, slots=True)
class MeshArrays:
    """A mesh as flat arrays, for rasterising many frames without per-face Python work."""

    points: Float64Array
    """(P, 3) every face's vertices, face after face."""
    starts: npt.NDArray[np.intp]
    """(F + 1,) face i owns points[starts[i]:starts[i + 1]]."""
    normals: Float64Array
    centroids: Float64Array
    materials: npt.NDArray[np.intp]
    layers: npt.NDArray[np.intp]
    parts: npt.NDArray[np.intp]
    part_centres: Float64Array
    """(max part + 1, 3) mean vertex of each part."""
    half_width: float
    half_length: float


@functools.cache
def mesh_arrays(kind: VehicleKind) -> MeshArrays:
    faces = vehicle_mesh(kind)
    points = np.concatenate([f.points for f in faces])
    starts = np.cumsum([0, *(len(f.points) for f in faces)]).astype(np.intp)
    parts = np.array([f.part for f in faces], dtype=np.intp)
    part_centres = np.zeros((int(parts.max()) + 1, 3))
    for part in np.unique(parts):
        part_centres[part] = np.concatenate([f.points for f in faces if f.part == part]).mean(axis=0)
    return MeshArrays(
        points=points,
        starts=starts,
        normals=np.array([normal(f.points) for f in faces]),
        centroids=np.array([f.points.mean(axis=0) for f in faces]),
        materials=np.array([f.material for f in faces], dtype=np.intp),
        layers=np.array([f.layer for f in faces], dtype=np.intp),
        parts=parts,
        part_centres=part_centres,
        half_width=float(np.abs(points[:, 0]).max()),
        half_length=float(np.abs(points[:, 1]).max()),
    )
