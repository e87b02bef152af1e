"""The detector interface every backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.perception.types import Detections


class Detector(Protocol):
    """Turns one BGR image into detections labelled with the vehicle taxonomy.

    Backends map their model's own labels onto ``event_contract.VEHICLE_CLASSES``
    (through the label map in config) and drop labels that map to nothing, so
    every stage after the detector sees one vocabulary.
    """

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections: ...
