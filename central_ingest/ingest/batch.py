"""Parse and validate an ``EventBatch``; turn validation errors into messages with field paths.

A message reads ``events.3.counts.0.count: Input should be greater than or equal
to 0`` so that an agent's operator finds the bad field without reading pydantic's
internals. A batch is accepted whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from event_contract import CountIntervalEvent, EventBatch, HealthEvent, ZoneIntervalEvent

# pydantic puts the discriminator's value into the path of a tagged-union member
# (events.3.count_interval.counts...); it is not a field, so it is left out.
_EVENT_KINDS = frozenset(
    kind
    for model in (CountIntervalEvent, ZoneIntervalEvent, HealthEvent)
    for kind in get_args(model.model_fields["kind"].annotation)
)
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidBatchError(Exception):
    """The batch failed validation; ``errors`` says where and why."""

    def __init__(self, errors: tuple[FieldError, ...], total: int) -> None:
        self.errors = errors
        self.total = total
        shown = "; ".join(str(e) for e in errors)
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        super().__init__(f"invalid batch, {total} error(s): {shown}{more}")


def field_path(loc: tuple[int | str, ...]) -> str:
    """Dotted path of a pydantic error location, without union tags; ``(batch)`` for the whole body."""
    parts = [
        str(item)
        for position, item in enumerate(loc)
        if not (position == 2 and loc[0] == "events" and isinstance(item, str) and item in _EVENT_KINDS)
    ]
    return ".".join(parts) if parts else "(batch)"


def _field_error(detail: ErrorDetails) -> FieldError:
    return FieldError(path=field_path(tuple(detail["loc"])), message=detail["msg"])


def _without_echoes(details: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop "events: should have at least 1 item" when it only echoes that every event was invalid."""
    item_failed = any(len(d["loc"]) > 1 and d["loc"][0] == "events" for d in details)
    return [d for d in details if not (item_failed and d["type"] == "too_short" and tuple(d["loc"]) == ("events",))]


def parse_batch(data: bytes, max_events: int) -> EventBatch:
    """Validate JSON bytes as an ``EventBatch`` of at most ``max_events`` events, or raise ``InvalidBatchError``."""
    try:
        batch = EventBatch.model_validate_json(data)
    except ValidationError as error:
        details = _without_echoes(error.errors(include_url=False, include_input=False))
        raise InvalidBatchError(tuple(_field_error(d) for d in details[:MAX_REPORTED_ERRORS]), len(details)) from None
    if len(batch.events) > max_events:
        raise InvalidBatchError((FieldError("events", f"at most {max_events} events per batch on this server"),), 1)
    return batch
