"""Reading JSON and numbers out of vendor payloads, with failures that name the field and the value."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ioc_common.dead_letter import DeadLetterCode
from ioc_common.sensors.readings import PayloadError

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
"""A plain decimal number; refuses 'nan', 'inf', '1_000' and hex, which float() would take."""

PRESENCE_METRICS = frozenset({"smoke", "flame"})
"""Metrics for which a boolean is a value (true = 1, false = 0)."""


class BadValueError(Exception):
    """One value could not be read; the reason names the field and what was there."""

    def __init__(self, code: DeadLetterCode, reason: str) -> None:
        super().__init__(reason)
        self.code: DeadLetterCode = code
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(payload: bytes) -> object:
    """The JSON value in ``payload`` (UTF-8, an optional BOM); raises ``PayloadError('not_json')``."""
    try:
        text = payload.decode("utf-8-sig")
        return json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise PayloadError("not_json", f"payload is not JSON: {str(error)[:160]}") from None


def show(value: object, limit: int = 60) -> str:
    """A short repr of a payload value for reasons (a vendor string may be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number_of(value: object, metric: str, field: str, *, decimal_comma: bool = False) -> float:
    """A float from a JSON/CSV value: a number, a numeric string, or a boolean for smoke/flame."""
    if isinstance(value, bool):
        if metric in PRESENCE_METRICS:
            return 1.0 if value else 0.0
        raise BadValueError("wrong_type", f"{field} = {value!r} is a boolean, {metric} needs a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if decimal_comma:
            text = text.replace(",", ".")
        if not _NUMBER.fullmatch(text):
            raise BadValueError("wrong_type", f"{field} = {show(value)} is not a number")
        number = float(text)
    else:
        raise BadValueError("wrong_type", f"{field} = {show(value)} is not a number")
    if not math.isfinite(number):
        raise BadValueError("impossible_value", f"{field} = {show(value)} is not a finite number")
    return number


def at_path(document: object, path: tuple[str, ...]) -> object:
    """The value at a dotted path (``data.lvl``, ``items.0.v``); None when any step is missing."""
    node = document
    for step in path:
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
        if node is None:
            return None
    return node
