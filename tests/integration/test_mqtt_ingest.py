"""MQTT ingest against the real mosquitto broker and a real TimescaleDB.

Agents are played by a paho MQTT 5 client publishing at QoS 1. Every test uses its own agent
ids, share groups and client ids, and the module its own topic prefix, so tests (and the alert
sink tests sharing the broker) never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import json
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from central_ingest.ingest.mqtt_config import MqttIngestConfig
from central_ingest.ingest.mqtt_topics import agent_topic
from central_ingest.ingest.mqtt_worker import MqttIngestWorker, run_worker
from central_ingest.ingest.pipeline import Ingestor
from central_ingest.settings import Settings
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.pool import open_pool
from devstack.mosquitto import MosquittoBroker
from event_contract import CountBucket, CountIntervalEvent, EventBatch, HealthEvent
from ioc_common.backoff import BackoffConfig

pytestmark = pytest.mark.integration

PREFIX = f"test-{uuid.uuid4().hex[:8]}/ioc/v1"
WAIT_S = 30.0
# Recent times: clock sanity refuses events older than the retention window.
BASE = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=2)
FAST_RETRY = BackoffConfig(base_s=0.05, ceiling_s=0.2)


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


def _config(broker: MosquittoBroker, **overrides: Any) -> MqttIngestConfig:
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "topic_prefix": PREFIX,
        "share_group": _unique("group"),
        "client_id": _unique("worker"),
        "session_expiry_s": 120,
        "store_retry_backoff": FAST_RETRY,
        "reconnect_backoff": BackoffConfig(base_s=0.2, ceiling_s=1.0),
    }
    values.update(overrides)
    return MqttIngestConfig.model_validate(values)


def _settings(dsn: str, **overrides: Any) -> Settings:
    return Settings(database_url=dsn, pool_min_size=0, pool_max_size=4, migrate_on_start=False, **overrides)


@contextlib.asynccontextmanager
async def _running(
    settings: Settings, *configs: MqttIngestConfig, ready: bool = True
) -> AsyncIterator[list[MqttIngestWorker]]:
    """Workers sharing one pool, started (and subscribed unless ``ready`` is False), stopped after."""
    pool = open_pool(settings)
    await pool.open()
    workers = [MqttIngestWorker(config, Ingestor(pool, settings)) for config in configs]
    try:
        for worker in workers:
            await worker.start()
        if ready:
            for worker in workers:
                await worker.wait_ready(WAIT_S)
        yield workers
    finally:
        for worker in workers:
            await worker.stop()
        await pool.close()


async def _eventually(what: str, condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.05)


class Publisher:
    """An agent's MQTT 5 client: QoS 1, not retained, each publish waits for the broker's PUBACK."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._connected = threading.Event()
        self._client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=_unique("agent"),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.username_pw_set(broker.username, broker.password)
        self._client.on_connect = lambda *_args: self._connected.set()
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._connected.wait(WAIT_S), "the test publisher could not connect"

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=False)
        info.wait_for_publish(WAIT_S)
        assert info.is_published()

    async def publish_async(self, topic: str, payload: bytes) -> None:
        await asyncio.to_thread(self.publish, topic, payload)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def publisher(mqtt_broker: MosquittoBroker) -> Iterator[Publisher]:
    client = Publisher(mqtt_broker)
    try:
        yield client
    finally:
        client.close()


def _batch(agent_id: str, first_minute: int, intervals: int = 2, *, health: bool = True) -> bytes:
    """``intervals`` count intervals of 2 buckets each, plus one health event."""
    events: list[CountIntervalEvent | HealthEvent] = [
        CountIntervalEvent(
            agent_id=agent_id,
            source_id="cam-1",
            line_id="line-1",
            time=BASE + dt.timedelta(minutes=first_minute + i),
            interval_s=60,
            counts=(
                CountBucket(vehicle_class="car", direction="in", count=3),
                CountBucket(vehicle_class="motorbike", direction="out", count=7),
            ),
        )
        for i in range(intervals)
    ]
    if health:
        events.append(
            HealthEvent(
                agent_id=agent_id,
                source_id="cam-1",
                time=BASE + dt.timedelta(minutes=first_minute),
                state="live",
                frames_decoded=1500,
                fps=24.5,
            )
        )
    return EventBatch(agent_id=agent_id, events=tuple(events)).model_dump_json().encode()


def _rows(dsn: str, agent_id: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE agent_id = %s", (agent_id,)).fetchone()[0]  # type: ignore[index]
            for table in ("count_intervals", "line_counts", "health")
        }


def _dead_letters(dsn: str, agent_id: str | None, *, reason_like: str = "%") -> list[tuple[str, int | None, str]]:
    """(channel, position, reason) of an agent's dead letters (agent None: those without an agent)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT channel, position, reason FROM dead_letters "
            "WHERE agent_id IS NOT DISTINCT FROM %s AND reason LIKE %s ORDER BY id",
            (agent_id, reason_like),
        ).fetchall()
    return [(str(channel), position, str(reason)) for channel, position, reason in rows]


def test_published_batch_is_stored_and_acknowledged(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), _config(mqtt_broker)) as [worker]:
            await publisher.publish_async(agent_topic(PREFIX, agent), _batch(agent, 0))
            await _eventually("the batch acknowledged", lambda: worker.stats().acked == 1)
            return worker

    worker = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 2, "line_counts": 4, "health": 1}
    stats = worker.stats()
    assert (stats.received, stats.stored_events, stats.duplicates, stats.rejected_events) == (1, 3, 0, 0)
    assert (stats.refused_payloads, stats.store_retries, stats.reconnects) == (0, 0, 0)


def test_gzip_batch_is_stored(dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher) -> None:
    agent = _unique("agent")

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), _config(mqtt_broker)) as [worker]:
            await publisher.publish_async(agent_topic(PREFIX, agent), gzip.compress(_batch(agent, 0, 3)))
            await _eventually("the batch acknowledged", lambda: worker.stats().acked == 1)
            return worker

    worker = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 3, "line_counts": 6, "health": 1}
    assert worker.stats().stored_events == 4


def test_two_workers_of_one_share_group_split_the_load_and_store_each_event_once(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")
    group = _unique("group")
    configs = (_config(mqtt_broker, share_group=group), _config(mqtt_broker, share_group=group))

    async def scenario() -> list[MqttIngestWorker]:
        async with _running(_settings(dsn), *configs) as workers:
            for n in range(40):
                await publisher.publish_async(agent_topic(PREFIX, agent), _batch(agent, n, 1, health=False))
            await _eventually("40 batches acknowledged", lambda: sum(w.stats().acked for w in workers) == 40)
            return workers

    workers = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 40, "line_counts": 80, "health": 0}
    stats = [worker.stats() for worker in workers]
    assert sum(s.received for s in stats) == 40
    assert sum(s.stored_events for s in stats) == 40
    assert sum(s.duplicates for s in stats) == 0
    assert all(s.received >= 1 for s in stats), f"the broker did not split the load: {stats}"


def test_two_workers_receiving_the_same_message_store_it_once(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")
    # Different share groups: the broker gives EACH group a copy of every message.
    configs = (_config(mqtt_broker), _config(mqtt_broker))

    async def scenario() -> list[MqttIngestWorker]:
        async with _running(_settings(dsn), *configs) as workers:
            await publisher.publish_async(agent_topic(PREFIX, agent), _batch(agent, 0))
            await _eventually("both copies acknowledged", lambda: all(w.stats().acked == 1 for w in workers))
            return workers

    workers = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 2, "line_counts": 4, "health": 1}
    stats = [worker.stats() for worker in workers]
    assert [s.received for s in stats] == [1, 1]
    assert sorted((s.stored_events, s.duplicates) for s in stats) == [(0, 3), (3, 0)]


def test_the_same_message_published_three_times_is_stored_once(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")
    payload = _batch(agent, 0)

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), _config(mqtt_broker)) as [worker]:
            for _ in range(3):
                await publisher.publish_async(agent_topic(PREFIX, agent), payload)
            await _eventually("3 messages acknowledged", lambda: worker.stats().acked == 3)
            return worker

    worker = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 2, "line_counts": 4, "health": 1}
    stats = worker.stats()
    assert (stats.received, stats.stored_events, stats.duplicates) == (3, 3, 6)
    with psycopg.connect(dsn) as conn:
        totals = conn.execute(
            "SELECT batches, events_stored, events_duplicate FROM agent_ingest_stats WHERE agent_id = %s", (agent,)
        ).fetchone()
    assert totals == (3, 3, 6)


def test_bad_event_in_a_good_batch_is_dead_lettered_and_the_rest_stored(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")
    batch = json.loads(_batch(agent, 0, 3, health=False))
    batch["events"][1]["counts"][0]["count"] = -4

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), _config(mqtt_broker)) as [worker]:
            await publisher.publish_async(agent_topic(PREFIX, agent), json.dumps(batch).encode())
            await _eventually("the batch acknowledged", lambda: worker.stats().acked == 1)
            return worker

    worker = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 2, "line_counts": 4, "health": 0}
    [(channel, position, reason)] = _dead_letters(dsn, agent)
    assert (channel, position) == ("mqtt", 1)
    assert "counts.0.count" in reason
    stats = worker.stats()
    assert (stats.stored_events, stats.rejected_events, stats.refused_payloads) == (2, 1, 0)


def test_unreadable_messages_are_dead_lettered_acknowledged_and_the_worker_goes_on(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")
    other = _unique("other")
    bad_id = f"-{uuid.uuid4().hex[:8]}"  # matches the subscription's + but is no valid agent id
    messages = [
        (agent_topic(PREFIX, agent), b"this is not json"),
        (agent_topic(PREFIX, agent), _batch(other, 0)),  # a batch of another agent on this agent's topic
        (agent_topic(PREFIX, agent), b"\x1f\x8b\x08\x00 damaged gzip"),
        (agent_topic(PREFIX, bad_id), _batch(agent, 0)),
        (agent_topic(PREFIX, agent), _batch(agent, 10)),  # good: the worker must still be working
    ]

    config = _config(mqtt_broker)

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), config) as [worker]:
            for topic, payload in messages:
                await publisher.publish_async(topic, payload)
            await _eventually("5 messages acknowledged", lambda: worker.stats().acked == 5)
            return worker

    async def resume_session() -> MqttIngestWorker:
        # The broker re-sends unacknowledged messages first when a session resumes; receiving only
        # the new batch proves the 5 above were acknowledged to the broker, not just counted.
        async with _running(_settings(dsn), config) as [worker]:
            await publisher.publish_async(agent_topic(PREFIX, agent), _batch(agent, 20, 1, health=False))
            await _eventually("the new batch acknowledged", lambda: worker.stats().acked == 1)
            return worker

    worker = asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 2, "line_counts": 4, "health": 1}
    assert asyncio.run(resume_session()).stats().received == 1
    assert _rows(dsn, agent) == {"count_intervals": 3, "line_counts": 6, "health": 1}
    assert _rows(dsn, other) == {"count_intervals": 0, "line_counts": 0, "health": 0}
    letters = _dead_letters(dsn, agent)
    assert [(channel, position) for channel, position, _ in letters] == [("mqtt", None)] * 3
    assert letters[0][2].startswith("invalid batch")
    assert letters[1][2] == f"this sender is agent {agent!r}, not {other!r}"
    assert letters[2][2].startswith("gzip body is corrupt")
    [(channel, position, reason)] = _dead_letters(dsn, None, reason_like=f"%{bad_id}%")
    assert (channel, position) == ("mqtt", None)
    assert "is not a valid agent id" in reason
    stats = worker.stats()
    assert (stats.received, stats.refused_payloads, stats.stored_events, stats.failed_payloads) == (5, 4, 3, 0)


def test_message_is_not_acknowledged_while_the_database_is_down_and_is_stored_after(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    """A worker that cannot reach the database keeps its messages unacknowledged (the queue fills and
    the network thread waits); a worker resuming the same broker session with a working database
    gets them all again and stores them."""
    agent = _unique("agent")
    client_id = _unique("redeliver")
    group = _unique("group")
    down = _settings("postgresql://ioc@127.0.0.1:1/none?connect_timeout=1", pool_timeout_s=0.3)
    stuck = _config(mqtt_broker, client_id=client_id, share_group=group, queue_size=1, drain_timeout_s=0)
    batches = [_batch(agent, 10 * n) for n in range(5)]

    async def database_down() -> MqttIngestWorker:
        async with _running(down, stuck) as [worker]:
            for payload in batches:
                await publisher.publish_async(agent_topic(PREFIX, agent), payload)
            await _eventually(
                "retries and a full queue",
                lambda: worker.stats().store_retries >= 3 and worker.stats().queue_waits >= 1,
            )
            return worker

    first = asyncio.run(database_down())
    assert first.stats().acked == 0
    assert first.stats().stored_events == 0
    assert _rows(dsn, agent) == {"count_intervals": 0, "line_counts": 0, "health": 0}

    async def database_back() -> MqttIngestWorker:
        resumed = _config(mqtt_broker, client_id=client_id, share_group=group)
        async with _running(_settings(dsn), resumed, ready=False) as [worker]:
            await _eventually("all 5 redelivered and acknowledged", lambda: worker.stats().acked == 5)
            return worker

    second = asyncio.run(database_back())
    assert _rows(dsn, agent) == {"count_intervals": 10, "line_counts": 20, "health": 5}
    stats = second.stats()
    assert (stats.received, stats.stored_events, stats.duplicates, stats.store_retries) == (5, 15, 0, 0)


def test_run_worker_stores_until_sigterm(dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher) -> None:
    agent = _unique("agent")
    payload = _batch(agent, 0)

    async def scenario() -> None:
        task = asyncio.create_task(run_worker(_settings(dsn), _config(mqtt_broker)))
        # The worker subscribes in the background: publish (idempotently) until the batch is stored.
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while _rows(dsn, agent)["count_intervals"] == 0:
            assert asyncio.get_running_loop().time() < deadline, "run_worker never stored the batch"
            await publisher.publish_async(agent_topic(PREFIX, agent), payload)
            await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)  # run_worker's handler turns it into a graceful stop
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT_S)

    asyncio.run(scenario())
    assert _rows(dsn, agent) == {"count_intervals": 2, "line_counts": 4, "health": 1}


def test_stop_stores_and_acknowledges_what_the_worker_already_holds(
    dsn: str, mqtt_broker: MosquittoBroker, publisher: Publisher
) -> None:
    agent = _unique("agent")

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), _config(mqtt_broker)) as [worker]:
            for n in range(20):
                await publisher.publish_async(agent_topic(PREFIX, agent), _batch(agent, 5 * n, 5))
            # stop() right away: what is queued now is drained (stored, acknowledged) before disconnecting
        return worker

    worker = asyncio.run(scenario())
    stats = worker.stats()
    assert stats.received >= 1
    assert stats.acked == stats.received
    assert (stats.stored_events, stats.rejected_events) == (6 * stats.received, 0)
    assert _rows(dsn, agent)["health"] == stats.received


class AckListener:
    """An agent's MQTT 5 client that publishes with a response topic and collects central's replies."""

    def __init__(self, broker: MosquittoBroker, agent_id: str) -> None:
        self.acks_topic = f"{PREFIX}/agents/{agent_id}/acks/{_unique('client')}"
        self.replies: list[tuple[bytes, str, bytes]] = []  # (correlation data, ioc-ack outcome, body)
        subscribed = threading.Event()
        self._client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=_unique("agent"),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.username_pw_set(broker.username, broker.password)
        self._client.on_connect = lambda client, *_args: client.subscribe(self.acks_topic, qos=1)
        self._client.on_subscribe = lambda *_args: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert subscribed.wait(WAIT_S), "the test agent could not subscribe to its acks topic"

    def _on_message(self, _client: Client, _userdata: Any, message: Any) -> None:
        outcome = dict(message.properties.UserProperty)["ioc-ack"]
        self.replies.append((bytes(message.properties.CorrelationData), outcome, bytes(message.payload)))

    def publish(self, topic: str, payload: bytes, correlation: bytes, response_topic: str | None = None) -> None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = response_topic or self.acks_topic
        properties.CorrelationData = correlation
        self._client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(WAIT_S)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_central_replies_on_the_agents_acks_topic_after_the_commit(dsn: str, mqtt_broker: MosquittoBroker) -> None:
    agent = _unique("agent")
    listener = AckListener(mqtt_broker, agent)
    topic = agent_topic(PREFIX, agent)
    batch = _batch(agent, 0)

    async def scenario() -> MqttIngestWorker:
        async with _running(_settings(dsn), _config(mqtt_broker)) as [worker]:
            await asyncio.to_thread(listener.publish, topic, batch, b"first")
            await asyncio.to_thread(listener.publish, topic, batch, b"again")  # a resend after a lost ack
            await asyncio.to_thread(listener.publish, topic, b"not json", b"bad")
            # Central must never publish into another agent's (or any other) topic on request.
            elsewhere = f"{PREFIX}/agents/{_unique('victim')}/acks/x"
            await asyncio.to_thread(listener.publish, topic, _batch(agent, 10), b"foreign", elsewhere)
            await _eventually("4 messages acknowledged", lambda: worker.stats().acked == 4)
            await _eventually("3 replies received", lambda: len(listener.replies) == 3)
            return worker

    try:
        worker = asyncio.run(scenario())
    finally:
        listener.close()
    replies = {correlation: (outcome, json.loads(body)) for correlation, outcome, body in listener.replies}
    assert replies[b"first"] == (
        "stored",
        {"received": 3, "stored": 3, "duplicates": 0, "rejected": 0, "rejections": []},
    )
    assert replies[b"again"] == (
        "stored",
        {"received": 3, "stored": 0, "duplicates": 3, "rejected": 0, "rejections": []},
    )
    outcome, ack = replies[b"bad"]
    assert (outcome, ack["received"]) == ("refused", 0)
    assert ack["rejections"][0]["reason"].startswith("invalid batch")
    assert b"foreign" not in replies
    stats = worker.stats()
    assert (stats.acks_published, stats.acks_refused) == (3, 1)
    assert _rows(dsn, agent) == {"count_intervals": 4, "line_counts": 8, "health": 2}  # the foreign one is stored
