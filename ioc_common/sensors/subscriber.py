"""The sensor subscriber: MQTT readings in, stored readings and dead letters out, acknowledged only after both.

Threads and the one queue: paho-mqtt 2.x (callback API 2, ``manual_ack=True``) runs the network
in its own thread (``loop_start``). Its ``on_message`` puts each message on ONE bounded
``queue.Queue`` (``queue_capacity``), policy "block": when the queue is full the network thread
waits for room (counted in ``queue_waits``), so it stops reading; the broker, whose inflight
window (MQTT 5 Receive Maximum) fills with unacknowledged messages, stops sending. That is the
back-pressure: nothing is dropped on this side, the broker keeps what waits.

One worker thread takes up to ``batch_max`` messages at a time, normalises each, calls
``sink.store`` ONCE for the readings of the whole batch and ``dead_letters.keep_many`` once for
its refused payloads, and only then acknowledges every message of the batch. One fsync per batch
instead of one per message is what lets a durable sink keep up with thousands of messages/s.

At-least-once: a reading is acknowledged only once stored, so an agent killed in between gets it
again from its persistent session (stable client id, clean_start=False / clean_session=False).
When the sink fails, nothing is acknowledged and the batch is tried again with backoff (a
ceiling, no give-up: ``store_retries`` counts the tries), so a full disk stalls intake instead of
losing readings. A message the broker re-sends (DUP) while its first copy still waits here is not
queued twice; acknowledgements from an older broker session are dropped, since packet ids
restart with a new session.

Reconnects: paho reconnects by itself; before each wait ``on_disconnect``/``on_connect_fail`` set
the next delay from ``reconnect_backoff`` (exponential, full jitter, ceiling). Every (re)connect
subscribes again to every topic of the normaliser.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from event_contract.sensors import SensorReadingEvent
from ioc_common.backoff import Backoff, BackoffConfig
from ioc_common.dead_letter import DeadLetter, DeadLetterCode, DeadLetterSink
from ioc_common.mqtt_connection import new_client, set_next_reconnect_delay
from ioc_common.sensors.broker import BrokerConfig, connect_async
from ioc_common.sensors.silence import SilenceChange, SilenceMonitor

log = logging.getLogger(__name__)

HANDOFF_POLL_S = 0.25
"""How often a network thread waiting for queue room checks whether the subscriber is stopping."""
WORKER_POLL_S = 0.1
"""How often the idle worker checks whether it should end."""
DEFAULT_STORE_RETRY = BackoffConfig(base_s=0.2, ceiling_s=30.0)


# --- what the subscriber needs from its neighbours --------------------------------------------


class Rejected(Protocol):
    """One refused payload (or part of it): ``ioc_common.sensors.normalise.Rejection``."""

    @property
    def code(self) -> DeadLetterCode: ...
    @property
    def reason(self) -> str: ...
    @property
    def sensor_id(self) -> str | None: ...


class Normalised(Protocol):
    """What one payload became: ``ioc_common.sensors.normalise.NormaliseResult``."""

    @property
    def events(self) -> Sequence[SensorReadingEvent]: ...
    @property
    def rejections(self) -> Sequence[Rejected]: ...


class Normaliser(Protocol):
    """Turns one MQTT payload into readings and rejections: ``ioc_common.sensors.normalise.SensorNormaliser``."""

    @property
    def topics(self) -> tuple[str, ...]: ...
    def normalise(self, topic: str, payload: bytes, received_at: dt.datetime) -> Normalised:
        """Never raises: every problem is a rejection."""
        ...


class ReadingSink(Protocol):
    """Stores readings durably (the agent's spool); ``store`` returns only once they are safe, else raises."""

    def store(self, events: Sequence[SensorReadingEvent]) -> None: ...


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberStats:
    """Counters since ``start``. Invariant: received == accepted_payloads + dead_lettered_payloads + in_progress."""

    received: int
    """Messages queued for the worker (a DUP whose first copy still waits here is not counted twice)."""
    accepted_payloads: int
    """Payloads that became readings with nothing refused."""
    readings: int
    """Readings handed to the sink and stored."""
    dead_lettered_payloads: int
    """Payloads with at least one rejection (their good readings are still stored)."""
    by_code: dict[str, int]
    """Rejections per dead-letter code (one payload may hold several)."""
    acked: int
    store_retries: int
    """Failed tries of the sink or the dead-letter store (the batch was kept and tried again)."""
    queue_waits: int
    """Times the network thread found the queue full and waited (back-pressure)."""
    connects: int
    disconnects: int
    duplicates_redelivered: int
    """Messages that came with the DUP flag: the broker re-sent them (after a reconnect)."""
    stale_acks_dropped: int
    """Acknowledgements not sent because the broker session they belonged to was gone."""
    connected: bool
    last_error: str | None
    in_progress: int
    """Received, not yet finished: queued, or in the worker's batch until stored (or dead-lettered) and acknowledged."""


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _InternalRejection:
    code: DeadLetterCode
    reason: str
    sensor_id: str | None = None


@dataclass(frozen=True, slots=True)
class _InternalResult:
    events: tuple[SensorReadingEvent, ...] = ()
    rejections: tuple[_InternalRejection, ...] = ()


@dataclass
class _Counters:
    received: int = 0
    accepted_payloads: int = 0
    readings: int = 0
    dead_lettered_payloads: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    acked: int = 0
    store_retries: int = 0
    queue_waits: int = 0
    connects: int = 0
    disconnects: int = 0
    duplicates_redelivered: int = 0
    stale_acks_dropped: int = 0
    connected: bool = False
    last_error: str | None = None
    in_progress: int = 0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


ClientFactory = Callable[[BrokerConfig, str], Client]


def _default_client(config: BrokerConfig, agent_id: str) -> Client:
    return new_client(config, agent_id=agent_id, manual_ack=True)


class SensorSubscriber:
    """Subscribes to the normaliser's topics on ``broker``; ``start()``, ``stop(timeout_s)``, ``stats()``.

    ``agent_id`` derives the default client id; ``silent_after_s`` (sensor id -> seconds) feeds the
    silence monitor behind ``silence_changes``. ``client_factory`` exists for tests.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        normaliser: Normaliser,
        sink: ReadingSink,
        dead_letters: DeadLetterSink,
        *,
        agent_id: str,
        silent_after_s: Mapping[str, float] | None = None,
        queue_capacity: int = 10_000,
        batch_max: int = 500,
        store_retry_backoff: BackoffConfig = DEFAULT_STORE_RETRY,
        clock: Callable[[], dt.datetime] = utc_now,
        rng: random.Random | None = None,
        client_factory: ClientFactory = _default_client,
    ) -> None:
        if queue_capacity < 1 or batch_max < 1:
            raise ValueError(f"queue_capacity ({queue_capacity}) and batch_max ({batch_max}) must be >= 1")
        self._broker = broker
        self._normaliser = normaliser
        self._sink = sink
        self._dead_letters = dead_letters
        self._agent_id = agent_id
        self._client_id = broker.client_id_for(agent_id)
        self._silent_after_s = dict(silent_after_s or {})
        self._batch_max = batch_max
        self._store_retry = store_retry_backoff
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (spreads retries, not cryptography)
        self._client_factory = client_factory
        self._topics = tuple(normaliser.topics)
        self._queue: queue.Queue[_Received] = queue.Queue(maxsize=queue_capacity)
        self._reconnect_backoff = Backoff(broker.reconnect_backoff, self._rng)
        self._client: Client | None = None
        self._worker: threading.Thread | None = None
        self._silence: SilenceMonitor | None = None
        self._silence_lock = threading.Lock()
        # Counters: written by both threads, read by anyone; the condition wakes stop() when the queue drains.
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._counters = _Counters()
        # Packet ids received and not yet acknowledged, in the current broker session.
        self._pending_lock = threading.Lock()
        self._pending: set[int] = set()
        self._generation = 0
        self._ready = threading.Event()
        self._intake_closed = threading.Event()
        self._worker_stop = threading.Event()
        self._stopped = False

    @property
    def client_id(self) -> str:
        return self._client_id

    def stats(self) -> SubscriberStats:
        with self._lock:
            c = self._counters
            return SubscriberStats(
                received=c.received,
                accepted_payloads=c.accepted_payloads,
                readings=c.readings,
                dead_lettered_payloads=c.dead_lettered_payloads,
                by_code=dict(c.by_code),
                acked=c.acked,
                store_retries=c.store_retries,
                queue_waits=c.queue_waits,
                connects=c.connects,
                disconnects=c.disconnects,
                duplicates_redelivered=c.duplicates_redelivered,
                stale_acks_dropped=c.stale_acks_dropped,
                connected=c.connected,
                last_error=c.last_error,
                in_progress=c.in_progress,
            )

    def silence_changes(self, now: dt.datetime) -> list[SilenceChange]:
        """Sensors that went silent or came back since the last call (each change once); [] before ``start``."""
        with self._silence_lock:
            return [] if self._silence is None else self._silence.check(now)

    def start(self) -> None:
        """Start the worker and the network thread; returns at once (the broker may still be unreachable)."""
        if self._stopped:
            raise RuntimeError("a stopped SensorSubscriber cannot start again; make a new one")
        if self._client is not None:
            return
        with self._silence_lock:
            self._silence = SilenceMonitor(self._silent_after_s, started_at=self._clock())
        client = self._client_factory(self._broker, self._agent_id)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._set_next_reconnect_delay(client)
        self._client = client
        self._worker = threading.Thread(target=self._run_worker, name=f"sensors-{self._client_id}", daemon=True)
        self._worker.start()
        connect_async(client, self._broker)
        client.loop_start()
        log.info(
            "sensor subscriber %s: connecting to %s:%d (MQTT %s) for %d topic filters",
            self._client_id,
            self._broker.host,
            self._broker.port,
            self._broker.protocol,
            len(self._topics),
        )

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until connected and every subscription confirmed; False after ``timeout_s``."""
        return self._ready.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking messages, store and acknowledge what is queued (up to ``timeout_s``), disconnect.

        What is not finished by then stays unacknowledged in the broker session and comes back on
        the next start with the same client id. The subscription is kept on purpose: the broker
        goes on queueing readings for this session while the agent is away.
        """
        client = self._client
        if client is None or self._stopped:
            return
        self._stopped = True
        self._intake_closed.set()
        deadline = time.monotonic() + timeout_s
        with self._drained:
            self._drained.wait_for(lambda: self._counters.in_progress == 0, timeout=max(0.0, timeout_s))
        self._worker_stop.set()
        if self._worker is not None:
            self._worker.join(max(0.1, deadline - time.monotonic()))
        client.disconnect()
        client.loop_stop()
        with self._lock:
            self._counters.connected = False
        self._ready.clear()
        log.info("sensor subscriber %s stopped: %s", self._client_id, self.stats())

    # --- the worker ---------------------------------------------------------------------------

    def _run_worker(self) -> None:
        while not self._worker_stop.is_set():  # what is still queued then stays unacknowledged: redelivered
            try:
                first = self._queue.get(timeout=WORKER_POLL_S)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                finished = self._finish(batch)
            except Exception as error:  # a bug here must not end intake; the batch stays unacknowledged
                log.exception("sensor subscriber %s: batch of %d messages failed", self._client_id, len(batch))
                with self._lock:
                    self._counters.last_error = f"internal error: {type(error).__name__}: {error}"
                continue
            if not finished:
                return  # stopping while the sink failed: the batch stays unacknowledged

    def _finish(self, batch: list[_Received]) -> bool:
        """Normalise, store, dead-letter, count, acknowledge; False when stopped before it was stored."""
        results = [self._normalise(item) for item in batch]
        events = [event for result in results for event in result.events]
        letters = [
            DeadLetter(
                source="mqtt",
                code=rejection.code,
                reason=rejection.reason,
                raw=item.payload,
                received_at=item.received_at,
                topic=item.topic,
                sensor_id=rejection.sensor_id,
            )
            for item, result in zip(batch, results, strict=True)
            for rejection in result.rejections
        ]
        if not self._store(events, letters, len(batch)):
            return False
        # Acknowledge before counting the batch finished, so "accounted for" (in_progress 0) implies acknowledged.
        for item in batch:
            self._ack(item)
        with self._lock:
            counters = self._counters
            for result in results:
                if result.rejections:
                    counters.dead_lettered_payloads += 1
                    counters.by_code.update(rejection.code for rejection in result.rejections)
                else:
                    counters.accepted_payloads += 1
            counters.readings += len(events)
            counters.in_progress -= len(batch)
            self._drained.notify_all()
        with self._silence_lock:
            if self._silence is not None:
                for item, result in zip(batch, results, strict=True):
                    for event in result.events:
                        self._silence.observe(event.source_id, item.received_at)
        return True

    def _normalise(self, item: _Received) -> Normalised:
        try:
            return self._normaliser.normalise(item.topic, item.payload, item.received_at)
        except Exception as error:  # the normaliser promises not to raise; if it does, keep the payload
            log.exception("sensor subscriber %s: normaliser failed on topic %r", self._client_id, item.topic)
            reason = f"normaliser failed: {type(error).__name__}: {error}"
            return _InternalResult(rejections=(_InternalRejection("internal_error", reason),))

    def _store(self, events: list[SensorReadingEvent], letters: list[DeadLetter], size: int) -> bool:
        """Store readings then dead letters, each once, retrying with backoff until both hold or ``stop``."""
        stored, kept = not events, not letters
        backoff = Backoff(self._store_retry, self._rng)
        while True:
            try:
                if not stored:
                    self._sink.store(events)
                    stored = True
                if not kept:
                    self._dead_letters.keep_many(letters)
                    kept = True
                return True
            except Exception as error:  # any failure means "not stored yet": keep the batch, try again
                delay = backoff.next_delay()
                what = "reading sink" if not stored else "dead-letter store"
                message = f"{what} failed: {type(error).__name__}: {error}"
                with self._lock:
                    self._counters.store_retries += 1
                    self._counters.last_error = message
                log.warning(
                    "sensor subscriber %s: %s; %d messages (%d readings, %d dead letters) kept, "
                    "not acknowledged; retry %d in %.1f s",
                    self._client_id,
                    message,
                    size,
                    len(events),
                    len(letters),
                    backoff.attempt,
                    delay,
                )
                if self._worker_stop.wait(delay):
                    return False

    def _ack(self, item: _Received) -> None:
        client = self._client
        if item.qos == 0 or client is None:
            return
        with self._pending_lock:
            if item.generation != self._generation:
                stale = True
            else:
                stale = False
                self._pending.discard(item.mid)
        if not stale:
            client.ack(item.mid, item.qos)
        with self._lock:
            if stale:
                self._counters.stale_acks_dropped += 1
            else:
                self._counters.acked += 1

    # --- paho callbacks: they run in paho's network thread -----------------------------------

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        if self._intake_closed.is_set():
            return  # not acknowledged: the broker delivers it again next time
        received_at = self._clock()
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # paho's raw topic bytes: the normaliser refuses it as unknown
        if message.dup:
            with self._lock:
                self._counters.duplicates_redelivered += 1
        with self._pending_lock:
            if message.qos > 0:
                if message.mid in self._pending:
                    return  # its first copy still waits here and will be acknowledged
                self._pending.add(message.mid)
            generation = self._generation
        item = _Received(topic, bytes(message.payload), message.mid, message.qos, generation, received_at)
        with self._lock:
            self._counters.received += 1
            self._counters.in_progress += 1
        if self._hand_over(item):
            return
        # Stopping while waiting for room: forget it; unacknowledged, it comes back on the next start.
        with self._pending_lock:
            if item.generation == self._generation:
                self._pending.discard(item.mid)
        with self._drained:
            self._counters.received -= 1
            self._counters.in_progress -= 1
            self._drained.notify_all()

    def _hand_over(self, item: _Received) -> bool:
        """Policy "block": wait for queue room (back-pressure to the broker); False when stopping."""
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            with self._lock:
                self._counters.queue_waits += 1
        while not self._intake_closed.is_set():
            try:
                self._queue.put(item, timeout=HANDOFF_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _on_connect(
        self, client: Client, _userdata: Any, flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        broker = self._broker
        if reason.is_failure:
            with self._lock:
                self._counters.last_error = f"broker refused the connection: {reason}"
            log.warning(
                "sensor subscriber %s: broker %s:%d refused the connection: %s (check username/password, client id)",
                self._client_id,
                broker.host,
                broker.port,
                reason,
            )
            return
        self._reconnect_backoff.reset()
        with self._pending_lock:
            if not flags.session_present:
                # A new session: the broker forgot what it sent before, so older packet ids mean nothing.
                self._generation += 1
                self._pending.clear()
        with self._lock:
            self._counters.connects += 1
            self._counters.connected = True
        log.info(
            "sensor subscriber %s: connected to %s:%d (session resumed: %s)",
            self._client_id,
            broker.host,
            broker.port,
            flags.session_present,
        )
        if not self._topics:
            self._ready.set()
        elif not self._intake_closed.is_set():
            subscriptions: list[tuple[str, int]] = [(topic, broker.qos) for topic in self._topics]
            client.subscribe(subscriptions)

    def _on_subscribe(
        self, _client: Client, _userdata: Any, _mid: int, reasons: list[ReasonCode], _props: Properties | None
    ) -> None:
        failed = [str(reason) for reason in reasons if reason.is_failure]
        if failed:
            message = f"broker refused subscriptions to {self._topics}: {failed}"
            with self._lock:
                self._counters.last_error = message
            log.error("sensor subscriber %s: %s (check the broker's ACL)", self._client_id, message)
            return
        self._ready.set()

    def _on_disconnect(
        self, client: Client, _userdata: Any, _flags: DisconnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        self._ready.clear()
        stopping = self._intake_closed.is_set()
        with self._lock:
            was_connected = self._counters.connected
            self._counters.connected = False
            if was_connected:
                self._counters.disconnects += 1
                if not stopping:
                    self._counters.last_error = f"disconnected: {reason}"
            elif self._counters.last_error is None:  # a refused CONNACK already said why
                self._counters.last_error = f"connection attempt failed: {reason}"
        if stopping:
            return
        delay = self._set_next_reconnect_delay(client)
        log.warning(
            "sensor subscriber %s: %s %s:%d (%s); reconnecting in %.1f s",
            self._client_id,
            "disconnected from" if was_connected else "could not connect to",
            self._broker.host,
            self._broker.port,
            reason,
            delay,
        )

    def _on_connect_fail(self, client: Client, _userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` block, so the cause (refused, DNS, TLS) is at hand.
        cause = sys.exc_info()[1]
        why = f"{type(cause).__name__}: {cause}" if cause is not None else "unknown cause"
        with self._lock:
            self._counters.last_error = f"cannot connect to {self._broker.host}:{self._broker.port}: {why}"
        delay = self._set_next_reconnect_delay(client)
        log.warning(
            "sensor subscriber %s: cannot connect to %s:%d (%s); next try in %.1f s",
            self._client_id,
            self._broker.host,
            self._broker.port,
            why,
            delay,
        )

    def _set_next_reconnect_delay(self, client: Client) -> float:
        return set_next_reconnect_delay(client, self._reconnect_backoff)
