"""A pinhole camera over a flat road: world metres -> image pixels.

World axes: x across the road (right), y along the road (away from the camera),
z up. The camera stands on a pole at (x_m, 0, height_m), pitched down and turned
(yaw) towards the road; no roll, so the horizon is level.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]


@functools.lru_cache(maxsize=16)
def _rotation(pitch_deg: float, yaw_deg: float) -> Float64Array:
    """World -> camera rotation. Camera frame: X right, Y down, Z forward; world: x right, y forward, z up."""
    p, w = np.deg2rad(pitch_deg), np.deg2rad(yaw_deg)
    forward = np.array([np.sin(w) * np.cos(p), np.cos(w) * np.cos(p), -np.sin(p)])
    right = np.array([np.cos(w), -np.sin(w), 0.0])
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    rotation.flags.writeable = False  # shared between calls
    return rotation


@dataclass(frozen=True, slots=True)
class Camera:
    width: int
    height: int
    focal_px: float
    height_m: float
    """Camera height above the road."""
    pitch_deg: float
    """Downward tilt of the optical axis from horizontal."""
    x_m: float = 0.0
    """Where the pole stands across the road (0: above the centre line)."""
    yaw_deg: float = 0.0
    """Turn of the optical axis from straight down the road; positive looks to the right."""

    @property
    def centre(self) -> Float64Array:
        return np.array([self.x_m, 0.0, self.height_m])

    def _rotation(self) -> Float64Array:
        return _rotation(self.pitch_deg, self.yaw_deg)

    def to_camera(self, points: Float64Array) -> Float64Array:
        """World points (n,3) -> camera coordinates (n,3); Z is the depth along the optical axis."""
        cam: Float64Array = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.centre) @ self._rotation().T
        return cam

    def project(self, points: Float64Array) -> Float64Array:
        """World points (n,3) -> pixel coordinates (n,2); points must be in front of the camera."""
        cam = self.to_camera(points)
        if np.any(cam[:, 2] <= 0.1):
            raise ValueError("point behind the camera")
        u = self.focal_px * cam[:, 0] / cam[:, 2] + self.width / 2
        v = self.focal_px * cam[:, 1] / cam[:, 2] + self.height / 2
        return np.stack([u, v], axis=1)

    def ground_homography(self) -> Float64Array:
        """3x3 matrix taking ground-plane (x, y, 1) to homogeneous pixels."""
        r = self._rotation()
        k = np.array([[self.focal_px, 0, self.width / 2], [0, self.focal_px, self.height / 2], [0, 0, 1.0]])
        # For z=0: cam = R @ ([x, y, 0] - c) = R[:, :2] @ [x, y] - R @ c.
        t = -r @ self.centre
        homography: Float64Array = k @ np.column_stack([r[:, 0], r[:, 1], t])
        return homography

    def ground_point(self, u: float, v: float) -> tuple[float, float]:
        """The road point (x, y) seen at pixel (u, v); the pixel must be below the horizon."""
        g = np.linalg.inv(self.ground_homography()) @ np.array([u, v, 1.0])
        return float(g[0] / g[2]), float(g[1] / g[2])

    def ground_y_at_row(self, v: float) -> float:
        """Distance along the road (y) seen at image row ``v`` in the middle column."""
        return self.ground_point(self.width / 2, v)[1]

    def column_of_road_x(self, x_m: float, v: float) -> float:
        """Image column where the road line x = ``x_m`` crosses image row ``v``."""
        us = np.linspace(-self.width, 2 * self.width, 3 * self.width + 1)
        g = np.linalg.inv(self.ground_homography()) @ np.stack([us, np.full_like(us, v), np.ones_like(us)])
        xs = g[0] / g[2]
        order = np.argsort(xs)
        return float(np.interp(x_m, xs[order], us[order]))
