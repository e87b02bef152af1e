"""Adapter ``senml``: RFC 8428 Sensor Measurement Lists in JSON.

A pack is a JSON array of records. Base fields (``bn`` name, ``bt`` time, ``bu`` unit, ``bv`` value)
carry forward to the following records until another record changes them; a record's name is
``bn + n``, its time ``bt + t`` (a result below 2**28 is relative to now, here the time the message
was received), its unit ``u`` or else ``bu``. The part of the name up to the last ``:`` or ``/`` names
the station (``tram-kim-long:level`` -> station ``tram-kim-long``, measurement ``level``); records
of one station at one time become one reading. A record that cannot be read is refused on its own.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from ioc_common.sensors.adapters.values import BadValueError, load_json, number_of, show
from ioc_common.sensors.readings import (
    RAW_METRICS,
    Parsed,
    PayloadError,
    PayloadProblem,
    RawMetric,
    RawReading,
    RawValue,
)

RELATIVE_LIMIT_S = 2**28
"""RFC 8428 4.5.3: times below this are relative to now (seconds), larger ones are since 1970."""

MAX_RECORDS = 1000
"""Most records in one pack; more is refused as a whole, not cut silently (and not refused record by record)."""

_BASE_FIELDS = ("bn", "bt", "bu", "bv", "bs", "bver")
_VALUE_FIELDS = ("v", "vs", "vb", "vd", "s")


class SenmlFormat(BaseModel):
    """RFC 8428 SenML JSON; which SenML names are which metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["senml"] = Field(default="senml", description="Picks this adapter.")
    names: dict[str, RawMetric] = Field(
        default_factory=dict,
        description="Measurement name (after the station part) -> metric, e.g. {lvl: water_level_m, t: "
        "temperature_c}. A name equal to a metric (water_level_m, pm2_5, ...) needs no entry.",
    )
    ignore: tuple[str, ...] = Field(
        default=(), description="Measurement names to skip without a rejection (e.g. battery, rssi)."
    )
    station_in_name: bool = Field(
        default=True,
        description="true: the name part before the last ':' or '/' names the station (checked against the "
        "sensors of the topic); false: names carry no station, the topic says which sensor it is.",
    )


@dataclass
class _Base:
    name: str = ""
    time: float = 0.0
    unit: str = ""
    value: float = 0.0


@dataclass
class _Group:
    station: str | None
    time: dt.datetime
    where: str
    values: dict[RawMetric, RawValue] = field(default_factory=dict)


def parse(fmt: SenmlFormat, payload: bytes, received_at: dt.datetime) -> Parsed:
    """Readings grouped by (station, time) from a SenML pack; bad records become problems."""
    pack = load_json(payload)
    if not isinstance(pack, list) or not pack:
        raise PayloadError("bad_shape", f"a SenML pack is a non-empty JSON array of records, got {show(pack)}")
    if len(pack) > MAX_RECORDS:
        raise PayloadError("bad_shape", f"a SenML pack of {len(pack)} records is over the limit of {MAX_RECORDS}")
    base = _Base()
    groups: dict[tuple[str | None, dt.datetime], _Group] = {}
    problems: list[PayloadProblem] = []
    for index, record in enumerate(pack, start=1):
        if not isinstance(record, dict):
            problems.append(PayloadProblem("bad_shape", f"SenML record {index} is not an object: {show(record)}"))
            continue
        _update_base(base, record, index)
        where = f"SenML record {index}"
        try:
            found = _record(fmt, base, record, received_at)
            if found is None:
                continue
            station, time, metric, value, unit = found
            group = groups.get((station, time))
            if group is None:
                group = groups[(station, time)] = _Group(station, time, where)
            if metric in group.values:
                raise BadValueError("bad_shape", f"{metric} of {station or 'the sensor'} at {time.isoformat()} repeats")
            group.values[metric] = RawValue(value, unit, where)
        except BadValueError as problem:
            problems.append(PayloadProblem(problem.code, f"{where}: {problem.reason}", _station_of(fmt, base, record)))
    readings = tuple(RawReading(g.time, g.values, g.station, where=g.where) for g in groups.values() if g.values)
    return Parsed(readings, tuple(problems))


def _update_base(base: _Base, record: dict[str, object], index: int) -> None:
    """Carry base fields forward; a broken base field spoils every later record, so the pack is refused."""
    for key in _BASE_FIELDS:
        if key not in record:
            continue
        value = record[key]
        if key in ("bn", "bu"):
            if not isinstance(value, str):
                raise PayloadError("wrong_type", f"SenML record {index}: {key} = {show(value)} is not a string")
            if key == "bn":
                base.name = value
            else:
                base.unit = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PayloadError("wrong_type", f"SenML record {index}: {key} = {show(value)} is not a number")
        if key == "bt":
            base.time = float(value)
        elif key == "bv":
            base.value = float(value)


def _record(
    fmt: SenmlFormat, base: _Base, record: dict[str, object], received_at: dt.datetime
) -> tuple[str | None, dt.datetime, RawMetric, float, str] | None:
    """(station, time, metric, value, unit) of one record; None for an ignored name."""
    must_understand = sorted(key for key in record if key.endswith("_"))
    if must_understand:
        raise BadValueError("bad_shape", f"fields {must_understand} must be understood and are not (RFC 8428 4.4)")
    name = record.get("n", "")
    if not isinstance(name, str):
        raise BadValueError("wrong_type", f"n = {show(name)} is not a string")
    station, measurement = _split(base.name + name, fmt.station_in_name)
    if measurement in fmt.ignore:
        return None
    metric_name: str = fmt.names.get(measurement, measurement)
    if metric_name not in RAW_METRICS:
        known = ", ".join(sorted(fmt.names) or ["none"])
        raise BadValueError(
            "bad_shape", f"measurement {show(measurement)} is not a metric nor in the sensor's names (mapped: {known})"
        )
    metric = cast(RawMetric, metric_name)
    value = _value(record, base, metric)
    time = _time(record, base, received_at)
    unit = record.get("u", base.unit)
    if not isinstance(unit, str):
        raise BadValueError("wrong_type", f"u = {show(unit)} is not a string")
    return station, time, metric, value, unit or ("bool" if "vb" in record else "")


def _station_of(fmt: SenmlFormat, base: _Base, record: dict[str, object]) -> str | None:
    name = record.get("n", "")
    return _split(base.name + name, fmt.station_in_name)[0] if isinstance(name, str) else None


def _split(full_name: str, station_in_name: bool) -> tuple[str | None, str]:
    if not station_in_name:
        return None, full_name
    cut = max(full_name.rfind(":"), full_name.rfind("/"))
    if cut <= 0:
        return None, full_name
    return full_name[:cut], full_name[cut + 1 :]


def _value(record: dict[str, object], base: _Base, metric: str) -> float:
    present = [key for key in _VALUE_FIELDS if key in record]
    if present == ["v"]:
        if isinstance(record["v"], str):
            raise BadValueError("wrong_type", f"v = {show(record['v'])} is a string, not a number")
        return base.value + number_of(record["v"], metric, "v")
    if present == ["vb"]:
        if not isinstance(record["vb"], bool):
            raise BadValueError("wrong_type", f"vb = {show(record['vb'])} is not a boolean")
        return number_of(record["vb"], metric, "vb")
    if not present:
        raise BadValueError("bad_shape", f"{metric} has no value (v or vb)")
    raise BadValueError("wrong_type", f"{metric} needs one numeric (v) or boolean (vb) value, got {present}")


def _time(record: dict[str, object], base: _Base, received_at: dt.datetime) -> dt.datetime:
    offset = record.get("t", 0.0)
    if isinstance(offset, bool) or not isinstance(offset, int | float) or not math.isfinite(offset):
        raise BadValueError("bad_time", f"t = {show(offset)} is not a number of seconds")
    seconds = base.time + float(offset)
    try:
        if seconds < RELATIVE_LIMIT_S:
            return received_at + dt.timedelta(seconds=seconds)
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, ValueError, OSError):
        raise BadValueError("bad_time", f"time {seconds} s is outside the dates a clock can show") from None
