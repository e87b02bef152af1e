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

    A detector may keep state between frames: the ``motion`` backend's background
    model is one camera's history. So an instance serves ONE camera, its frames in
    order, from one thread, and ``build_detector`` is called once per camera. The
    stateless ONNX backends may instead be shared by several cameras through
    ``detectors.batching.BatchingDetector``, which gives each camera its own client.
    """

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections: ...
