"""Validate a batch event by event: good events are kept, each bad one is refused with its reason.

Two layers. The *envelope* (``agent_id``, ``schema_version``, an ``events`` list of at most the
configured size) must be valid, or the whole payload is refused (``InvalidBatchError``). Inside a
valid envelope every event is checked on its own against the contract and against the clock
(``ClockPolicy``); a bad event becomes a ``Refused`` with the reason and its raw JSON, and the rest
of the batch is stored.

Fast path: a whole valid batch is parsed by pydantic-core in one call; only a batch with a problem
is re-parsed event by event, so the common case pays nothing for the partial acceptance.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from central_ingest.ingest.batch import (
    MAX_REPORTED_ERRORS,
    FieldError,
    InvalidBatchError,
    event_field_path,
    field_path,
)
from central_ingest.settings import RetentionSettings
from event_contract import Event, EventBatch, SchemaVersion
from event_contract.models import Identifier

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
MAX_REASON_ERRORS = 5
"""Field errors named in one event's reason; the rest is summarised as a count."""


@dataclass(frozen=True)
class ClockPolicy:
    """Clock sanity: refuse events dated too far in the future or older than their family's retention."""

    max_future: dt.timedelta
    retention: RetentionSettings

    def problem(self, event: Event, now: dt.datetime) -> str | None:
        ahead = event.time - now
        if ahead > self.max_future:
            return (
                f"time: {event.time.isoformat()} is {ahead.total_seconds():.0f} s ahead of central's clock "
                f"(at most {self.max_future.total_seconds():.0f} s allowed); check the agent's NTP"
            )
        keep = self.retention.for_kind(event.kind)
        if now - event.time > keep:
            return f"time: {event.time.isoformat()} is older than the {event.kind} retention of {keep.days} days"
        return None


@dataclass(frozen=True)
class Refused:
    """One event refused, with its position in the batch and its raw JSON."""

    position: int
    event_id: str | None
    reason: str
    raw: bytes


@dataclass(frozen=True)
class CheckedBatch:
    agent_id: str
    received: int
    events: tuple[Event, ...]
    refused: tuple[Refused, ...]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: SchemaVersion = "1.0"
    agent_id: Identifier
    events: list[Any] = Field(min_length=1)


def _event_reason(error: ValidationError) -> str:
    details = error.errors(include_url=False, include_input=False)
    parts: list[str] = []
    for detail in details[:MAX_REASON_ERRORS]:
        parts.append(f"{event_field_path(tuple(detail['loc']))}: {detail['msg']}")
    more = f" (and {len(details) - MAX_REASON_ERRORS} more)" if len(details) > MAX_REASON_ERRORS else ""
    return "; ".join(parts) + more


def _event_id_of(item: object) -> str | None:
    if isinstance(item, dict):
        value = item.get("event_id")
        if isinstance(value, str) and len(value) <= 64:
            return value
    return None


def _envelope_error(error: ValidationError) -> InvalidBatchError:
    details = error.errors(include_url=False, include_input=False)
    return InvalidBatchError(
        tuple(FieldError(field_path(tuple(d["loc"])), d["msg"]) for d in details[:MAX_REPORTED_ERRORS]), len(details)
    )


def _check_clock(
    events: tuple[Event, ...],
    positions: tuple[int, ...],
    clock: ClockPolicy,
    now: dt.datetime,
    raw_of: Callable[[int, Event], bytes],
) -> tuple[tuple[Event, ...], tuple[Refused, ...]]:
    kept: list[Event] = []
    refused: list[Refused] = []
    for event, position in zip(events, positions, strict=True):
        problem = clock.problem(event, now)
        if problem is None:
            kept.append(event)
        else:
            refused.append(Refused(position, str(event.event_id), problem, raw_of(position, event)))
    return tuple(kept), tuple(refused)


def check_batch(data: bytes, *, max_events: int, clock: ClockPolicy, now: dt.datetime) -> CheckedBatch:
    """Split a JSON batch into valid events and refused ones; raise ``InvalidBatchError`` for a bad envelope."""
    try:
        batch = EventBatch.model_validate_json(data)
    except ValidationError:
        return _check_slowly(data, max_events=max_events, clock=clock, now=now)
    if len(batch.events) > max_events:
        raise _too_many(len(batch.events), max_events)
    events, refused = _check_clock(
        batch.events,
        tuple(range(len(batch.events))),
        clock,
        now,
        lambda _position, event: event.model_dump_json().encode(),
    )
    return CheckedBatch(batch.agent_id, len(batch.events), events, refused)


def _too_many(count: int, max_events: int) -> InvalidBatchError:
    return InvalidBatchError(
        (FieldError("events", f"at most {max_events} events per batch on this server, got {count}"),), 1
    )


def _check_slowly(data: bytes, *, max_events: int, clock: ClockPolicy, now: dt.datetime) -> CheckedBatch:
    try:
        envelope = _Envelope.model_validate_json(data)
    except ValidationError as error:
        raise _envelope_error(error) from None
    if len(envelope.events) > max_events:
        raise _too_many(len(envelope.events), max_events)
    raws = [json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() for item in envelope.events]
    valid: list[Event] = []
    positions: list[int] = []
    refused: list[Refused] = []
    for position, (item, raw) in enumerate(zip(envelope.events, raws, strict=True)):
        try:
            event = EVENT_ADAPTER.validate_json(raw)
        except ValidationError as error:
            refused.append(Refused(position, _event_id_of(item), _event_reason(error), raw))
            continue
        if event.agent_id != envelope.agent_id:
            reason = f"agent_id: {event.agent_id!r} is not the batch's agent {envelope.agent_id!r}"
            refused.append(Refused(position, str(event.event_id), reason, raw))
            continue
        valid.append(event)
        positions.append(position)
    events, late = _check_clock(tuple(valid), tuple(positions), clock, now, lambda position, _event: raws[position])
    ordered = tuple(sorted((*refused, *late), key=lambda r: r.position))
    return CheckedBatch(envelope.agent_id, len(envelope.events), events, ordered)
