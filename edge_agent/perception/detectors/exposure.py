"""Undo a camera's automatic exposure against a background reference, robustly.

Fixed traffic cameras adjust exposure and gain on their own: on the top-down sample clip a
white car entering the view darkens the whole asphalt to half its brightness within a
second. A background subtractor then sees every pixel change. Measured on that clip, the
change is close to ``frame = gain(x, y) * background + offset`` with a gain that varies
gently across the picture (vignetting), so each frame is fitted to the reference with

    frame ≈ (c0 + c1 * x + c2 * y) * reference + e0        (x, y in -0.5..0.5)

by least squares on a sparse pixel grid, re-fitted on the pixels that agree (the vehicles
themselves are outliers and drop out), then inverted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_STEP = 4
"""Fit on every 4th pixel in x and y: ~3600 samples at 320x180, plenty for four parameters."""
FIT_ROUNDS = 3
INLIER_SIGMAS = 3.0
MIN_INLIER_SHARE = 0.3
"""Fewer agreeing pixels than this means the scene itself changed, not the exposure."""
GAIN_LIMITS = (0.1, 10.0)

FloatImage = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ExposureFit:
    """``frame ≈ (c0 + c1 x + c2 y) * reference + e0``; ``inlier_share`` of samples agreed with it."""

    c0: float
    c1: float
    c2: float
    e0: float
    inlier_share: float

    @classmethod
    def identity(cls) -> ExposureFit:
        return cls(1.0, 0.0, 0.0, 0.0, 1.0)

    def gain_map(self, height: int, width: int) -> FloatImage:
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
        return (self.c0 + self.c1 * xs[None, :] + self.c2 * ys[:, None]).astype(np.float32)

    def undo(self, image: FloatImage) -> FloatImage:
        """Map ``image`` (HxW or HxWxC, float) to the reference's exposure."""
        gain = self.gain_map(image.shape[0], image.shape[1])
        if image.ndim == 3:
            gain = gain[:, :, None]
        return ((image - self.e0) / gain).astype(np.float32)


def fit_exposure(frame: FloatImage, reference: FloatImage) -> ExposureFit | None:
    """Fit ``frame`` (grey, float) to ``reference`` (grey, float, same shape); None when no fit is credible."""
    if frame.shape != reference.shape or frame.ndim != 2:
        raise ValueError(f"exposure fit needs two grey images of one shape, got {frame.shape} and {reference.shape}")
    height, width = frame.shape
    ys, xs = np.mgrid[0:height:SAMPLE_STEP, 0:width:SAMPLE_STEP]
    f = frame[::SAMPLE_STEP, ::SAMPLE_STEP].ravel().astype(np.float64)
    r = reference[::SAMPLE_STEP, ::SAMPLE_STEP].ravel().astype(np.float64)
    x = ((xs.ravel() + 0.5) / width - 0.5).astype(np.float64)
    y = ((ys.ravel() + 0.5) / height - 0.5).astype(np.float64)
    design = np.stack([r, r * x, r * y, np.ones_like(r)], axis=1)
    # Start from the median brightness ratio: the road is most of the view, so the median ignores vehicles.
    ratio = float(np.median(f / np.maximum(r, 1.0)))
    residual = f - ratio * r
    inliers = np.abs(residual - np.median(residual)) <= INLIER_SIGMAS * _robust_sigma(residual)
    params = np.array([ratio, 0.0, 0.0, 0.0])
    for _ in range(FIT_ROUNDS):
        if inliers.sum() < design.shape[1] * 10:
            return None
        params, *_ = np.linalg.lstsq(design[inliers], f[inliers], rcond=None)
        residual = f - design @ params
        inliers = np.abs(residual) <= INLIER_SIGMAS * _robust_sigma(residual[inliers])
    share = float(inliers.mean())
    c0, c1, c2, e0 = (float(v) for v in params)
    corners = [c0 + sx * c1 / 2 + sy * c2 / 2 for sx in (-1, 1) for sy in (-1, 1)]
    if share < MIN_INLIER_SHARE or not all(GAIN_LIMITS[0] <= g <= GAIN_LIMITS[1] for g in corners):
        return None
    return ExposureFit(c0, c1, c2, e0, share)


def _robust_sigma(values: npt.NDArray[np.float64]) -> float:
    """Standard deviation estimated from the median absolute deviation, floored at half a grey level."""
    if values.size == 0:
        return 0.5
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) + 0.5
