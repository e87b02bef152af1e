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

Every finished message yields a ``BatchReply``: central's ``BatchAck`` and an outcome word
(``stored``, ``refused``, ``too_large``). When the agent asked for one (MQTT 5 ResponseTopic +
CorrelationData), the worker publishes it to the agent AFTER the commit; that reply, not the
broker's PUBACK, is what lets the agent drop the batch from its spool. A reply goes only to the
publishing agent's own acks topic ``{prefix}/agents/{agent_id}/acks/{client}``; any other response
topic is ignored (``reply_topic``), so no one can make central publish elsewhere. See
docs/mqtt_topics.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import psycopg
from psycopg_pool import PoolTimeout

from central_ingest.ingest.batch import InvalidBatchError
from central_ingest.ingest.mqtt_topics import PayloadError, TopicError, agent_id_from_topic, decode_payload
from central_ingest.ingest.pipeline import AgentMismatchError
from central_ingest.store.writer import Channel
from event_contract import BatchAck, Rejection
from ioc_common.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, PoolTimeout)
"""Errors a later try can overcome: the message is kept (not acknowledged) and tried again."""

CHANNEL: Channel = "mqtt"

ACK_OUTCOME_PROPERTY: Final = "ioc-ack"
"""MQTT 5 user property of a reply naming its ``ReplyOutcome``; agents read it beside the BatchAck JSON."""

ReplyOutcome = Literal["stored", "refused", "too_large"]
"""stored: the batch is committed (its bad events, if any, dead-lettered one by one; see ``rejections``);
refused: the whole payload was dead-lettered, a resend cannot succeed (the reason is ``rejections[0]``);
too_large: over ``max_payload_bytes``, dead-lettered; the agent should send smaller batches."""


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
    response_topic: str | None = None
    """MQTT 5 ResponseTopic: where the agent waits for central's ack of this batch (None: no reply)."""
    correlation_data: bytes | None = None
    """MQTT 5 CorrelationData: echoed in the reply so the agent matches it to its send."""


@dataclass(frozen=True)
class BatchReply:
    """What became of one finished message: the outcome word and central's answer."""

    outcome: ReplyOutcome
    ack: BatchAck

    def body(self) -> bytes:
        return self.ack.model_dump_json().encode("utf-8")


def refused_reply(outcome: ReplyOutcome, reason: str) -> BatchReply:
    """The reply to a payload dead-lettered as a whole: nothing read, the reason as the one rejection."""
    return BatchReply(
        outcome, BatchAck(received=0, stored=0, duplicates=0, rejections=(Rejection(index=0, reason=reason[:2000]),))
    )


def reply_topic(prefix: str, message: ReceivedMessage) -> str | None:
    """Where to publish the reply to ``message``: its response topic when that is the sender's own
    ``{prefix}/agents/{agent_id}/acks/{one level}``, else None (no reply)."""
    topic = message.response_topic
    if topic is None or message.correlation_data is None:
        return None
    try:
        agent_id = agent_id_from_topic(prefix, message.topic)
    except TopicError:
        return None
    head = f"{prefix}/agents/{agent_id}/acks/"
    rest = topic[len(head) :]
    if not topic.startswith(head) or not rest or any(ch in rest for ch in "/+#\0"):
        return None
    return topic


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

    async def handle(self, message: ReceivedMessage) -> BatchReply:
        """Return once ``message`` is finished (committed or dead-lettered); retry while the database is down."""
        backoff = Backoff(self._retry_backoff, self._rng)
        while True:
            try:
                return await self._handle_once(message)
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

    async def _handle_once(self, message: ReceivedMessage) -> BatchReply:
        agent_id: str | None = None
        try:
            agent_id = agent_id_from_topic(self._prefix, message.topic)
            data = decode_payload(message.payload, self._limit)
        except (TopicError, PayloadError) as error:
            too_large = isinstance(error, PayloadError) and len(message.payload) > self._limit
            reason = await self._refuse(message, agent_id, str(error))
            return refused_reply("too_large" if too_large else "refused", reason)
        try:
            ack = await self._ingestor.ingest(data, agent_id=agent_id, channel=CHANNEL)
        except (InvalidBatchError, AgentMismatchError) as error:
            # Already kept as a dead letter by the Ingestor, in its own transaction.
            self.counters.refused_payloads += 1
            log.info("MQTT ingest: batch from %s refused: %s", agent_id, error)
            return refused_reply("refused", str(error))
        except DATABASE_UNAVAILABLE:
            raise
        except Exception as error:  # a bug or data the database refuses: keep it, never stall on it
            log.exception("MQTT ingest: batch from %s could not be stored; kept as a dead letter", agent_id)
            self.counters.failed_payloads += 1
            reason = await self._refuse(message, agent_id, f"could not be stored: {type(error).__name__}: {error}")
            return refused_reply("refused", reason)
        self.counters.stored_events += ack.stored
        self.counters.duplicates += ack.duplicates
        self.counters.rejected_events += ack.rejected
        return BatchReply("stored", ack)

    async def _refuse(self, message: ReceivedMessage, agent_id: str | None, reason: str) -> str:
        """Keep the whole message as a dead letter; returns the reason as kept."""
        kept = message.payload[: self._limit]
        if len(kept) < len(message.payload):
            reason = f"{reason} (first {len(kept)} bytes kept)"
        await self._ingestor.refuse_unreadable(kept, agent_id, CHANNEL, reason)
        self.counters.refused_payloads += 1
        log.info("MQTT ingest: message on %r refused: %s", message.topic, reason)
        return reason
