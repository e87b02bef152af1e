"""Payload adapters, one module per payload shape, chosen per sensor by ``format.type`` in its config.

Each adapter is a config model (the ``format`` section) and a ``parse(fmt, payload, received_at)``
function that turns bytes into ``Parsed`` raw readings; it never converts units or checks ranges
(the normaliser does, once for all adapters). Adding a vendor shape is one module plus one line here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from ioc_common.sensors.adapters import csv_lines, flat_json, ioc_v1, senml
from ioc_common.sensors.adapters.csv_lines import CsvFormat
from ioc_common.sensors.adapters.flat_json import FieldMap, FlatJsonFormat
from ioc_common.sensors.adapters.ioc_v1 import IocV1Format
from ioc_common.sensors.adapters.senml import SenmlFormat
from ioc_common.sensors.adapters.times import TimeSpec
from ioc_common.sensors.readings import Parsed

AdapterFormat = Annotated[IocV1Format | SenmlFormat | FlatJsonFormat | CsvFormat, Field(discriminator="type")]
"""A sensor's ``format`` section; ``type`` picks the adapter."""

_PARSERS: dict[type[Any], Callable[[Any, bytes, dt.datetime], Parsed]] = {
    IocV1Format: ioc_v1.parse,
    SenmlFormat: senml.parse,
    FlatJsonFormat: flat_json.parse,
    CsvFormat: csv_lines.parse,
}


def parse_payload(
    fmt: IocV1Format | SenmlFormat | FlatJsonFormat | CsvFormat, payload: bytes, received_at: dt.datetime
) -> Parsed:
    """Raw readings of ``payload`` read with the adapter ``fmt`` names; raises ``PayloadError`` for the whole."""
    return _PARSERS[type(fmt)](fmt, payload, received_at)


__all__ = [
    "AdapterFormat",
    "CsvFormat",
    "FieldMap",
    "FlatJsonFormat",
    "IocV1Format",
    "SenmlFormat",
    "TimeSpec",
    "parse_payload",
]
