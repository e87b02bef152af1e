"""Adapter ``csv``: a vendor's CSV lines, one reading per line, columns named in the sensor config.

Vietnamese hydro-met loggers commonly send ``KIMLONG,26/11/2026 10:00,412``: station code, local time,
level in cm. The config names each column (a metric, the time column, the station column, or ``-`` to
skip one), gives each metric column its unit, and may say that the first line is a header. A line
that cannot be read is refused on its own; the other lines still make readings.
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from ioc_common.sensors.adapters.times import TimeSpec, parse_time
from ioc_common.sensors.adapters.values import BadValueError, number_of, show
from ioc_common.sensors.readings import (
    RAW_METRICS,
    Parsed,
    PayloadError,
    PayloadProblem,
    RawMetric,
    RawReading,
    RawValue,
)

SKIP = "-"
"""Column name of a column to ignore (a vendor's battery voltage, a checksum)."""

MAX_LINES = 1000
"""Most data lines in one payload; more is refused as a whole, not cut silently."""


class CsvFormat(TimeSpec):
    """A vendor's CSV (``time_format``/``timezone`` as in TimeSpec)."""

    type: Literal["csv"] = Field(default="csv", description="Picks this adapter.")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="Column separator: , ; | or tab.")
    decimal_comma: bool = Field(default=False, description="Numbers are written 4,12 (use with delimiter ';').")
    header: bool = Field(default=False, description="true: the payload's first line is a header and is skipped.")
    columns: tuple[str, ...] = Field(
        min_length=2,
        max_length=64,
        description="Name of each column in order: a metric (water_level_m, pm2_5, ...), the time column, the "
        "station column, or '-' to skip it.",
    )
    time_column: str = Field(default="time", min_length=1, max_length=64, description="Which column holds the time.")
    sensor_id_column: str | None = Field(
        default=None, max_length=64, description="Which column holds the station's own id; null: the topic names it."
    )
    units: dict[RawMetric, str] = Field(
        default_factory=dict, description="Unit of each metric column, e.g. {water_level_m: cm}. Required for each."
    )

    @model_validator(mode="after")
    def _columns_make_sense(self) -> CsvFormat:
        special = {self.time_column, self.sensor_id_column, SKIP}
        metrics = [c for c in self.columns if c not in special]
        unknown = [c for c in metrics if c not in RAW_METRICS]
        if unknown:
            raise ValueError(f"columns {unknown} are not metrics, the time/station column or '-' (skip)")
        if len(metrics) != len(set(metrics)) or self.columns.count(self.time_column) != 1:
            raise ValueError("each metric column and the time column appear exactly once")
        if self.sensor_id_column is not None and self.columns.count(self.sensor_id_column) != 1:
            raise ValueError(f"sensor_id_column {self.sensor_id_column!r} must be one of the columns, once")
        if not metrics:
            raise ValueError("name at least one metric column")
        if set(metrics) != set(self.units):
            raise ValueError(f"give units for exactly the metric columns {sorted(metrics)}, got {sorted(self.units)}")
        if self.delimiter in ('"', "\n", "\r") or (self.decimal_comma and self.delimiter == ","):
            raise ValueError(f"delimiter {self.delimiter!r} cannot separate columns here")
        return self


def parse(fmt: CsvFormat, payload: bytes, received_at: dt.datetime) -> Parsed:
    """One reading per non-empty line; lines that cannot be read become problems."""
    del received_at
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PayloadError("not_csv", f"payload is not UTF-8 text: {error}") from None
    if "\x00" in text:
        raise PayloadError("not_csv", "payload contains NUL bytes: binary, not CSV")
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if fmt.header and lines:
        lines = lines[1:]
    if not lines or len(lines) > MAX_LINES:
        raise PayloadError("not_csv", f"expected 1 to {MAX_LINES} data lines, got {len(lines)}")
    readings: list[RawReading] = []
    problems: list[PayloadProblem] = []
    for number, line in lines:
        try:
            cells = next(csv.reader([line], delimiter=fmt.delimiter, strict=True))
        except csv.Error as error:
            problems.append(PayloadProblem("not_csv", f"line {number}: {error}"))
            continue
        reading, bad = _reading(fmt, cells, number)
        if reading is not None:
            readings.append(reading)
        station = _station(fmt, cells)
        problems.extend(PayloadProblem(p.code, f"line {number}: {p.reason}", station) for p in bad)
    return Parsed(tuple(readings), tuple(problems))


def _station(fmt: CsvFormat, cells: list[str]) -> str | None:
    if fmt.sensor_id_column is None or len(cells) != len(fmt.columns):
        return None
    return cells[fmt.columns.index(fmt.sensor_id_column)].strip() or None


def _reading(fmt: CsvFormat, cells: list[str], number: int) -> tuple[RawReading | None, list[BadValueError]]:
    if len(cells) != len(fmt.columns):
        return None, [BadValueError("bad_shape", f"{len(cells)} columns, expected {len(fmt.columns)}: {show(cells)}")]
    station = _station(fmt, cells)
    if fmt.sensor_id_column is not None and station is None:
        return None, [BadValueError("bad_shape", f"the station column {fmt.sensor_id_column!r} is empty")]
    try:
        time = parse_time(cells[fmt.columns.index(fmt.time_column)], fmt, fmt.time_column)
    except BadValueError as problem:
        return None, [problem]
    values: dict[RawMetric, RawValue] = {}
    bad: list[BadValueError] = []
    for column, cell in zip(fmt.columns, cells, strict=True):
        if column in fmt.units and cell.strip():
            metric = column
            try:
                value = number_of(cell, metric, column, decimal_comma=fmt.decimal_comma)
            except BadValueError as problem:
                bad.append(problem)
                continue
            values[metric] = RawValue(value, fmt.units[metric], column)
    if not values and not bad:
        bad.append(BadValueError("bad_shape", f"no metric column has a value: {show(cells)}"))
    return (RawReading(time, values, station, where=f"line {number}") if values else None), bad
