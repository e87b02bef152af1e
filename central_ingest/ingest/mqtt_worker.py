"""MQTT ingest worker: a shared subscription on the broker, acknowledged only after the commit.

Threads and queues: paho-mqtt 2.x (callback API 2, MQTT 5, ``manual_ack=True``) runs the network
in its own thread (``loop_start``). Its ``on_message`` hands each message to the event loop through
ONE bounded ``asyncio.Queue`` (``queue_size``); policy "block": when the queue is full the network
thread waits for room (counted in ``queue_waits``), so it stops reading and the broker, whose
inflight window (MQTT 5 Receive Maximum) is full of unacknowledged messages, stops sending. A
single consumer task on the event loop takes the messages in order, stores each through the same
``Ingestor`` as the HTTP route (see ``mqtt_handler``) and only then calls ``client.ack(mid, qos)``.

At-least-once, stored once: a worker killed between receipt and commit never acknowledged the
message, so the broker delivers it again (to this client id's session when it comes back,
``clean_start=False`` + ``session_expiry_s``); the idempotent storage makes a redelivery a no-op.
A message already waiting here that the broker re-sends (DUP, after a reconnect that kept the
session) is not queued twice. Acknowledgements from an older broker session are dropped, since
packet ids restart with a new session.

Replies to agents: a message published with MQTT 5 ResponseTopic + CorrelationData gets, AFTER its
batch is committed (or dead-lettered), the ``BatchAck`` JSON published at QoS 1 to that topic with
the same correlation data and the outcome in user property ``ioc-ack`` (see ``mqtt_handler``). The
agent drops the batch from its spool only on this reply, so a worker killed after the commit but
before the reply costs a resend that is stored as duplicates, never a loss. Counted in
``acks_published``; a response topic outside the sender's own acks topic gets no reply
(``acks_refused``).

Reconnects: paho reconnects by itself; before each wait ``on_disconnect``/``on_connect_fail`` set
the next delay from ``reconnect_backoff`` (exponential, full jitter, ceiling), so many workers
that lost the broker at once do not come back in lock step. Every (re)connect subscribes again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import signal
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from central_ingest.ingest.mqtt_config import MqttIngestConfig
from central_ingest.ingest.mqtt_handler import (
    ACK_OUTCOME_PROPERTY,
    BatchReply,
    MessageHandler,
    ReceivedMessage,
    reply_topic,
)
from central_ingest.ingest.mqtt_topics import shared_subscription
from central_ingest.ingest.pipeline import Ingestor
from central_ingest.mqtt_client import new_client
from central_ingest.plates.vault import vault_from_settings
from central_ingest.settings import Settings
from central_ingest.store.pool import open_pool
from ioc_common.backoff import Backoff
from ioc_common.mqtt_connection import set_next_reconnect_delay

log = logging.getLogger(__name__)

HANDOFF_POLL_S = 0.25
"""How often a network thread waiting for queue room checks whether the worker is stopping."""
STOP_JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MqttWorkerStats:
    """Counters of one worker since it started."""

    received: int
    """Messages handed to the queue (a DUP of a message still waiting here is not counted)."""
    stored_events: int
    duplicates: int
    rejected_events: int
    """Bad events inside good batches (dead-lettered one by one)."""
    refused_payloads: int
    """Whole messages dead-lettered: bad topic, too large, bad gzip, bad envelope, wrong agent."""
    failed_payloads: int
    """Messages dead-lettered after an unexpected error (also in refused_payloads)."""
    acked: int
    store_retries: int
    """Tries that failed because the database was unavailable (the message was kept)."""
    reconnects: int
    queue_waits: int
    """Times the network thread found the queue full and waited (backpressure)."""
    acks_published: int = 0
    """Replies (BatchAck) published to agents' response topics after the commit."""
    acks_refused: int = 0
    """Messages whose response topic was not the sender's own acks topic: no reply was published."""


class MqttIngestWorker:
    """One member of the shared subscription; ``start`` then ``run`` (or ``wait_ready``), ``stop``."""

    def __init__(self, config: MqttIngestConfig, ingestor: Ingestor, *, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()  # noqa: S311 (spreads retries, not cryptography)
        self._handler = MessageHandler(
            ingestor,
            topic_prefix=config.topic_prefix,
            max_payload_bytes=config.max_payload_bytes or ingestor.settings.max_body_bytes,
            retry_backoff=config.store_retry_backoff,
            rng=self._rng,
        )
        self._subscription = shared_subscription(config.topic_prefix, config.share_group)
        self._reconnect_backoff = Backoff(config.reconnect_backoff, self._rng)
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[ReceivedMessage] | None = None
        self._subscribed: asyncio.Event | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closing = threading.Event()
        self._intake_closed = False
        self._busy = False
        # Packet ids received and not yet acknowledged, in the current broker session (network thread + loop).
        self._pending_lock = threading.Lock()
        self._pending: set[int] = set()
        self._generation = 0
        self._connects = 0
        self._received = 0
        self._acked = 0
        self._queue_waits = 0
        self._acks_published = 0
        self._acks_refused = 0

    @property
    def subscription(self) -> str:
        return self._subscription

    def stats(self) -> MqttWorkerStats:
        counters = self._handler.counters
        return MqttWorkerStats(
            received=self._received,
            stored_events=counters.stored_events,
            duplicates=counters.duplicates,
            rejected_events=counters.rejected_events,
            refused_payloads=counters.refused_payloads,
            failed_payloads=counters.failed_payloads,
            acked=self._acked,
            store_retries=counters.store_retries,
            reconnects=max(0, self._connects - 1),
            queue_waits=self._queue_waits,
            acks_published=self._acks_published,
            acks_refused=self._acks_refused,
        )

    async def start(self) -> None:
        """Start the network thread and the consumer; returns at once (the broker may still be unreachable)."""
        if self._client is not None:
            return
        if self._intake_closed:
            raise RuntimeError("a stopped MQTT ingest worker cannot start again; make a new one")
        config = self._config
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=config.queue_size)
        self._subscribed = asyncio.Event()
        # Acknowledged only once the batch is committed (see the module doc).
        client = new_client(config, manual_ack=True)
        self._set_next_reconnect_delay(client)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = config.session_expiry_s
        properties.ReceiveMaximum = config.receive_maximum
        self._client = client
        self._consumer = asyncio.create_task(self._consume(), name=f"mqtt-ingest-{config.client_id}")
        # connect_async resolves and connects inside paho's thread: nothing here waits on the network.
        client.connect_async(
            config.host, config.port, keepalive=config.keepalive_s, clean_start=False, properties=properties
        )
        client.loop_start()

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the broker confirmed the subscription (``TimeoutError`` after ``timeout_s``)."""
        if self._subscribed is None:
            raise RuntimeError("start() the worker first")
        await asyncio.wait_for(self._subscribed.wait(), timeout_s)

    async def run(self) -> None:
        """Start if needed and consume until ``stop`` or cancellation (which stops the worker)."""
        await self.start()
        assert self._consumer is not None
        try:
            await asyncio.shield(self._consumer)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # run() itself was cancelled: stop gracefully
                await self.stop()
                raise
            # otherwise stop() ended the consumer: a normal end

    async def stop(self) -> None:
        """Unsubscribe, store what is queued (up to ``drain_timeout_s``), disconnect.

        Messages not finished by then stay unacknowledged in this client id's broker session
        and are delivered again when it reconnects.
        """
        client = self._client
        if client is None or self._intake_closed:
            return
        self._intake_closed = True
        client.unsubscribe(self._subscription)
        await self._drain(self._config.drain_timeout_s)  # the consumer still acknowledges what it finishes
        self._closing.set()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        self._client = None
        self._discard_queued()  # unblocks a network thread waiting for room
        client.disconnect()
        await asyncio.wait_for(asyncio.to_thread(client.loop_stop), STOP_JOIN_TIMEOUT_S)
        log.info("MQTT ingest worker %s stopped: %s", self._config.client_id, self.stats())

    async def _drain(self, timeout_s: float) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self._busy or not self._queue.empty()) and loop.time() < deadline:
            await asyncio.sleep(0.05)

    def _discard_queued(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            message = await self._queue.get()
            self._busy = True
            try:
                reply = await self._handler.handle(message)
                self._reply(message, reply)
                self._ack(message)
            finally:
                self._busy = False

    def _reply(self, message: ReceivedMessage, reply: BatchReply) -> None:
        """Publish central's answer to the agent that asked for one (after the commit: see the module doc)."""
        client = self._client
        if message.response_topic is None or client is None:
            return
        topic = reply_topic(self._config.topic_prefix, message)
        if topic is None:
            self._acks_refused += 1
            log.warning(
                "MQTT ingest: message on %r asks for a reply on %r, not its own acks topic; no reply",
                message.topic,
                message.response_topic,
            )
            return
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.CorrelationData = message.correlation_data
        properties.UserProperty = [(ACK_OUTCOME_PROPERTY, reply.outcome)]
        client.publish(topic, reply.body(), qos=1, retain=False, properties=properties)
        self._acks_published += 1

    def _ack(self, message: ReceivedMessage) -> None:
        client = self._client
        if message.qos == 0 or client is None:
            return
        with self._pending_lock:
            if message.generation != self._generation:
                return  # that session is gone: the packet id may name another message now
            self._pending.discard(message.mid)
        client.ack(message.mid, message.qos)
        self._acked += 1

    # --- paho callbacks: they run in paho's network thread -------------------------------------

    def _on_connect(
        self, client: Client, _userdata: Any, flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        config = self._config
        if reason.is_failure:
            log.warning("MQTT ingest: broker %s:%d refused the connection: %s", config.host, config.port, reason)
            return
        self._connects += 1
        self._reconnect_backoff.reset()
        with self._pending_lock:
            if not flags.session_present:
                # A new session: the broker forgot what it sent before, so older packet ids mean nothing.
                self._generation += 1
                self._pending.clear()
        log.info(
            "MQTT ingest: connected to %s:%d as %s (session resumed: %s)",
            config.host,
            config.port,
            config.client_id,
            flags.session_present,
        )
        if not self._intake_closed:
            client.subscribe(self._subscription, options=SubscribeOptions(qos=1))

    def _on_subscribe(
        self,
        _client: Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        failed = [reason for reason in reasons if reason.is_failure]
        if failed:
            log.error("MQTT ingest: broker refused the subscription %r: %s", self._subscription, failed)
            return
        if self._loop is not None and self._subscribed is not None:
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_disconnect(
        self,
        client: Client,
        _userdata: Any,
        _flags: DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if self._closing.is_set():
            return
        if self._loop is not None and self._subscribed is not None:
            self._loop.call_soon_threadsafe(self._subscribed.clear)
        delay = self._set_next_reconnect_delay(client)
        log.warning("MQTT ingest: disconnected (%s); reconnecting in %.1f s", reason, delay)

    def _on_connect_fail(self, client: Client, _userdata: Any) -> None:
        delay = self._set_next_reconnect_delay(client)
        log.warning("MQTT ingest: cannot reach %s:%d; next try in %.1f s", self._config.host, self._config.port, delay)

    def _set_next_reconnect_delay(self, client: Client) -> float:
        return set_next_reconnect_delay(client, self._reconnect_backoff)

    def _on_message(self, _client: Client, _userdata: Any, message: MQTTMessage) -> None:
        loop = self._loop
        if loop is None or self._closing.is_set():
            return  # not acknowledged: delivered again
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # paho's raw topic bytes: refused as off-scheme
        with self._pending_lock:
            if message.qos > 0:
                if message.mid in self._pending:
                    return  # a DUP of a message still waiting here; its first copy will be acknowledged
                self._pending.add(message.mid)
            generation = self._generation
        properties = message.properties
        response_topic = getattr(properties, "ResponseTopic", None) if properties is not None else None
        correlation = getattr(properties, "CorrelationData", None) if properties is not None else None
        received = ReceivedMessage(
            topic,
            bytes(message.payload),
            message.mid,
            message.qos,
            generation,
            response_topic=response_topic if isinstance(response_topic, str) else None,
            correlation_data=bytes(correlation) if isinstance(correlation, bytes | bytearray) else None,
        )
        try:
            handoff = asyncio.run_coroutine_threadsafe(self._enqueue(received), loop)
        except RuntimeError:  # the event loop is closed: the process is ending
            return
        # Policy "block": this thread waits for room, so the broker's inflight window fills and it stops sending.
        while not self._closing.is_set():
            try:
                handoff.result(timeout=HANDOFF_POLL_S)
                return
            except concurrent.futures.TimeoutError:
                continue
            except (concurrent.futures.CancelledError, RuntimeError):
                return
        handoff.cancel()

    async def _enqueue(self, message: ReceivedMessage) -> None:
        assert self._queue is not None
        if self._queue.full():
            self._queue_waits += 1
        await self._queue.put(message)
        self._received += 1


@contextlib.asynccontextmanager
async def mqtt_worker_running(config: MqttIngestConfig, ingestor: Ingestor) -> AsyncIterator[MqttIngestWorker]:
    """Run a worker alongside something else (e.g. inside the HTTP app's lifespan) and stop it after."""
    worker = MqttIngestWorker(config, ingestor)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


async def run_worker(settings: Settings, config: MqttIngestConfig, *, handle_sigterm: bool = True) -> None:
    """Entry point of ``central-ingest mqtt-worker``: its own pool, one worker, until cancelled or SIGTERM.

    Applies no migrations (the HTTP service or ``central-ingest migrate`` does). With
    ``handle_sigterm`` SIGTERM stops the worker gracefully (drain, then disconnect).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if handle_sigterm and task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    pool = open_pool(settings)
    await pool.open()
    try:
        worker = MqttIngestWorker(config, Ingestor(pool, settings, vault=vault_from_settings(settings)))
        log.info("MQTT ingest worker %s subscribing to %s", config.client_id, worker.subscription)
        await worker.run()
    finally:
        if handle_sigterm:
            loop.remove_signal_handler(signal.SIGTERM)
        await pool.close()
