"""Adapter ``ioc_v1``: our own documented JSON (``payload_schemas``), one reading per message.

pydantic-core parses and type-checks the bytes in one pass (no intermediate ``json.loads``), which
keeps this, the common case, the cheapest path. Its errors are mapped to dead-letter codes: broken
JSON is ``not_json``, a wrong or missing time ``bad_time``, a value of the wrong type ``wrong_type``,
anything else about the structure ``bad_shape``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from ioc_common.dead_letter import DeadLetterCode
from ioc_common.sensors.adapters.values import show
from ioc_common.sensors.payload_schemas import IOC_V1, IOC_V1_SCHEMAS, EnvironmentV1, ForestFireV1, WaterLevelV1
from ioc_common.sensors.readings import Parsed, PayloadError, RawMetric, RawReading, RawValue


class IocV1Format(BaseModel):
    """Our own payloads (docs/sensors.md): nothing to configure, the ``schema`` field says the kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["ioc_v1"] = Field(default="ioc_v1", description="Picks this adapter.")


def parse(fmt: IocV1Format, payload: bytes, received_at: dt.datetime) -> Parsed:
    """One raw reading from an ioc_v1 payload; raises ``PayloadError`` when it does not fit its schema."""
    del fmt, received_at  # the payload carries its own time
    try:
        model = IOC_V1.validate_json(payload)
    except ValidationError as error:
        raise _payload_error(error) from None
    return Parsed((_reading(model),))


def _reading(model: WaterLevelV1 | ForestFireV1 | EnvironmentV1) -> RawReading:
    values: dict[RawMetric, RawValue] = {}

    def put(metric: RawMetric, value: float | bool | None, unit: str, field: str) -> None:
        if value is not None:
            values[metric] = RawValue(float(value), "bool" if isinstance(value, bool) else unit, field)

    if isinstance(model, WaterLevelV1):
        put("water_level_m", model.level, model.unit, "level")
        put("distance", model.distance, model.unit, "distance")
        put("temperature_c", model.temperature_c, "degC", "temperature_c")
        return RawReading(model.time, values, model.sensor_id, "water_level", model.alert_levels_m)
    if isinstance(model, ForestFireV1):
        put("smoke", model.smoke, "1", "smoke")
        put("flame", model.flame, "1", "flame")
        put("temperature_c", model.temperature_c, "degC", "temperature_c")
        put("humidity_pct", model.humidity_pct, "%", "humidity_pct")
        put("fire_danger_level", model.fire_danger_level, "level", "fire_danger_level")
        return RawReading(model.time, values, model.sensor_id, "forest_fire")
    for name, concentration in model.pollutants.items():
        put(name, concentration.value, concentration.unit, f"pollutants.{name}")
    put("temperature_c", model.temperature_c, "degC", "temperature_c")
    put("humidity_pct", model.humidity_pct, "%", "humidity_pct")
    put("noise_db", model.noise_dba, "dBA", "noise_dba")
    put("vn_aqi", model.vn_aqi, "index", "vn_aqi")
    return RawReading(model.time, values, model.sensor_id, "environment")


def _payload_error(error: ValidationError) -> PayloadError:
    details = error.errors(include_url=False)
    code = _code(details[0])
    schema = next((str(d["loc"][0]) for d in details if d["loc"] and str(d["loc"][0]) in IOC_V1_SCHEMAS), "ioc_v1")
    shown = "; ".join(_describe(d) for d in details[:3])
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return PayloadError(code, f"{schema}: {shown}{more}")


def _code(detail: ErrorDetails) -> DeadLetterCode:
    kind = detail["type"]
    loc = [str(part) for part in detail["loc"] if str(part) not in IOC_V1_SCHEMAS]
    if kind == "json_invalid":
        return "not_json"
    if loc == ["time"]:
        return "bad_time"
    if loc and (kind.endswith(("_type", "_parsing")) or kind == "finite_number"):
        return "wrong_type"
    return "bad_shape"


def _describe(detail: ErrorDetails) -> str:
    loc = ".".join(str(part) for part in detail["loc"] if str(part) not in IOC_V1_SCHEMAS)
    if detail["type"] == "union_tag_not_found":
        return f"no 'schema' field; expected one of {', '.join(IOC_V1_SCHEMAS)}"
    if detail["type"] == "union_tag_invalid":
        given = detail["input"].get("schema") if isinstance(detail["input"], dict) else None
        return f"schema {show(given)} is not one of {', '.join(IOC_V1_SCHEMAS)}"
    if detail["type"] == "json_invalid":
        return f"payload is not JSON: {detail['msg']}"
    got = "" if isinstance(detail["input"], dict | list | bytes) else f" (got {show(detail['input'])})"
    return f"{loc or 'payload'}: {detail['msg']}{got}"
