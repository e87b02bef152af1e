"""What an adapter makes of a payload: raw readings (values still in the station's units) and problems.

Adapters only parse; the normaliser then converts units, calibrates, checks ranges and times, and
builds contract events. Keeping the two apart lets each vendor adapter stay a small parser that is
tested on bytes alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from event_contract.sensors import SensorKind, SensorMetric
from ioc_common.dead_letter import DeadLetterCode

RawMetric = Literal[SensorMetric, "distance"]
"""A contract metric, or ``distance``: what ultrasonic/radar water-level sensors measure (sensor down to the
water). The normaliser turns a distance into ``water_level_m`` with the sensor's ``sensor_elevation_m``."""

RAW_METRICS: frozenset[str] = frozenset(get_args(SensorMetric)) | {"distance"}


@dataclass(frozen=True, slots=True)
class RawValue:
    """One measured value as the payload gave it."""

    value: float
    unit: str
    field: str
    """Where it was in the payload (``level``, ``data.lvl``, ``column 3``), named in rejection reasons."""


@dataclass(frozen=True, slots=True)
class RawReading:
    """What one station measured at one time, before units, calibration and range checks."""

    time: dt.datetime
    """Aware (adapters resolve naive times with the configured time zone)."""
    values: Mapping[RawMetric, RawValue]
    sensor_id: str | None = None
    """The station's name for itself when the payload carries one; None: the topic says who it is."""
    kind: SensorKind | None = None
    """The kind the payload declares (ioc_v1 schemas do); None: the sensor's configured kind."""
    alert_levels_m: tuple[float, float, float] | None = None
    """Báo động 1/2/3 in metres when the station sends its own alert levels."""
    where: str = ""
    """Which part of the payload (``line 2``, ``record 3``), for reasons; empty for one-reading payloads."""


@dataclass(frozen=True, slots=True)
class PayloadProblem:
    """One part of a payload that could not be read; the rest of the payload still counts."""

    code: DeadLetterCode
    reason: str
    sensor_id: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """An adapter's answer: readings and problems (a payload may yield both)."""

    readings: tuple[RawReading, ...]
    problems: tuple[PayloadProblem, ...] = ()


class PayloadError(Exception):
    """The payload as a whole cannot be read (not JSON, not CSV, wrong top-level shape)."""

    def __init__(self, code: DeadLetterCode, reason: str) -> None:
        super().__init__(reason)
        self.code: DeadLetterCode = code
        self.reason = reason
