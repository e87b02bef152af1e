"""Reading a vendor's timestamp: ISO 8601, epoch seconds or milliseconds, or a strptime pattern.

Loggers in Vietnam often send local wall-clock time without an offset (``26/11/2026 10:00``); such a
naive time is read in the configured time zone (default Asia/Ho_Chi_Minh, UTC+7, no daylight saving).
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ioc_common.sensors.adapters.values import BadValueError, show

NAMED_FORMATS = ("iso8601", "epoch_s", "epoch_ms")
_LAST_EPOCH_S = 253_402_300_799.0  # 9999-12-31T23:59:59Z: later times do not fit a datetime


class TimeSpec(BaseModel):
    """How a vendor writes its times (shared by the flat_json and csv adapters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_format: str = Field(
        default="iso8601",
        min_length=2,
        max_length=100,
        description="iso8601 | epoch_s | epoch_ms | a strptime pattern such as '%d/%m/%Y %H:%M' (with %z the "
        "offset comes from the payload).",
    )
    timezone: str = Field(
        default="Asia/Ho_Chi_Minh",
        min_length=1,
        max_length=64,
        description="IANA time zone of times written without an offset (naive ISO 8601, strptime without %z).",
    )

    @field_validator("time_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in NAMED_FORMATS and "%" not in value:
            raise ValueError(f"time_format {value!r}: use {', '.join(NAMED_FORMATS)} or a strptime pattern with %")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r} is not an IANA time zone (e.g. Asia/Ho_Chi_Minh, UTC)") from None
        return value

    def zone(self) -> ZoneInfo:
        """The configured zone (ZoneInfo caches instances, so this is cheap)."""
        return ZoneInfo(self.timezone)


def parse_time(value: object, spec: TimeSpec, field: str) -> dt.datetime:
    """An aware datetime from ``value``; raises ``BadValueError('bad_time')`` naming the field and value."""
    fmt = spec.time_format
    if value is None:
        raise BadValueError("bad_time", f"time field {field} is missing")
    if fmt in ("epoch_s", "epoch_ms"):
        return _from_epoch(value, fmt, field)
    if not isinstance(value, str):
        raise BadValueError("bad_time", f"{field} = {show(value)} is not a time string ({fmt})")
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text) if fmt == "iso8601" else dt.datetime.strptime(text, fmt)  # noqa: DTZ007 -- zone added below
    except ValueError:
        raise BadValueError("bad_time", f"{field} = {show(value)} does not match the time format {fmt!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=spec.zone())
    return parsed


def _from_epoch(value: object, fmt: str, field: str) -> dt.datetime:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip()) if value.strip().lstrip("-").replace(".", "", 1).isdigit() else None
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise BadValueError("bad_time", f"{field} = {show(value)} is not a number of {fmt[6:]} since 1970")
    seconds = number / 1000.0 if fmt == "epoch_ms" else number
    if not 0 <= seconds <= _LAST_EPOCH_S:
        raise BadValueError("bad_time", f"{field} = {show(value)} ({fmt}) is outside 1970..9999")
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
