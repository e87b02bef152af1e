"""One vehicle taxonomy for Vietnamese roads; every detector's labels map onto it."""

from __future__ import annotations

from typing import Literal, get_args

VehicleClass = Literal["motorbike", "bicycle", "car", "van", "bus", "truck", "three_wheeler", "other_vehicle"]
"""Motorbikes dominate Vietnamese traffic, so they are a class of their own, never "other"."""

VEHICLE_CLASSES: tuple[VehicleClass, ...] = get_args(VehicleClass)
