"""Plate colour from the plate's background: white (private), yellow (commercial), blue (state), red (military).

The plate region holds background and characters; Otsu's threshold on brightness splits them and the
larger part is the background (characters cover well under half a plate). Its median hue and
saturation give the colour. A white plate in low light is grey, not another colour, so saturation
(not brightness) decides white.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from event_contract.traffic import PlateColour

MIN_PIXELS = 24
WHITE_MAX_SATURATION = 70
HUES: tuple[tuple[float, float, PlateColour], ...] = (
    (0, 8, "red"),
    (12, 40, "yellow"),
    (40, 90, "green"),
    (90, 135, "blue"),
    (165, 181, "red"),
)
"""OpenCV hue ranges (0..179) of the plate colours; a hue between them is "other"."""


def plate_colour(plate: npt.NDArray[np.uint8]) -> PlateColour | None:
    """The background colour of a BGR plate crop, or None when the crop is too small or too dark to tell."""
    if plate.ndim != 3 or plate.shape[0] * plate.shape[1] < MIN_PIXELS:
        return None
    hsv = cv2.cvtColor(plate, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    value = hsv[:, 2]
    if float(np.percentile(value, 90)) < 25:
        return None  # too dark: any hue is noise
    threshold, _ = cv2.threshold(value.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = value > threshold
    background = hsv[bright] if bright.sum() * 2 >= len(value) else hsv[~bright]
    hue = float(np.median(background[:, 0]))
    saturation = float(np.median(background[:, 1]))
    if saturation < WHITE_MAX_SATURATION:
        return "white"
    return next((name for low, high, name in HUES if low <= hue < high), "other")
