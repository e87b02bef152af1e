"""Adapter ``flat_json``: a vendor's own JSON, flat or nested, mapped field by field in the sensor config.

Every vendor box names things its own way (``{"ts": 1764126000000, "data": {"pm25": 35}}``); the config
says where the time, the station id and each metric are, and in which unit. A payload that is a JSON
array holds several readings, one object each. A mapped field that is absent or null is simply not
measured in that reading (a probe that is down); a reading with none of its fields is refused.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ioc_common.dead_letter import DeadLetterCode
from ioc_common.sensors.adapters.times import TimeSpec, parse_time
from ioc_common.sensors.adapters.values import BadValueError, at_path, load_json, number_of, show
from ioc_common.sensors.readings import Parsed, PayloadError, PayloadProblem, RawMetric, RawReading, RawValue

MAX_READINGS = 1000
"""Most readings one payload may carry (a JSON array); more is refused as a whole, not cut silently."""


@lru_cache(maxsize=4096)
def steps(path: str) -> tuple[str, ...]:
    """A dotted path split into its steps (cached: the same few paths are read for every message)."""
    return tuple(path.split("."))


def _check_path(value: str) -> str:
    if not value or any(not step for step in value.split(".")):
        raise ValueError(f"path {value!r}: dotted field names such as 'data.lvl' (no empty steps)")
    return value


class FieldMap(BaseModel):
    """Where one metric is in the vendor's JSON and its unit there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(max_length=200, description="Dotted path to the value, e.g. 'data.lvl' (list items: 'x.0').")
    unit: str = Field(max_length=16, description="The unit the vendor uses, e.g. cm, ppb, degF (see docs/sensors.md).")

    _path = field_validator("path")(_check_path)


class FlatJsonFormat(TimeSpec):
    """A vendor's JSON mapped by paths (``time_format``/``timezone`` as in TimeSpec)."""

    type: Literal["flat_json"] = Field(default="flat_json", description="Picks this adapter.")
    time_field: str = Field(default="time", max_length=200, description="Dotted path to the reading's time.")
    sensor_id_field: str | None = Field(
        default=None,
        max_length=200,
        description="Dotted path to the station's own id (string or number); null: the topic names the station.",
    )
    fields: dict[RawMetric, FieldMap] = Field(
        min_length=1,
        description="Metric -> where it is and its unit, e.g. {water_level_m: {path: data.lvl, unit: cm}}.",
    )

    @field_validator("time_field", "sensor_id_field")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return value if value is None else _check_path(value)


def parse(fmt: FlatJsonFormat, payload: bytes, received_at: dt.datetime) -> Parsed:
    """One reading per JSON object (the payload itself, or each item of a top-level array)."""
    del received_at
    document = load_json(payload)
    items = document if isinstance(document, list) else [document]
    if not items or len(items) > MAX_READINGS:
        raise PayloadError("bad_shape", f"expected 1 to {MAX_READINGS} readings, got {len(items)}")
    readings: list[RawReading] = []
    problems: list[PayloadProblem] = []
    for index, item in enumerate(items, start=1):
        where = f"item {index}" if isinstance(document, list) else ""
        prefix = f"{where}: " if where else ""
        try:
            reading, bad_values = _reading(fmt, item, where)
        except BadValueError as problem:
            problems.append(PayloadProblem(problem.code, prefix + problem.reason, _station(fmt, item)))
            continue
        if reading is not None:
            readings.append(reading)
        station = _station(fmt, item)
        problems.extend(PayloadProblem(p.code, prefix + p.reason, station) for p in bad_values)
    return Parsed(tuple(readings), tuple(problems))


def _station(fmt: FlatJsonFormat, item: object) -> str | None:
    if fmt.sensor_id_field is None:
        return None
    value = at_path(item, steps(fmt.sensor_id_field))
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _reading(fmt: FlatJsonFormat, item: object, where: str) -> tuple[RawReading | None, list[BadValueError]]:
    """The reading of one object and its unreadable values (each refused alone, the others still count)."""
    if not isinstance(item, dict):
        raise BadValueError("bad_shape", f"a reading is a JSON object, got {show(item)}")
    station = _station(fmt, item)
    if fmt.sensor_id_field is not None and station is None:
        found = at_path(item, steps(fmt.sensor_id_field))
        code: DeadLetterCode = "bad_shape" if found is None else "wrong_type"
        raise BadValueError(code, f"station id {fmt.sensor_id_field} = {show(found)} is not a string or integer")
    time = parse_time(at_path(item, steps(fmt.time_field)), fmt, fmt.time_field)
    values: dict[RawMetric, RawValue] = {}
    bad: list[BadValueError] = []
    for metric, spec in fmt.fields.items():
        raw = at_path(item, steps(spec.path))
        if raw is None:
            continue
        try:
            values[metric] = RawValue(number_of(raw, metric, spec.path), spec.unit, spec.path)
        except BadValueError as problem:
            bad.append(problem)
    if not values and not bad:
        paths = ", ".join(spec.path for spec in fmt.fields.values())
        raise BadValueError("bad_shape", f"none of the mapped fields ({paths}) is in the payload")
    return (RawReading(time, values, station, where=where) if values else None), bad
