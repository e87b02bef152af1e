"""Delivery (spool -> sender thread -> transport) with a scripted transport.

Each test runs on the real SQLite spool and on ``MemorySpool``, a small in-memory version of the
same API (lease by priority, ``live_share`` of each priority's slots from the newest events, the
rest oldest-first) that other unit tests reuse and that can be made to fail.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_agent.delivery.circuit_breaker import BreakerConfig
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.sender import Delivery, DeliveryClosedError, SpoolPort
from edge_agent.delivery.spool import Spool, SpoolConfig
from edge_agent.delivery.transport import Acked, Refused, Retry, SendOutcome, TooLarge
from event_contract import BatchAck, CountIntervalEvent, Event, HealthEvent, Rejection
from ioc_common.backoff import BackoffConfig
from ioc_common.dead_letter import DeadLetter

AGENT = "agent-hue-01"
WAIT_S = 10.0
PRIORITY = {"health": 0, "count_interval": 1}
T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Spooled:
    seq: int
    event_id: str
    kind: str
    priority: int
    time: dt.datetime
    payload: bytes


@dataclass(frozen=True)
class MemoryStats:
    pending_events: int
    pending_bytes: int
    leased_events: int
    oldest_pending_time: dt.datetime | None
    dropped_events: int = 0


class MemorySpool:
    """The spool API in memory (thread-safe); ``fail_puts`` makes ``put`` raise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, Spooled] = {}
        self._leased: set[int] = set()
        self._seq = 0
        self.fail_puts = False
        self.fail_acks = 0
        self.acked: list[int] = []

    def put(self, events: Sequence[Event], *, durable_only: bool = False) -> int:
        if self.fail_puts:
            raise OSError("disk I/O error")
        with self._lock:
            for event in events:
                self._seq += 1
                self._rows[self._seq] = Spooled(
                    self._seq,
                    str(event.event_id),
                    event.kind,
                    PRIORITY[event.kind],
                    event.time,
                    event.model_dump_json().encode(),
                )
        return len(events)

    def lease(self, max_events: int, max_bytes: int, live_share: float = 0.25) -> list[Spooled]:
        with self._lock:
            free = [row for seq, row in sorted(self._rows.items()) if seq not in self._leased]
            chosen: list[Spooled] = []
            for priority in sorted({row.priority for row in free}):
                slots = max_events - len(chosen)
                if slots <= 0:
                    break
                rows = [row for row in free if row.priority == priority]
                if len(rows) <= slots:
                    chosen.extend(rows)
                    continue
                newest = int(slots * live_share)
                chosen.extend(rows[: slots - newest] + (rows[len(rows) - newest :] if newest else []))
            batch: list[Spooled] = []
            size = 0
            for row in chosen:
                if batch and size + len(row.payload) > max_bytes:
                    break
                batch.append(row)
                size += len(row.payload)
            self._leased.update(row.seq for row in batch)
            return batch

    def ack(self, seqs: Iterable[int]) -> None:
        if self.fail_acks > 0:
            self.fail_acks -= 1
            raise OSError("disk I/O error")
        with self._lock:
            for seq in seqs:
                self._rows.pop(seq, None)
                self._leased.discard(seq)
                self.acked.append(seq)

    def release(self, seqs: Iterable[int]) -> None:
        with self._lock:
            self._leased.difference_update(seqs)

    def pending_events(self) -> int:
        return self.stats().pending_events

    def stats(self) -> MemoryStats:
        with self._lock:
            pending = [row for row in self._rows.values()]
            return MemoryStats(
                pending_events=len(pending) - len(self._leased),
                pending_bytes=sum(len(row.payload) for row in pending),
                leased_events=len(self._leased),
                oldest_pending_time=min((row.time for row in pending), default=None),
            )

    def event_ids(self) -> set[str]:
        with self._lock:
            return {row.event_id for row in self._rows.values()}


def _ack_all(payloads: Sequence[bytes]) -> SendOutcome:
    return Acked(BatchAck(received=len(payloads), stored=len(payloads), duplicates=0))


@dataclass
class ScriptedTransport:
    """Answers each send with the next scripted outcome (or a function of the payloads); then acks all."""

    script: list[SendOutcome | Callable[[Sequence[bytes]], SendOutcome]] = field(default_factory=list)
    sent: list[list[str]] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, agent_id: str, payloads: Sequence[bytes]) -> SendOutcome:
        assert agent_id == AGENT
        with self.lock:
            self.sent.append([json.loads(payload)["event_id"] for payload in payloads])
            self.sent_at.append(time.monotonic())
            step = self.script.pop(0) if self.script else _ack_all
        return step(payloads) if callable(step) else step

    def close(self) -> None:
        self.closed = True

    def sizes(self) -> list[int]:
        with self.lock:
            return [len(batch) for batch in self.sent]


@dataclass
class MemoryDeadLetters:
    fail_times: int = 0
    letters: list[DeadLetter] = field(default_factory=list)

    def keep_many(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise OSError("database or disk is full")
        self.letters.extend(letters)


class ZeroJitter(random.Random):
    """Full jitter draws 0, so the only delay left is Retry-After (or the ceiling)."""

    def uniform(self, a: float, b: float) -> float:
        return a


def _config(**overrides: object) -> UplinkConfig:
    values: dict[str, object] = {
        "url": "http://central.invalid",
        "token": "t",
        "flush_interval_s": 0.05,
        "retry": BackoffConfig(base_s=0.01, ceiling_s=0.02),
        "breaker": BreakerConfig(failure_threshold=100),
    }
    values.update(overrides)
    return UplinkConfig.model_validate(values)


def count(minute: int) -> CountIntervalEvent:
    return CountIntervalEvent(
        agent_id=AGENT, source_id="cam-1", line_id="north", time=T0 + dt.timedelta(minutes=minute), interval_s=60
    )


def health(minute: int) -> HealthEvent:
    return HealthEvent(agent_id=AGENT, source_id="cam-1", time=T0 + dt.timedelta(minutes=minute), state="live")


@dataclass
class Harness:
    spool: SpoolPort
    transport: ScriptedTransport
    dead: MemoryDeadLetters

    def event_ids(self) -> set[str]:
        """Event ids still in the spool (leased or not)."""
        self.spool.release(range(1, 10_000))
        return {e.event_id for e in self.spool.lease(10_000, 1 << 30, 0.0)}

    def start(self, **config: object) -> Delivery:
        return Delivery(
            AGENT, _config(**config), self.spool, self.transport, dead_letters=self.dead, rng=random.Random(3)
        )


@pytest.fixture(params=["sqlite", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "memory":
        yield Harness(MemorySpool(), ScriptedTransport(), MemoryDeadLetters())
        return
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite"))
    try:
        yield Harness(spool, ScriptedTransport(), MemoryDeadLetters())
    finally:
        spool.close()


def eventually(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.005)


def test_every_event_is_sent_once_in_batches_and_leaves_the_spool(harness: Harness) -> None:
    events = [count(m) for m in range(7)]
    delivery = harness.start(batch_max_events=3)
    for event in events:
        delivery.submit(event)
    stats = delivery.close(timeout=5)

    sent = [event_id for batch in harness.transport.sent for event_id in batch]
    assert sorted(sent) == sorted(str(e.event_id) for e in events)
    assert max(harness.transport.sizes()) <= 3
    assert (stats.submitted, stats.sent_events, stats.stored_events, stats.backlog_events) == (7, 7, 7, 0)
    assert stats.sent_batches == len(harness.transport.sent)
    assert harness.event_ids() == set()
    assert harness.transport.closed


def test_live_events_go_first_and_a_backlog_drains_oldest_first_with_a_live_share(harness: Harness) -> None:
    backlog: list[Event] = [count(m) for m in range(20)]
    alerts: list[Event] = [health(100), health(101)]
    harness.spool.put(backlog + alerts)
    delivery = harness.start(batch_max_events=8, live_share=0.25)
    delivery.close(timeout=5)

    first = harness.transport.sent[0]
    assert first[:2] == [str(a.event_id) for a in alerts]  # priority 0 before the interval backlog
    # 6 slots left for priority 1: floor(6 * 0.25) = 1 of the newest, 5 of the oldest.
    assert set(first[2:]) == {str(e.event_id) for e in backlog[:5]} | {str(backlog[-1].event_id)}
    sent = [event_id for batch in harness.transport.sent for event_id in batch]
    assert sorted(sent) == sorted(str(e.event_id) for e in backlog + alerts)


def test_a_full_batch_goes_at_once_without_waiting_for_the_flush_interval(harness: Harness) -> None:
    delivery = harness.start(batch_max_events=10, flush_interval_s=60)
    for minute in range(10):
        delivery.submit(count(minute))
    eventually("the full batch sent", lambda: harness.transport.sizes() == [10])
    delivery.close(timeout=5)


def test_a_small_batch_waits_for_the_flush_interval_then_goes(harness: Harness) -> None:
    delivery = harness.start(batch_max_events=10, flush_interval_s=0.1)
    delivery.submit(count(0))
    delivery.submit(count(1))
    eventually("the partial batch sent", lambda: harness.transport.sizes() == [2])
    delivery.close(timeout=5)


def test_failed_sends_are_retried_with_the_same_events_honouring_retry_after() -> None:
    transport = ScriptedTransport(script=[Retry("HTTP 503: restarting"), Retry("HTTP 429: slow down", 0.3)])
    spool = MemorySpool()
    config = _config(retry=BackoffConfig(base_s=0.01, ceiling_s=5.0))
    delivery = Delivery(AGENT, config, spool, transport, dead_letters=MemoryDeadLetters(), rng=ZeroJitter())
    event = health(0)
    delivery.submit(event)
    stats = delivery.close(timeout=5)

    assert transport.sent == [[str(event.event_id)]] * 3
    assert transport.sent_at[2] - transport.sent_at[1] >= 0.3  # Retry-After honoured (jitter drew 0)
    assert (stats.retries, stats.sent_events, stats.backlog_events) == (2, 1, 0)
    assert "429" in stats.last_error
    assert stats.breaker_state == "closed"


def test_retry_after_is_capped_by_the_backoff_ceiling() -> None:
    transport = ScriptedTransport(script=[Retry("HTTP 429", retry_after_s=3600.0)])
    config = _config(retry=BackoffConfig(base_s=0.01, ceiling_s=0.05))
    delivery = Delivery(AGENT, config, MemorySpool(), transport, dead_letters=MemoryDeadLetters(), rng=ZeroJitter())
    delivery.submit(health(0))
    eventually("the retry sent", lambda: len(transport.sent) == 2)  # not an hour later
    delivery.close(timeout=5)


def test_the_breaker_opens_after_repeated_failures_then_probes_with_a_small_batch(harness: Harness) -> None:
    harness.transport.script = [Retry("ConnectError"), Retry("ConnectError")]
    harness.spool.put([count(m) for m in range(12)])
    breaker = BreakerConfig(
        failure_threshold=2, open_backoff=BackoffConfig(base_s=0.05, ceiling_s=0.05), probe_events=3
    )
    delivery = harness.start(batch_max_events=10, breaker=breaker)
    eventually("everything sent", lambda: sum(harness.transport.sizes()[2:]) == 12)
    stats = delivery.close(timeout=5)

    assert harness.transport.sizes() == [10, 10, 3, 9]  # fail, fail (opens), probe of 3, then full batches
    assert stats.breaker.transitions == {"closed->open": 1, "open->half_open": 1, "half_open->closed": 1}
    assert stats.breaker_state == "closed"
    assert (stats.retries, stats.sent_events) == (2, 12)


def test_a_too_large_batch_is_halved_and_later_batches_stay_small(harness: Harness) -> None:
    harness.transport.script = [TooLarge("HTTP 413: body exceeds the limit")]
    harness.spool.put([count(m) for m in range(8)])
    delivery = harness.start(batch_max_events=8)
    stats = delivery.close(timeout=5)

    assert harness.transport.sizes() == [8, 4, 4]
    assert (stats.split_batches, stats.sent_events, stats.refused_events) == (1, 8, 0)


def test_a_single_event_too_large_for_central_is_dead_lettered(harness: Harness) -> None:
    harness.transport.script = [TooLarge("HTTP 413"), TooLarge("HTTP 413"), TooLarge("HTTP 413")]
    harness.spool.put([count(0), count(1)])
    stats = harness.start(batch_max_events=2).close(timeout=5)

    assert harness.transport.sizes() == [2, 1, 1]
    assert [letter.code for letter in harness.dead.letters] == ["too_large", "too_large"]
    assert (stats.refused_events, stats.backlog_events) == (2, 0)


def test_a_refused_batch_is_kept_as_dead_letters_and_never_resent(harness: Harness) -> None:
    harness.transport.script = [Refused('HTTP 422: {"detail": "events.0.line_id invalid"}')]
    events = [count(0), count(1)]
    harness.spool.put(events)
    stats = harness.start(batch_max_events=10).close(timeout=5)

    assert harness.transport.sizes() == [2]
    assert [(d.source, d.code) for d in harness.dead.letters] == [("uplink", "refused_by_central")] * 2
    assert [d.raw for d in harness.dead.letters] == [e.model_dump_json().encode() for e in events]
    assert all(
        "line_id invalid" in d.reason and str(e.event_id) in d.reason
        for d, e in zip(harness.dead.letters, events, strict=True)
    )
    assert (stats.refused_batches, stats.refused_events, stats.sent_events, stats.backlog_events) == (1, 2, 0, 0)
    assert "line_id invalid" in stats.last_error


def test_events_central_rejects_one_by_one_are_dead_lettered_the_rest_acked(harness: Harness) -> None:
    ack = BatchAck(received=3, stored=2, duplicates=0, rejected=1, rejections=(Rejection(index=1, reason="count < 0"),))
    harness.transport.script = [Acked(ack)]
    events = [count(0), count(1), count(2)]
    harness.spool.put(events)
    stats = harness.start(batch_max_events=10).close(timeout=5)

    [letter] = harness.dead.letters
    assert letter.raw == events[1].model_dump_json().encode()
    assert "count < 0" in letter.reason
    assert (stats.sent_events, stats.stored_events, stats.rejected_events, stats.backlog_events) == (3, 2, 1, 0)
    assert harness.transport.sizes() == [3]  # never resent


def test_when_the_dead_letter_store_fails_the_refused_events_stay_in_the_spool(harness: Harness) -> None:
    harness.dead.fail_times = 1
    harness.transport.script = [Refused("HTTP 422: bad"), Refused("HTTP 422: bad")]
    harness.spool.put([count(0)])
    stats = harness.start().close(timeout=5)

    assert harness.transport.sizes() == [1, 1]  # kept only on the second answer
    assert len(harness.dead.letters) == 1
    assert (stats.dead_letter_errors, stats.refused_events, stats.backlog_events) == (1, 1, 0)


def test_close_leaves_what_was_not_delivered_in_the_spool(harness: Harness) -> None:
    harness.transport.script = [Retry("ConnectError")] * 1000
    events = [count(m) for m in range(5)]
    delivery = harness.start(batch_max_events=2)
    for event in events:
        delivery.submit(event)
    stats = delivery.close(timeout=0.2)

    assert stats.sent_events == 0
    assert stats.backlog_events == 5  # released, pending again for the next start
    assert harness.event_ids() == {str(e.event_id) for e in events}
    assert stats.spool.leased_events == 0
    assert stats.oldest_pending_age_s is not None
    assert stats.oldest_pending_age_s > 0


def test_submit_never_raises_when_the_spool_fails_but_submit_many_does() -> None:
    spool = MemorySpool()
    harness = Harness(spool, ScriptedTransport(), MemoryDeadLetters())
    delivery = harness.start()
    spool.fail_puts = True
    delivery.submit(count(0))
    with pytest.raises(OSError, match="disk I/O"):
        delivery.submit_many([count(1)], durable_only=True)
    stats = delivery.close(timeout=1)
    assert (stats.submit_errors, stats.submitted) == (1, 0)
    assert "disk I/O error" in stats.last_error


def test_after_close_submit_is_counted_and_submit_many_raises(harness: Harness) -> None:
    delivery = harness.start()
    delivery.close(timeout=1)
    delivery.submit(count(0))
    with pytest.raises(DeliveryClosedError):
        delivery.submit_many([count(1)])
    assert delivery.stats().refused_after_close == 1
    assert harness.event_ids() == set()


def test_events_of_another_agent_are_refused(harness: Harness) -> None:
    delivery = harness.start()
    stranger = CountIntervalEvent(agent_id="other", source_id="c", line_id="l", time=T0, interval_s=60)
    with pytest.raises(ValueError, match="other"):
        delivery.submit(stranger)
    with pytest.raises(ValueError, match="other"):
        delivery.submit_many([count(0), stranger])
    delivery.close(timeout=1)
    assert harness.event_ids() == set()


def test_a_failed_spool_ack_sends_the_batch_again_instead_of_losing_or_stranding_it() -> None:
    spool = MemorySpool()
    spool.fail_acks = 1
    harness = Harness(spool, ScriptedTransport(), MemoryDeadLetters())
    spool.put([count(0), count(1)])
    delivery = harness.start()
    eventually("the batch sent again", lambda: harness.transport.sizes() == [2, 2])  # released after the failed ack
    stats = delivery.close(timeout=5)

    assert (stats.internal_errors, stats.backlog_events) == (1, 0)
    assert "spool ack" in stats.last_error
