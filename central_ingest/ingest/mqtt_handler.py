"""What the MQTT worker does with one message, apart from the broker: read, validate, store, decide.

``MessageHandler.handle(message)`` returns only when the message is FINISHED, that is its batch is
committed (stored or found duplicate) or it is kept as a dead letter; only then may the worker
acknowledge it. Outcomes:

- topic outside the scheme, message over the size limit, damaged gzip: dead letter (the bytes as
  received, cut to the size limit), counted in ``refused_payloads``;
- bad envelope or a batch that names another agent than its topic: the ``Ingestor`` dead-letters
  it, counted in ``refused_payloads``; a resend could never succeed, so it is finished too;
- a good batch: its good events stored, its bad ones dead-lettered one by one;
- database unavailable (``psycopg.OperationalError``, ``PoolTimeout``): NOT finished; the same
  message is tried again after a backoff (exponential, full jitter, ceiling) until the database
  is back, so nothing is lost and the broker's inflight window holds the rest back;
- anything else (a bug, data the database refuses): logged and dead-lettered with the error, so
  one poisonous message cannot stall a worker forever.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import psycopg
from psycopg_pool import PoolTimeout

from central_ingest.ingest.batch import InvalidBatchError
from central_ingest.ingest.mqtt_topics import PayloadError, TopicError, agent_id_from_topic, decode_payload
from central_ingest.ingest.pipeline import AgentMismatchError
from central_ingest.store.writer import Channel
from event_contract import BatchAck
from ioc_common.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, PoolTimeout)
"""Errors a later try can overcome: the message is kept (not acknowledged) and tried again."""

CHANNEL: Channel = "mqtt"


class BatchIngestor(Protocol):
    """The part of ``pipeline.Ingestor`` the handler uses (tests give a fake one)."""

    async def ingest(self, payload: bytes, *, agent_id: str, channel: Channel) -> BatchAck: ...

    async def refuse_unreadable(self, payload: bytes, agent_id: str | None, channel: Channel, reason: str) -> None: ...


@dataclass(frozen=True)
class ReceivedMessage:
    """One PUBLISH as the network thread handed it over."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int = 0
    """The broker session it arrived in; an acknowledgement only makes sense in that session."""


@dataclass
class HandlerCounters:
    """Running totals of finished messages (mutated on the event loop only)."""

    stored_events: int = 0
    duplicates: int = 0
    rejected_events: int = 0
    refused_payloads: int = 0
    failed_payloads: int = 0
    """Messages that raised an unexpected error; also dead-lettered (and in refused_payloads)."""
    store_retries: int = 0
    """Tries that failed because the database was unavailable."""


class MessageHandler:
    """Turns a received message into stored rows or a dead letter; see the module docstring."""

    def __init__(
        self,
        ingestor: BatchIngestor,
        *,
        topic_prefix: str,
        max_payload_bytes: int,
        retry_backoff: BackoffConfig,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._ingestor = ingestor
        self._prefix = topic_prefix
        self._limit = max_payload_bytes
        self._retry_backoff = retry_backoff
        self._rng = rng or random.Random()  # noqa: S311 (spreads retries, not cryptography)
        self._sleep = sleep
        self.counters = HandlerCounters()

    async def handle(self, message: ReceivedMessage) -> None:
        """Return once ``message`` is finished (committed or dead-lettered); retry while the database is down."""
        backoff = Backoff(self._retry_backoff, self._rng)
        while True:
            try:
                await self._handle_once(message)
                return
            except DATABASE_UNAVAILABLE as error:
                self.counters.store_retries += 1
                delay = backoff.next_delay()
                log.warning(
                    "MQTT ingest: database unavailable (%s: %s); message %d on %r kept, try %d again in %.1f s",
                    type(error).__name__,
                    error,
                    message.mid,
                    message.topic,
                    backoff.attempt + 1,
                    delay,
                )
                await self._sleep(delay)

    async def _handle_once(self, message: ReceivedMessage) -> None:
        agent_id: str | None = None
        try:
            agent_id = agent_id_from_topic(self._prefix, message.topic)
            data = decode_payload(message.payload, self._limit)
        except (TopicError, PayloadError) as error:
            await self._refuse(message, agent_id, str(error))
            return
        try:
            ack = await self._ingestor.ingest(data, agent_id=agent_id, channel=CHANNEL)
        except (InvalidBatchError, AgentMismatchError) as error:
            # Already kept as a dead letter by the Ingestor, in its own transaction.
            self.counters.refused_payloads += 1
            log.info("MQTT ingest: batch from %s refused: %s", agent_id, error)
            return
        except DATABASE_UNAVAILABLE:
            raise
        except Exception as error:  # a bug or data the database refuses: keep it, never stall on it
            log.exception("MQTT ingest: batch from %s could not be stored; kept as a dead letter", agent_id)
            self.counters.failed_payloads += 1
            await self._refuse(message, agent_id, f"could not be stored: {type(error).__name__}: {error}")
            return
        self.counters.stored_events += ack.stored
        self.counters.duplicates += ack.duplicates
        self.counters.rejected_events += ack.rejected

    async def _refuse(self, message: ReceivedMessage, agent_id: str | None, reason: str) -> None:
        kept = message.payload[: self._limit]
        if len(kept) < len(message.payload):
            reason = f"{reason} (first {len(kept)} bytes kept)"
        await self._ingestor.refuse_unreadable(kept, agent_id, CHANNEL, reason)
        self.counters.refused_payloads += 1
        log.info("MQTT ingest: message on %r refused: %s", message.topic, reason)
