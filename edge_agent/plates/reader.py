"""The plate reader seen by the pipeline: ``read(vehicle_crop) -> PlateRead | None``, whatever the backend.

``read`` is thread-safe for every backend here: the readers keep no per-call state, ONNX Runtime
sessions may run concurrently, and the counters take a lock. Part F calls it from a worker thread.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.plates.config import PlateReadingConfig
from edge_agent.plates.onnx_backend import OnnxPlateReader
from edge_agent.plates.ppocr_backend import PpocrPlateReader
from edge_agent.plates.result import PlateInputError, PlateRead, ReaderCounters

__all__ = ["PlateInputError", "PlateRead", "PlateReader", "ReaderCounters", "build_plate_reader"]


class PlateReader(Protocol):
    def read(self, vehicle_crop: npt.NDArray[np.uint8]) -> PlateRead | None:
        """The plate on a BGR crop of one vehicle, or None when no plate is read confidently enough."""
        ...


def build_plate_reader(config: PlateReadingConfig) -> PlateReader:
    """The configured backend, models loaded (a missing model file fails here, with how to install it)."""
    if config.backend == "onnx":
        return OnnxPlateReader(config)
    return PpocrPlateReader(config)
