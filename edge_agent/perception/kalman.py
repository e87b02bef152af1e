"""Constant-velocity Kalman filter over boxes, batched over tracks, with a real time step.

State per track: ``(cx, cy, w, h, vcx, vcy, vw, vh)`` in pixels and pixels per SECOND,
so a prediction over a dropped frame (a longer ``dt``) moves the box as far as the
object really went. Width and height are filtered separately (not aspect + height as
in the original ByteTrack): vehicles turn and change aspect, pedestrians do not.

Noise follows ByteTrack/BoT-SORT: every standard deviation is a fraction of the box
size, so a far (small) vehicle and a near (large) one are equally trusted. The process
noise is given per second and scaled by ``dt`` (white-noise random walk), so the
filter behaves the same at 5 fps and at 30 fps.

All functions are pure: they take arrays and return new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

STATE_DIM = 8
MEASUREMENT_DIM = 4
_MIN_SIZE = 1e-3
"""Smallest width/height a state may predict, so noise scaled by size never vanishes."""


@dataclass(frozen=True, slots=True)
class KalmanNoise:
    """Standard deviations as fractions of the box size (see module docstring)."""

    measurement: float = 0.05
    """Detector box noise, per measurement."""
    process_position: float = 0.25
    """Random walk of the position per sqrt(second)."""
    process_velocity: float = 0.5
    """Random walk of the velocity (box sizes per second) per sqrt(second)."""
    initial_velocity: float = 2.0
    """Uncertainty of a new track's velocity (box sizes per second): unknown, so wide."""


def xyxy_to_cxcywh(boxes: npt.NDArray[np.floating]) -> Array:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + w / 2, b[:, 1] + h / 2, w, h], axis=1)


def cxcywh_to_xyxy(boxes: Array) -> Array:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half_w = np.maximum(b[:, 2], _MIN_SIZE) / 2
    half_h = np.maximum(b[:, 3], _MIN_SIZE) / 2
    return np.stack([b[:, 0] - half_w, b[:, 1] - half_h, b[:, 0] + half_w, b[:, 1] + half_h], axis=1)


def _size_scale(means: Array) -> Array:
    """(n, 4): the box size each of cx, cy, w, h is measured against."""
    w = np.maximum(means[:, 2], _MIN_SIZE)
    h = np.maximum(means[:, 3], _MIN_SIZE)
    return np.stack([w, h, w, h], axis=1)


def initiate(measurements: Array, noise: KalmanNoise) -> tuple[Array, Array]:
    """New states from (n, 4) cxcywh measurements: zero velocity, wide velocity uncertainty."""
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
    means = np.concatenate([z, np.zeros_like(z)], axis=1)
    scale = _size_scale(means)
    std = np.concatenate([2 * noise.measurement * scale, noise.initial_velocity * scale], axis=1)
    covs = np.zeros((len(z), STATE_DIM, STATE_DIM))
    idx = np.arange(STATE_DIM)
    covs[:, idx, idx] = std**2
    return means, covs


def predict(means: Array, covs: Array, dt: float, noise: KalmanNoise) -> tuple[Array, Array]:
    """States ``dt`` seconds later. ``dt`` may vary between calls (dropped frames)."""
    if dt < 0:
        raise ValueError(f"Kalman predict needs dt >= 0, got {dt}")
    if len(means) == 0 or dt == 0:
        return means.copy(), covs.copy()
    transition = np.eye(STATE_DIM)
    transition[np.arange(MEASUREMENT_DIM), np.arange(MEASUREMENT_DIM) + MEASUREMENT_DIM] = dt
    new_means = means @ transition.T
    scale = _size_scale(means)
    variance = np.concatenate([(noise.process_position * scale) ** 2, (noise.process_velocity * scale) ** 2], axis=1)
    process = np.zeros_like(covs)
    idx = np.arange(STATE_DIM)
    process[:, idx, idx] = variance * dt
    new_covs = transition @ covs @ transition.T + process
    return new_means, new_covs


def update(means: Array, covs: Array, measurements: Array, noise: KalmanNoise) -> tuple[Array, Array]:
    """Correct (n,) states with (n, 4) cxcywh measurements, one per state."""
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
    if len(z) != len(means):
        raise ValueError(f"{len(z)} measurements for {len(means)} states")
    if len(z) == 0:
        return means.copy(), covs.copy()
    r_std = noise.measurement * _size_scale(means)
    innovation_cov = covs[:, :MEASUREMENT_DIM, :MEASUREMENT_DIM].copy()
    idx = np.arange(MEASUREMENT_DIM)
    innovation_cov[:, idx, idx] += r_std**2
    # K = P H^T S^-1; S and P are symmetric, so K^T = S^-1 (H P).
    gain = np.linalg.solve(innovation_cov, covs[:, :MEASUREMENT_DIM, :]).transpose(0, 2, 1)
    residual = z - means[:, :MEASUREMENT_DIM]
    new_means = means + np.einsum("nij,nj->ni", gain, residual)
    new_covs = covs - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    # Keep the covariance symmetric against rounding drift over long tracks.
    new_covs = (new_covs + new_covs.transpose(0, 2, 1)) / 2
    return new_means, new_covs
