"""What every plate reader returns and shares: the reading, input checks, counters, ONNX Runtime settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors.onnx_session import RuntimeSettings
from edge_agent.plates.config import PlateReadingConfig
from event_contract.traffic import PlateColour, PlateLayout

MIN_CROP_SIDE = 16


class PlateInputError(ValueError):
    """The crop given to ``read`` is not a BGR image (the message says what it is instead)."""


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One reading of one crop: the normalised plate text (printed form when ``format_valid``) and how sure."""

    text: str
    confidence: float
    layout: PlateLayout | None
    format_valid: bool
    plate_colour: PlateColour | None
    box_xyxy: tuple[int, int, int, int] | None
    """The plate's box in the crop (pixels)."""
    char_probs: tuple[float, ...] = field(default=(), compare=False)
    """Probability of each letter/digit of the text (separators dropped), for the per-character vote."""


@dataclass(slots=True)
class ReaderCounters:
    """What a reader has done since it started (thread-safe increments)."""

    reads: int = 0
    plates: int = 0
    valid: int = 0
    none: int = 0
    rejected_input: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, result: PlateRead | None) -> None:
        with self._lock:
            self.reads += 1
            if result is None:
                self.none += 1
            else:
                self.plates += 1
                self.valid += int(result.format_valid)

    def reject(self) -> None:
        with self._lock:
            self.rejected_input += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "reads": self.reads,
                "plates": self.plates,
                "valid": self.valid,
                "none": self.none,
                "rejected_input": self.rejected_input,
            }


def check_crop(crop: npt.NDArray[np.uint8], counters: ReaderCounters) -> None:
    """Raise ``PlateInputError`` (counted) unless ``crop`` is an HxWx3 uint8 image of at least 16x16."""
    problem = None
    if not isinstance(crop, np.ndarray):
        problem = f"expected a NumPy array, got {type(crop).__name__}"
    elif crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        problem = f"expected an HxWx3 uint8 BGR image, got shape {crop.shape} dtype {crop.dtype}"
    elif min(crop.shape[:2]) < MIN_CROP_SIDE:
        problem = f"crop {crop.shape[1]}x{crop.shape[0]} is smaller than {MIN_CROP_SIDE}x{MIN_CROP_SIDE} pixels"
    if problem is not None:
        counters.reject()
        raise PlateInputError(problem)


def runtime_settings(config: PlateReadingConfig) -> RuntimeSettings:
    """ONNX Runtime settings of the plate models (no FP16 copies: the PP-OCR files are FP32)."""
    return RuntimeSettings(
        providers=config.providers, device_id=config.device_id, fp16=False, intra_op_threads=config.intra_op_threads
    )
