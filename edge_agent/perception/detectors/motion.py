"""Motion backend: background subtraction for fixed cameras whose view no model covers.

Per frame: downscale and blur -> undo automatic exposure against a background reference
(``exposure.py``) -> OpenCV MOG2/KNN foreground with shadows dropped -> morphology,
connected components, fragments merged into one box per vehicle (``blobs.py``) -> boxes
scaled back to the frame, scored, and classed by size.

The detector is STATEFUL: its background model is the camera's history. One instance
serves one camera, frames in order, from one thread (the factory builds one per camera;
it must never sit behind the shared batching detector). It detects whatever moves and
is big enough: it cannot tell a vehicle from a pedestrian or a swaying tree, and a vehicle
that stops long enough fades into the background (``history``). It is the fallback for
views no model was trained for, not a replacement for a model that fits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.blobs import Blobs, find_blobs, size_class_ids
from edge_agent.perception.detectors.exposure import ExposureFit, fit_exposure
from edge_agent.perception.detectors.label_map import CLASS_NAMES
from edge_agent.perception.detectors.motion_config import MotionConfig
from edge_agent.perception.types import Detections

log = logging.getLogger(__name__)

FOREGROUND = 255
"""OpenCV's subtractors mark foreground 255, shadow 127 and background 0."""


@dataclass(frozen=True, slots=True)
class MotionStats:
    frames: int
    """Frames given to ``detect``."""
    warmup_frames: int
    """Frames that only taught the background model (start and after global changes)."""
    global_changes: int
    """Frames with more foreground than ``max_foreground_fraction``: no detections, model re-learnt."""
    exposure_fit_failures: int
    """Frames where no credible exposure fit was found (subtracted uncompensated)."""
    last_gain: float
    """Exposure gain at the frame centre on the last frame (1.0 = same as the background)."""


class MotionDetector:
    """``detect(bgr_image) -> Detections`` of moving blobs, for ONE camera (stateful)."""

    def __init__(
        self,
        config: MotionConfig,
        *,
        score_threshold: float = 0.0,
        max_box_area_fraction: float = 1.0,
        max_detections: int = 1000,
    ) -> None:
        self._config = config
        self._score_threshold = score_threshold
        self._max_box_area_fraction = max_box_area_fraction
        self._max_detections = max_detections
        self._subtractor = self._new_subtractor()
        self._reference: npt.NDArray[np.float32] | None = None
        self._since_reset = 0
        self._frames = 0
        self._warmup = 0
        self._global_changes = 0
        self._fit_failures = 0
        self._last_gain = 1.0
        self._input_shape: tuple[int, int] | None = None
        self._held: npt.NDArray[np.uint32] | None = None
        """Consecutive frames each pixel has been held out of the background update."""

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    @property
    def config(self) -> MotionConfig:
        return self._config

    def stats(self) -> MotionStats:
        return MotionStats(self._frames, self._warmup, self._global_changes, self._fit_failures, self._last_gain)

    def reset(self) -> None:
        """Forget the background (e.g. the camera was moved); the next frames warm up again."""
        self._subtractor = self._new_subtractor()
        self._reference = None
        self._since_reset = 0
        self._held = None

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"motion detector needs a BGR HxWx3 image, got shape {image.shape}")
        height, width = image.shape[:2]
        if self._input_shape != (height, width):
            if self._input_shape is not None:
                log.warning("motion detector: frame size changed %s -> %s; relearning", self._input_shape, image.shape)
                self.reset()
            self._input_shape = (height, width)
        self._frames += 1
        small = self._prepare(image)
        picture = np.clip(self._compensate(small), 0, 255).astype(np.uint8)
        rate = self._learning_rate()
        warming = self._since_reset < self._config.warmup_frames
        self._scale_threshold()
        # Warming up, every pixel learns; afterwards the frame is only tested here and learnt below, where
        # confident blobs can be held out of the update.
        raw = self._subtractor.apply(picture, learningRate=rate if warming else 0.0)
        foreground = np.where(raw == FOREGROUND, np.uint8(255), np.uint8(0))
        changed_share = float(np.count_nonzero(raw)) / raw.size  # foreground and shadow
        grey = np.asarray(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY), dtype=np.float32)
        self._update_reference(grey, raw == 0, rate)
        self._since_reset += 1
        if warming:
            self._warmup += 1
            return Detections.empty(CLASS_NAMES)
        if changed_share > self._config.max_foreground_fraction:
            # The whole scene changed (lights, camera moved): nothing here is a vehicle; learn the new scene.
            self._global_changes += 1
            log.info("motion detector: global change (%.0f%% of the view changed); relearning", 100 * changed_share)
            self._since_reset = 0
            self._reference = None  # the exposure reference is the old scene too
            self._held = None
            return Detections.empty(CLASS_NAMES)
        blobs = find_blobs(foreground, self._config)
        self._learn(picture, blobs, rate)
        return self._to_detections(blobs, foreground.shape, width, height)

    # -- steps -----------------------------------------------------------------------------------

    def _new_subtractor(self) -> cv2.BackgroundSubtractor:
        c = self._config
        if c.subtractor == "mog2":
            mog2 = cv2.createBackgroundSubtractorMOG2(
                history=c.history, varThreshold=c.var_threshold, detectShadows=c.detect_shadows
            )
            mog2.setShadowThreshold(c.shadow_threshold)
            mog2.setBackgroundRatio(c.background_ratio)
            return mog2
        knn = cv2.createBackgroundSubtractorKNN(
            history=c.history, dist2Threshold=c.knn_dist2_threshold, detectShadows=c.detect_shadows
        )
        knn.setShadowThreshold(c.shadow_threshold)
        return knn

    def _learning_rate(self) -> float:
        """1/(frames seen) while warming up, so the young model is an even average of what it saw; then steady.

        Staying at 1/n after warm-up would let anything that stands still for a few frames of a
        young model (a car entering the view) count as background after two or three frames.
        """
        if self._since_reset < self._config.warmup_frames:
            return 1.0 / (self._since_reset + 1)
        return self._config.steady_learning_rate

    def _scale_threshold(self) -> None:
        """Dividing a dark frame by its gain g < 1 amplifies its noise by 1/g: widen the foreground test to match.

        Both thresholds are squared distances, so they scale by 1/g^2 (never tighter than configured).
        """
        widen = 1.0 / min(1.0, self._last_gain) ** 2
        if isinstance(self._subtractor, cv2.BackgroundSubtractorMOG2):
            self._subtractor.setVarThreshold(self._config.var_threshold * widen)
        elif isinstance(self._subtractor, cv2.BackgroundSubtractorKNN):
            self._subtractor.setDist2Threshold(self._config.knn_dist2_threshold * widen)

    def _prepare(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = image.shape[:2]
        target_w = min(self._config.process_width, width)
        target_h = max(1, round(height * target_w / width))
        small = cv2.resize(image, (target_w, target_h), interpolation=cv2.INTER_AREA)
        if self._config.blur_kernel > 1:
            small = cv2.GaussianBlur(small, (self._config.blur_kernel,) * 2, 0)
        return np.asarray(small, dtype=np.uint8)

    def _compensate(self, small: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        colour = small.astype(np.float32)
        if not self._config.compensate_exposure or self._reference is None:
            return colour
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        fit = fit_exposure(grey, self._reference)
        if fit is None:
            self._fit_failures += 1
            fit = ExposureFit.identity()
        self._last_gain = fit.c0
        return fit.undo(colour)

    def _learn(self, picture: npt.NDArray[np.uint8], blobs: Blobs, rate: float) -> None:
        """Update the background with ``picture``, except under confident blobs held for fewer than hold_frames.

        OpenCV's subtractors learn every pixel of what they are given, so held pixels are given the
        background the model already has there: a stopped vehicle is not learnt, the road around it is.
        """
        held = np.zeros(picture.shape[:2], dtype=bool)
        for x1, y1, x2, y2 in blobs.xyxy[blobs.confidence >= self._config.hold_confidence].astype(np.int64):
            held[y1:y2, x1:x2] = True
        # reset() (also on a frame size change) and a global change forget the counts.
        before = self._held if self._held is not None else 0
        self._held = np.where(held, before + 1, 0).astype(np.uint32)
        held &= self._held <= self._config.hold_frames
        if held.any():
            background = np.asarray(self._subtractor.getBackgroundImage(), dtype=np.uint8)
            picture = np.where(held[:, :, None], background, picture)
        self._subtractor.apply(picture, learningRate=rate)

    def _update_reference(self, grey: npt.NDArray[np.float32], background: npt.NDArray[np.bool_], rate: float) -> None:
        """Running mean of the compensated background, the target of the next exposure fit."""
        if self._reference is None:
            self._reference = grey.astype(np.float32)
            return
        # Only pixels the model calls background: a passing car must not brighten the reference.
        blend = np.where(background, np.float32(rate), np.float32(0.0))
        self._reference += blend * (grey - self._reference)

    def _to_detections(self, blobs: Blobs, mask_shape: tuple[int, ...], width: int, height: int) -> Detections:
        if len(blobs) == 0:
            return Detections.empty(CLASS_NAMES)
        mask_h, mask_w = mask_shape[:2]
        scale = np.array([width / mask_w, height / mask_h] * 2, dtype=np.float32)
        boxes = np.clip(blobs.xyxy * scale, 0, np.array([width, height, width, height], dtype=np.float32))
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / float(width * height)
        keep = (area <= self._max_box_area_fraction) & (blobs.confidence >= self._score_threshold)
        order = np.argsort(-blobs.confidence[keep], kind="stable")[: self._max_detections]
        boxes, confidence, area = boxes[keep][order], blobs.confidence[keep][order], area[keep][order]
        return Detections(boxes, confidence, size_class_ids(area, self._config), CLASS_NAMES)
