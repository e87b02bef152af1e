"""Store and forward: every event goes to the durable spool first; one sender thread drains it to central.

``Delivery`` has the surface the agent used with the old in-memory uplink (``submit``, ``stats``,
``close``) plus ``submit_many`` for the sensor path. An event leaves the spool only when central
has acknowledged it (or, refused by central, once it is kept in the local dead-letter store), so a
dead uplink, a dead broker or a killed agent loses nothing: at-least-once delivery, and central's
idempotent storage (event ids) turns it into exactly-once storage.

The sender thread loops: wait for a batch to fill (``flush_interval_s``, unless at least
``batch_max_events`` are already waiting) -> ``spool.lease`` (priorities first; inside a priority
``live_share`` of the batch from the newest events, the rest oldest-first, so a backlog drains
without starving live alerts and health) -> ``transport.send`` -> by outcome:

- acked: ``spool.ack`` all; the events central refused one by one (``BatchAck.rejections``) are
  first kept in the dead-letter store with central's reason and their JSON, counted, never resent;
  the evidence digests an officer asked for (``BatchAck.evidence_wanted``) go to the handler set with
  ``set_evidence_wanted_handler`` (the agent's evidence store; counted, never fatal to delivery);
- retry (network, timeout, 5xx, 429, no MQTT ack): ``spool.release`` (pending again, so a newer
  live event can overtake), backoff with full jitter (``Retry-After`` honoured up to the ceiling),
  one failure for the circuit breaker;
- refused (central refused the whole batch): the batch goes to the dead-letter store, then leaves
  the spool; counted;
- too large: halved and each half sent; the lease size is capped from then on; a single event that
  is still too large is dead-lettered (it can never be delivered).

The spool ack of a delivered batch runs on a helper thread while the NEXT batch is on the wire
(at most one ack in flight; the sender waits for it before handing over another), so the spool's
delete + fsync does not add to the time per batch. A crash before that ack commits only causes a
resend, which central counts as duplicates.

Dead letters are kept BEFORE the spool forgets the events; if the dead-letter store fails, the
events are released and sent again later (central refuses them again: noise, never a loss).

``close(timeout)`` stops taking events, keeps sending until the spool is empty or ``timeout`` has
passed, then stops. What is left stays in the spool for the next start: it is not lost, so it is
not counted as lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from edge_agent.delivery.circuit_breaker import BreakerStats, CircuitBreaker
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.transport import Acked, Refused, Retry, SendOutcome, TooLarge, Transport
from event_contract import BatchAck, Event
from ioc_common.backoff import Backoff
from ioc_common.dead_letter import DeadLetter, DeadLetterCode, DeadLetterSink

log = logging.getLogger(__name__)

EvidenceWantedHandler = Callable[[tuple[str, ...]], None]
"""Takes ``BatchAck.evidence_wanted`` on the sender thread; must be quick (a local write) and may raise."""

IDLE_WAIT_S = 1.0
"""Longest the sender sleeps with an empty spool before it looks again (a submit wakes it at once)."""


class SpooledEventView(Protocol):
    """What the sender reads of a leased event (``spool.SpooledEvent``)."""

    @property
    def seq(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> bytes: ...


class SpoolStatsView(Protocol):
    """What the sender reads of the spool's counters (``spool.SpoolStats``)."""

    @property
    def pending_events(self) -> int: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def leased_events(self) -> int: ...
    @property
    def oldest_pending_time(self) -> dt.datetime | str | None:
        """Event time of the oldest pending event (a datetime or ISO 8601 text)."""
        ...

    @property
    def dropped_events(self) -> int: ...


class SpoolPort(Protocol):
    """The part of ``spool.Spool`` the sender uses (tests give a fake one)."""

    def put(self, events: Sequence[Event], *, durable_only: bool = False) -> object: ...
    def lease(self, max_events: int, max_bytes: int, live_share: float = 0.25) -> Sequence[SpooledEventView]: ...
    def ack(self, seqs: Iterable[int]) -> None: ...
    def release(self, seqs: Iterable[int]) -> None: ...
    def pending_events(self) -> int: ...
    def stats(self) -> SpoolStatsView: ...


class DeliveryClosedError(RuntimeError):
    """``submit_many`` after ``close``: the events were NOT stored."""


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    submitted: int
    """Events handed to ``submit``/``submit_many`` and stored in the spool."""
    submit_errors: int
    """``submit`` calls whose spool put raised (logged; the spool counts its own drops)."""
    refused_after_close: int
    """Events given to ``submit`` after ``close`` (not stored; logged)."""
    sent_events: int
    """Events central (or, with MQTT 3.1.1, the broker) acknowledged."""
    sent_batches: int
    stored_events: int
    """Events central reported new."""
    duplicate_events: int
    """Events central already had (resends after a lost ack)."""
    rejected_events: int
    """Events of acknowledged batches central refused one by one; kept in the local dead-letter store."""
    refused_batches: int
    """Batches central refused as a whole (or single events too large to send); dead-lettered locally."""
    refused_events: int
    split_batches: int
    """Batches halved after a 'too large' answer."""
    retries: int
    """Failed sends, released back to the spool and tried again later."""
    dead_letter_errors: int
    """Times the dead-letter store failed; those events stayed in the spool."""
    internal_errors: int
    """Unexpected errors in the sender loop (logged; the loop goes on after a backoff)."""
    breaker_state: str
    breaker: BreakerStats
    last_error: str
    backlog_events: int
    """Events in the spool not yet acknowledged: pending plus the batch in flight."""
    backlog_bytes: int
    oldest_pending_age_s: float | None
    """Age (now minus event time) of the oldest event still in the spool; None when it is empty."""
    spool: SpoolStatsView
    """The spool's own counters (drops by kind, disk state, ...)."""
    evidence_wanted: int = 0
    """Evidence digests central asked for in its acks (an officer's requests), handed to the handler."""
    evidence_wanted_unhandled: int = 0
    """Of those, digests no handler took (none set, or it raised; central asks again later)."""


@dataclass
class _Counters:
    submitted: int = 0
    submit_errors: int = 0
    refused_after_close: int = 0
    sent_events: int = 0
    sent_batches: int = 0
    stored_events: int = 0
    duplicate_events: int = 0
    rejected_events: int = 0
    refused_batches: int = 0
    refused_events: int = 0
    split_batches: int = 0
    retries: int = 0
    dead_letter_errors: int = 0
    internal_errors: int = 0
    evidence_wanted: int = 0
    evidence_wanted_unhandled: int = 0
    last_error: str = ""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_datetime(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


class Delivery:
    """The agent's way out: spool + one sender thread + transport + circuit breaker. See the module doc."""

    def __init__(
        self,
        agent_id: str,
        config: UplinkConfig,
        spool: SpoolPort,
        transport: Transport,
        *,
        dead_letters: DeadLetterSink,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self._spool = spool
        self._transport = transport
        self._dead_letters = dead_letters
        self._clock = clock
        self._now = now
        self._backoff = Backoff(config.retry, rng or random.Random())  # noqa: S311 - jitter, not crypto
        self._breaker = CircuitBreaker(config.breaker, clock)
        self._max_events = config.batch_max_events
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._arrived = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abort = threading.Event()
        # One helper thread for spool acks; at most one ack in flight (see the module doc).
        self._acker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-ack")
        self._ack_due: list[int] = []
        self._ack_in_flight: Future[None] | None = None
        self._evidence_wanted: EvidenceWantedHandler | None = None
        self._thread = threading.Thread(target=self._run, name="delivery-sender", daemon=True)
        self._thread.start()

    # -- producers ------------------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Spool one event; never raises for storage trouble (logged, counted) and never waits on the network.

        An event of another agent is a bug of the caller: ``ValueError`` (it would make central refuse
        the whole batch it lands in).
        """
        self._check_agent((event,))
        if self._closing.is_set():
            with self._lock:
                self._counters.refused_after_close += 1
            log.warning("delivery closed: event %s (%s) not spooled", event.event_id, event.kind)
            return
        try:
            self._spool.put([event])
        except Exception as error:  # the spool degrades by itself; the camera thread must go on
            with self._lock:
                self._counters.submit_errors += 1
                self._counters.last_error = f"spool put: {type(error).__name__}: {error}"
            log.exception("could not spool event %s (%s)", event.event_id, event.kind)
            return
        self._arrival(1)

    def submit_many(self, events: Sequence[Event], *, durable_only: bool = False) -> None:
        """Spool ``events`` in one transaction. Raises when they were not stored (the sensor path then
        does not acknowledge the MQTT message): ``DeliveryClosedError`` after close, or the spool's
        error (``SpoolUnavailableError`` with ``durable_only=True`` when the disk refuses the write)."""
        self._check_agent(events)
        if self._closing.is_set():
            raise DeliveryClosedError(f"delivery of agent {self.agent_id} is closed: {len(events)} events not stored")
        if not events:
            return
        self._spool.put(events, durable_only=durable_only)
        self._arrival(len(events))

    def set_evidence_wanted_handler(self, handler: EvidenceWantedHandler | None) -> None:
        """Who takes the evidence digests central's acks ask for (the agent's evidence store); None: nobody."""
        with self._lock:
            self._evidence_wanted = handler

    def stats(self) -> DeliveryStats:
        spool = self._spool.stats()
        with self._lock:
            counters = self._counters
            breaker = self._breaker.stats()
            oldest = _as_datetime(spool.oldest_pending_time)
            return DeliveryStats(
                submitted=counters.submitted,
                submit_errors=counters.submit_errors,
                refused_after_close=counters.refused_after_close,
                sent_events=counters.sent_events,
                sent_batches=counters.sent_batches,
                stored_events=counters.stored_events,
                duplicate_events=counters.duplicate_events,
                rejected_events=counters.rejected_events,
                refused_batches=counters.refused_batches,
                refused_events=counters.refused_events,
                split_batches=counters.split_batches,
                retries=counters.retries,
                dead_letter_errors=counters.dead_letter_errors,
                internal_errors=counters.internal_errors,
                breaker_state=breaker.state,
                breaker=breaker,
                last_error=counters.last_error,
                backlog_events=spool.pending_events + spool.leased_events,
                backlog_bytes=spool.pending_bytes,
                oldest_pending_age_s=None if oldest is None else max(0.0, (self._now() - oldest).total_seconds()),
                spool=spool,
                evidence_wanted=counters.evidence_wanted,
                evidence_wanted_unhandled=counters.evidence_wanted_unhandled,
            )

    def close(self, timeout: float = 10.0) -> DeliveryStats:
        """Stop taking events, send what the spool holds for up to ``timeout`` seconds, then stop.

        Unsent events stay in the spool (the caller owns it and closes it after this) for the next start.
        """
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._wake.set()
            self._thread.join(self.config.timeout_s + 1.0)
            if self._thread.is_alive():
                log.error("delivery sender still busy after close; its batch stays in the spool")
        self._acker.shutdown(wait=True)
        self._transport.close()
        stats = self.stats()
        log.info(
            "delivery closed: %d events sent, %d left in the spool for the next start",
            stats.sent_events,
            stats.backlog_events,
        )
        return stats

    def _check_agent(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.agent_id != self.agent_id:
                raise ValueError(
                    f"event {event.event_id} is from agent {event.agent_id!r}, this delivery is {self.agent_id!r}"
                )

    def _arrival(self, count: int) -> None:
        with self._lock:
            self._counters.submitted += count
            self._arrived += count
        self._wake.set()

    # -- the sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._hand_over_acks()
            self._wait_for_ack()

    def _loop(self) -> None:
        while not self._abort.is_set():
            try:
                if not self._step():
                    return
            except Exception as error:  # a bug or a broken spool: never let the sender die silently
                with self._lock:
                    self._counters.internal_errors += 1
                    self._counters.last_error = f"sender: {type(error).__name__}: {error}"
                log.exception("delivery sender failed; going on after a pause")
                self._abort.wait(self._backoff.next_delay())

    def _step(self) -> bool:
        """One batch (or one wait); False when closing and the spool has nothing left to send."""
        with self._lock:
            pause = self._breaker.wait_s()
            limit = self._breaker.batch_limit(self._max_events)
        if pause > 0:
            self._abort.wait(pause)
            return True
        if not self._closing.is_set():
            self._wait_for_batch(limit)
        batch = self._spool.lease(limit, self.config.batch_max_bytes, self.config.live_share)
        self._hand_over_acks()  # after the lease, so the two do not queue for the spool's lock
        if not batch:
            if self._closing.is_set():
                return False
            self._abort.wait(0.01)  # _wait_for_batch already waited for data; this only rules out a spin
            return True
        self._deliver(list(batch))
        return True

    def _wait_for_batch(self, limit: int) -> None:
        """Return once ``limit`` events wait, or ``flush_interval_s`` after the first of them arrived.

        The spool is asked once; arrivals after that are counted by ``submit`` (no query per event).
        The wake event is cleared BEFORE the counters are read, so an arrival is never missed.
        """
        with self._lock:
            seen = self._arrived
        waiting = self._spool.pending_events()
        if waiting >= limit:
            return
        self._hand_over_acks()  # about to wait: no reason to keep the last batch leased meanwhile
        if waiting == 0:  # nothing yet: the batch's clock starts with its first event
            self._wake.clear()
            with self._lock:
                arrived = self._arrived != seen
            if not arrived and not self._wake.wait(IDLE_WAIT_S):
                return
        deadline = self._clock() + self.config.flush_interval_s
        while not self._closing.is_set():
            self._wake.clear()
            with self._lock:
                total = waiting + self._arrived - seen
            remaining = deadline - self._clock()
            if total >= limit or remaining <= 0:
                return
            self._wake.wait(remaining)

    def _deliver(self, batch: list[SpooledEventView]) -> bool:
        """Send ``batch`` and settle it in the spool; False when it was released for a later retry."""
        try:
            outcome: SendOutcome = self._transport.send(self.agent_id, [event.payload for event in batch])
        except Exception as error:  # a transport must not raise; if one does, it is a failed try
            log.exception("transport raised while sending %d events", len(batch))
            outcome = Retry(f"transport error: {type(error).__name__}: {error}")
        if isinstance(outcome, Retry):
            self._retry_later(batch, outcome)
            return False
        with self._lock:
            self._breaker.success()
        self._backoff.reset()
        if isinstance(outcome, Acked):
            return self._settle(batch, outcome.ack)
        if isinstance(outcome, Refused):
            return self._refuse(batch, "refused_by_central", f"central refused the batch: {outcome.reason}")
        assert isinstance(outcome, TooLarge)
        return self._split(batch, outcome)

    def _retry_later(self, batch: list[SpooledEventView], outcome: Retry) -> None:
        self._spool.release(event.seq for event in batch)
        delay = self._backoff.next_delay(at_least_s=outcome.retry_after_s)
        with self._lock:
            self._breaker.failure()
            self._counters.retries += 1
            self._counters.last_error = outcome.reason
            state = self._breaker.state
        log.warning(
            "uplink: %s; %d events stay in the spool, next try in %.2f s (breaker %s)",
            outcome.reason,
            len(batch),
            delay,
            state,
        )
        self._abort.wait(delay)

    def _settle(self, batch: list[SpooledEventView], ack: BatchAck | None) -> bool:
        refused: dict[int, str] = {}
        if ack is not None:
            refused = {r.index: r.reason for r in ack.rejections if 0 <= r.index < len(batch)}
            if ack.rejected > len(refused):
                log.error(
                    "central refused %d events of a batch but named only %d; the others are in central's "
                    "dead letters only",
                    ack.rejected,
                    len(refused),
                )
        kept = True
        if refused:
            letters = [self._letter(batch[i], "refused_by_central", reason) for i, reason in sorted(refused.items())]
            kept = self._keep(letters)
        if kept:
            self._ack_due.extend(event.seq for event in batch)
        else:  # not kept locally: the refused ones stay in the spool (sent again later), the rest may go
            self._spool.ack(event.seq for i, event in enumerate(batch) if i not in refused)
            self._spool.release(batch[i].seq for i in refused)
        with self._lock:
            counters = self._counters
            counters.sent_events += len(batch) - (0 if kept else len(refused))
            counters.sent_batches += 1
            if ack is not None:
                counters.stored_events += ack.stored
                counters.duplicate_events += ack.duplicates
                counters.rejected_events += max(ack.rejected, len(refused)) if kept else 0
        if ack is not None and ack.evidence_wanted:
            self._hand_evidence_wanted(ack.evidence_wanted)
        if refused and kept:
            log.error(
                "central refused %d event(s) of a batch (kept in the dead-letter store, not resent): %s",
                len(refused),
                "; ".join(f"#{i}: {reason}" for i, reason in list(refused.items())[:3]),
            )
        return kept

    def _hand_evidence_wanted(self, digests: tuple[str, ...]) -> None:
        """Give central's evidence requests to the handler; a failure is counted, never fatal (central re-asks)."""
        with self._lock:
            handler = self._evidence_wanted
            self._counters.evidence_wanted += len(digests)
        if handler is None:
            with self._lock:
                self._counters.evidence_wanted_unhandled += len(digests)
            log.warning("central asked for %d evidence keyframes but this agent keeps none", len(digests))
            return
        try:
            handler(digests)
        except Exception as error:
            with self._lock:
                self._counters.evidence_wanted_unhandled += len(digests)
                self._counters.last_error = f"evidence request handler: {type(error).__name__}: {error}"
            log.exception("could not take %d evidence requests from central's ack", len(digests))

    def _refuse(self, batch: list[SpooledEventView], code: DeadLetterCode, reason: str) -> bool:
        """Keep the whole batch as dead letters, then let it leave the spool."""
        if not self._keep([self._letter(event, code, reason) for event in batch]):
            self._spool.release(event.seq for event in batch)
            return False
        self._spool.ack(event.seq for event in batch)
        with self._lock:
            self._counters.refused_batches += 1
            self._counters.refused_events += len(batch)
            self._counters.last_error = reason
        log.error("%s; %d events kept in the dead-letter store, not resent", reason, len(batch))
        return True

    def _split(self, batch: list[SpooledEventView], outcome: TooLarge) -> bool:
        if len(batch) == 1:
            return self._refuse(batch, "too_large", f"event too large for central even alone: {outcome.reason}")
        half = len(batch) // 2
        with self._lock:
            self._counters.split_batches += 1
            self._max_events = min(self._max_events, half)
        log.warning("%s: batch of %d events split; batches capped at %d events", outcome.reason, len(batch), half)
        if not self._deliver(batch[:half]):
            self._spool.release(event.seq for event in batch[half:])
            return False
        return self._deliver(batch[half:])

    def _hand_over_acks(self) -> None:
        """Give the delivered batches' acks to the helper thread (after the previous ack finished)."""
        if not self._ack_due:
            return
        self._wait_for_ack()
        seqs, self._ack_due = self._ack_due, []
        try:
            self._ack_in_flight = self._acker.submit(self._ack, seqs)
        except RuntimeError:  # the helper is shut down (a sender that outlived close): ack here
            self._ack(seqs)

    def _wait_for_ack(self) -> None:
        if self._ack_in_flight is not None:
            self._ack_in_flight.result()
            self._ack_in_flight = None

    def _ack(self, seqs: list[int]) -> None:
        """On the helper thread: let delivered events leave the spool; on failure they are sent again."""
        try:
            self._spool.ack(seqs)
        except Exception as error:
            with self._lock:
                self._counters.internal_errors += 1
                self._counters.last_error = f"spool ack: {type(error).__name__}: {error}"
            log.exception("could not ack %d delivered events in the spool; they will be sent again", len(seqs))
            try:
                self._spool.release(seqs)
            except Exception:
                log.exception("could not release them either; they are sent again after a restart")

    def _letter(self, event: SpooledEventView, code: DeadLetterCode, reason: str) -> DeadLetter:
        return DeadLetter(
            source="uplink",
            code=code,
            reason=f"event {event.event_id} ({event.kind}): {reason}",
            raw=event.payload,
            received_at=self._now(),
        )

    def _keep(self, letters: list[DeadLetter]) -> bool:
        try:
            self._dead_letters.keep_many(letters)
        except Exception as error:
            with self._lock:
                self._counters.dead_letter_errors += 1
                self._counters.last_error = f"dead-letter store: {type(error).__name__}: {error}"
            log.exception("could not keep %d refused events as dead letters; they stay in the spool", len(letters))
            self._abort.wait(self._backoff.next_delay())
            return False
        return True
