"""A pinhole camera over a flat road: world metres -> image pixels.

World axes: x across the road (right), y along the road (away from the camera),
z up. The camera sits above x=0 behind the visible stretch, pitched down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Camera:
    width: int
    height: int
    focal_px: float
    height_m: float
    """Camera height above the road."""
    pitch_deg: float
    """Downward tilt of the optical axis from horizontal."""

    def _rotation(self) -> Float64Array:
        # Camera frame: X right, Y down, Z forward. World: x right, y forward, z up.
        p = np.deg2rad(self.pitch_deg)
        forward = np.array([0.0, np.cos(p), -np.sin(p)])
        right = np.array([1.0, 0.0, 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def to_camera(self, points: Float64Array) -> Float64Array:
        """World points (n,3) -> camera coordinates (n,3); Z is the depth along the optical axis."""
        centre = np.array([0.0, 0.0, self.height_m])
        cam: Float64Array = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - centre) @ self._rotation().T
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
        t = -r @ np.array([0.0, 0.0, self.height_m])
        homography: Float64Array = k @ np.column_stack([r[:, 0], r[:, 1], t])
        return homography

    def ground_y_at_row(self, v: float) -> float:
        """Distance along the road (y, on x=0) that appears at image row ``v``."""
        inv = np.linalg.inv(self.ground_homography())
        g = inv @ np.array([self.width / 2, v, 1.0])
        return float(g[1] / g[2])
