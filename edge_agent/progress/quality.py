"""Frame quality: is this picture good enough to judge construction progress from?

Every measure is made invariant to what a camera does all day (exposure gain, colour cast, haze offset) or is
taken RELATIVE to the camera's own reference images, so one threshold fits every camera:

- brightness: mean luminance 0..1 (dark = night, dusk; washed out = sun in the lens).
- sharpness: the share of the reference's fine detail found in the frame once aligned to it
  (``photometry.sharpness``): 1 = as sharp, rain on the lens ~0.05; noise and rain streaks cannot fake it.
- fog: the dark-channel prior. Haze adds airlight, which lifts the darkest channel of every patch towards the
  mean and flattens contrast; fog averages the rise of mean(dark channel)/mean(luminance) towards 1 and the loss
  of luminance contrast (std/mean), both against the references: 0 clear, 1 white-out.
- occlusion: share of the package regions' cells hidden (detected objects or cells unlike every reference and
  their own recent look), measured by the appearance model and passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.progress.config import QualityConfig

REASONS = ("dark", "washed_out", "blurred", "fogged", "occluded", "low_score")
"""Every reason a frame may be rejected for, in the order they are checked."""
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class FrameQuality:
    """Quality of one sampled frame; ``reasons`` empty means the frame is used."""

    score: float
    brightness: float
    sharpness: float
    fog: float
    occlusion: float
    reasons: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, slots=True)
class ImageMeasures:
    """Per-image measures; sharpness is already relative to the reference (photometry.sharpness)."""

    brightness: float
    sharpness: float
    dark_ratio: float  # mean(dark channel) / mean(luminance)
    contrast: float  # std(luminance) / mean(luminance)


def measure(bgr: npt.NDArray[np.uint8], sharpness: float) -> ImageMeasures:
    """Measures of a working-size BGR frame (a few ms at 640x360)."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    mean = float(gray.mean())
    # Dark channel on a half-size copy: min over colours, then a 7x7 min filter (15 px at full working size).
    small = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2), interpolation=cv2.INTER_AREA)
    dark = cv2.erode(small.min(axis=2), np.ones((7, 7), np.uint8)).astype(np.float32) / 255.0
    return ImageMeasures(
        brightness=mean,
        sharpness=sharpness,
        dark_ratio=float(dark.mean()) / (mean + _EPS),
        contrast=float(gray.std()) / (mean + _EPS),
    )


@dataclass(frozen=True, slots=True)
class QualityReference:
    """The references' haze measures every frame is compared with (medians over the reference images)."""

    dark_ratio: float
    contrast: float

    @classmethod
    def from_measures(cls, measures: Sequence[ImageMeasures]) -> QualityReference:
        if not measures:
            raise ValueError("quality needs at least one reference image")
        return cls(
            dark_ratio=min(float(np.median([m.dark_ratio for m in measures])), 0.95),
            contrast=max(float(np.median([m.contrast for m in measures])), _EPS),
        )


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def fog_score(measures: ImageMeasures, reference: QualityReference) -> float:
    """0 clear .. 1 white-out, from the dark-channel rise and the contrast loss against the references."""
    dark_rise = (measures.dark_ratio - reference.dark_ratio) / (1.0 - reference.dark_ratio)
    contrast_loss = 1.0 - measures.contrast / reference.contrast
    return _clip01(0.5 * (_clip01(dark_rise) + _clip01(contrast_loss)))


def judge(
    measures: ImageMeasures, reference: QualityReference, occlusion: float, config: QualityConfig
) -> FrameQuality:
    """Combine the measures into a score and the list of gates the frame fails."""
    sharpness = measures.sharpness
    fog = fog_score(measures, reference)
    brightness = measures.brightness
    occlusion = _clip01(occlusion)
    reasons: list[str] = []
    if brightness < config.min_brightness:
        reasons.append("dark")
    if brightness > config.max_brightness:
        reasons.append("washed_out")
    if sharpness < config.min_sharpness:
        reasons.append("blurred")
    if fog > config.max_fog:
        reasons.append("fogged")
    if occlusion > config.max_occlusion:
        reasons.append("occluded")
    # Each term is 1 for a perfect frame and falls towards 0 as the frame degrades; the geometric mean keeps the
    # score a usable weight for the day's median (a slightly hazy frame counts a little less, not nothing).
    light = _clip01(brightness / max(config.min_brightness, _EPS)) * _clip01(
        (1.0 - brightness) / max(1.0 - config.max_brightness, _EPS)
    )
    terms = (light, _clip01(sharpness), 1.0 - fog, 1.0 - occlusion)
    score = float(np.prod(terms)) ** (1.0 / len(terms))
    if not reasons and score < config.min_score:
        reasons.append("low_score")
    return FrameQuality(
        score=score,
        brightness=brightness,
        sharpness=sharpness if math.isfinite(sharpness) else 0.0,
        fog=fog,
        occlusion=occlusion,
        reasons=tuple(reasons),
    )
