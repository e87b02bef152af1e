"""How good a vehicle crop is for reading its plate: sharpness times size, in 0..1.

Sharpness is the variance of the Laplacian of the grey image (a blurred or dark crop has little
edge energy); size is the crop's geometric-mean side against the size at which plates read well.
Both saturate, so among good frames the vote weights stay comparable.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

SHARPNESS_SCALE = 400.0
"""Laplacian variance at which sharpness reaches 1 - 1/e (about 0.63)."""
GOOD_SIDE_PX = 320.0
"""A crop whose geometric-mean side is this many pixels (or more) scores full size."""


def sharpness(crop: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the grey crop (0 for an empty crop)."""
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def crop_quality(crop: npt.NDArray[np.uint8]) -> float:
    """Sharpness x size score in 0..1, for choosing the best frame of a track and weighting its vote."""
    if crop.ndim < 2 or crop.shape[0] < 2 or crop.shape[1] < 2:
        return 0.0
    sharp = 1.0 - math.exp(-sharpness(crop) / SHARPNESS_SCALE)
    size = min(1.0, math.sqrt(crop.shape[0] * crop.shape[1]) / GOOD_SIDE_PX)
    return float(np.clip(sharp * size, 0.0, 1.0))
