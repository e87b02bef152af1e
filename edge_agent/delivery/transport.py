"""What the sender needs from an uplink: send one batch of event JSONs, say what became of it.

A transport does one try and reports; the sender (``sender.Delivery``) owns every decision
(retry, backoff, circuit breaker, splitting, dead letters), so HTTP and MQTT behave alike.

``batch_body`` builds the ``EventBatch`` JSON by joining the events' JSON bytes as they lie in the
spool, without parsing them again: the sender's cost per event stays a copy, not a pydantic round
trip. The result is byte-for-byte what ``EventBatch(...).model_dump_json()`` writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from event_contract import SCHEMA_VERSION, BatchAck

_HEAD = b'{"schema_version":' + json.dumps(SCHEMA_VERSION).encode() + b',"agent_id":'


def batch_body(agent_id: str, payloads: Sequence[bytes]) -> bytes:
    """``{"schema_version": ..., "agent_id": ..., "events": [payload, ...]}`` from the events' JSON bytes."""
    return b"".join((_HEAD, json.dumps(agent_id).encode(), b',"events":[', b",".join(payloads), b"]}"))


@dataclass(frozen=True, slots=True)
class Acked:
    """Central (or, for MQTT 3.1.1, the broker) has the batch: it may leave the spool."""

    ack: BatchAck | None
    """Central's answer (stored, duplicates, rejections by index); None when only the broker confirmed."""
    kind: Literal["acked"] = "acked"


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing is known to be stored (network error, timeout, 5xx, 429, no ack): send it again later."""

    reason: str
    retry_after_s: float = 0.0
    """Central's Retry-After, seconds (0: none); honoured up to the backoff ceiling."""
    kind: Literal["retry"] = "retry"


@dataclass(frozen=True, slots=True)
class Refused:
    """Central refused the batch as a whole (e.g. HTTP 422): a resend could never succeed."""

    reason: str
    kind: Literal["refused"] = "refused"


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The batch is over central's (or the broker's) size limit: send it in smaller parts."""

    reason: str
    kind: Literal["too_large"] = "too_large"


SendOutcome = Acked | Retry | Refused | TooLarge


class Transport(Protocol):
    """One uplink to central; ``send`` is called from one thread at a time and never raises for I/O."""

    def send(self, agent_id: str, payloads: Sequence[bytes]) -> SendOutcome:
        """Send the events (each one event's JSON) as one batch and wait for the outcome."""
        ...

    def close(self) -> None:
        """Release connections; later sends are not expected."""
        ...
