"""One refused input kept with its raw bytes and the reason, so nothing refused is silently lost.

Edge and central both produce these (bad sensor payloads, batches central refused); each side
keeps them in its own store (edge: SQLite ``DeadLetterStore``; central: the ``dead_letters`` table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

DeadLetterCode = Literal[
    "too_large",
    "not_json",
    "not_csv",
    "bad_shape",
    "wrong_type",
    "impossible_value",
    "bad_time",
    "future_time",
    "duplicate_time",
    "out_of_order",
    "unknown_sensor",
    "unknown_topic",
    "refused_by_central",
    "internal_error",
]
"""Why an input was refused; a stable word for counters and dashboards (the reason says the details)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: str
    """Where it came from: ``mqtt`` (a sensor payload), ``uplink`` (an event central refused), ..."""
    code: DeadLetterCode
    reason: str
    """Human-readable, names the field and the value: ``water_level: -500.0 m is below -100.0 m``."""
    raw: bytes
    """The input exactly as received (possibly cut to the store's size limit; see ``truncated``)."""
    received_at: dt.datetime
    topic: str | None = None
    sensor_id: str | None = None
    truncated: bool = False


class DeadLetterSink(Protocol):
    """Keeps refused inputs durably; ``keep_many`` returns only once they are stored (or raises)."""

    def keep_many(self, letters: Sequence[DeadLetter]) -> None: ...
