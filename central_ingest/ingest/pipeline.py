"""One validation and storage path for every way in (HTTP batches, MQTT messages).

``Ingestor.ingest(payload, agent_id=..., channel=...)`` checks the batch event by event
(``validate``), stores the good events and the refused ones (as dead letters with their raw
JSON) in ONE transaction, updates the agent's running totals, then hands the stored events to
the alert engine's non-blocking hook. A bad envelope, or a batch claiming another agent, is
dead-lettered whole and raised, so each channel answers in its own way (HTTP 422/403; MQTT
acknowledges, since a resend could never succeed).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central_ingest.ingest.batch import InvalidBatchError
from central_ingest.ingest.validate import CheckedBatch, ClockPolicy, check_batch
from central_ingest.plates.evidence_requests import take_wanted
from central_ingest.plates.intake import redact_plate, refuse_unsealable
from central_ingest.plates.vault import PlateVault
from central_ingest.settings import Settings
from central_ingest.store.writer import Channel, DeadLetter, store_events
from event_contract import BatchAck, Event, Rejection

log = logging.getLogger(__name__)

IngestHook = Callable[[Sequence[Event]], None]
"""Called on the event loop with every stored batch's valid events; must not block."""

MAX_ACK_REJECTIONS = 100
"""Refused events named in an answer; ``rejected`` always gives the full count."""


class AgentMismatchError(Exception):
    """The batch says it comes from another agent than the authenticated one."""


@dataclass
class Ingestor:
    pool: AsyncConnectionPool[AsyncConnection[Any]]
    settings: Settings
    on_stored: IngestHook | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    vault: PlateVault | None = None
    """Seals plates; None: plate-bearing events are refused (``plates.intake``), never stored in clear."""

    def __post_init__(self) -> None:
        self._clock_policy = ClockPolicy(dt.timedelta(seconds=self.settings.max_future_skew_s), self.settings.retention)

    async def ingest(self, payload: bytes, *, agent_id: str, channel: Channel, want_evidence: bool = False) -> BatchAck:
        """Check and store one batch from ``agent_id``; see the module doc for what is raised.

        ``want_evidence``: the agent reads ``BatchAck.evidence_wanted`` (it said so), so the officers' open
        requests for its keyframes ride on this ack (``plates.evidence_requests``)."""
        try:
            checked: CheckedBatch = await anyio.to_thread.run_sync(self._check, payload)
        except InvalidBatchError as error:
            await self.refuse_unreadable(payload, agent_id, channel, str(error))
            raise
        if checked.agent_id != agent_id:
            message = f"this sender is agent {agent_id!r}, not {checked.agent_id!r}"
            await self.refuse_unreadable(payload, agent_id, channel, message)
            raise AgentMismatchError(message)
        checked = refuse_unsealable(checked, self.vault)
        dead_letters = [DeadLetter(channel, agent_id, r.position, r.event_id, r.reason, r.raw) for r in checked.refused]
        async with self.pool.connection() as conn:
            result = await store_events(
                conn, checked.events, dead_letters=dead_letters, agent_id=agent_id, vault=self.vault
            )
            wanted = await self._evidence_wanted(conn, agent_id) if want_evidence else ()
        if self.on_stored is not None and checked.events:
            try:
                self.on_stored(checked.events)
            except Exception:  # the alert engine must never fail an ingest that is already committed
                log.exception("alert hook failed after storing a batch of %s", agent_id)
        return BatchAck(
            received=checked.received,
            stored=result.stored,
            duplicates=result.duplicates,
            rejected=len(checked.refused),
            rejections=tuple(
                Rejection(index=r.position, event_id=r.event_id, reason=r.reason)
                for r in checked.refused[:MAX_ACK_REJECTIONS]
            ),
            evidence_wanted=wanted,
        )

    async def _evidence_wanted(self, conn: AsyncConnection[Any], agent_id: str) -> tuple[str, ...]:
        """Requests due for this agent; () when the lookup fails: the batch is stored, its ack must not fail."""
        try:
            async with conn.transaction():
                return await take_wanted(
                    conn, agent_id, now=self.clock(), settings=self.settings.police.evidence_requests
                )
        except psycopg.Error as error:
            log.warning("evidence requests of %s not read for its ack (next ack tries again): %s", agent_id, error)
            return ()

    def _check(self, payload: bytes) -> CheckedBatch:
        return check_batch(
            payload, max_events=self.settings.max_batch_events, clock=self._clock_policy, now=self.clock()
        )

    async def refuse_unreadable(self, payload: bytes, agent_id: str | None, channel: Channel, reason: str) -> None:
        """Keep a whole payload as a dead letter: a bad envelope, or one that never reached validation."""
        # Kept for the operator, with any plate redacted: nothing is stored in clear (docs/plate_vault.md).
        letter = DeadLetter(channel, agent_id, None, None, reason[:2000], redact_plate(payload))
        async with self.pool.connection() as conn:
            await store_events(conn, (), dead_letters=[letter], agent_id=agent_id)
