"""Fuzzing through the real broker: >= 100,000 generated payloads, every one accounted for.

A seeded generator mixes valid readings with random bytes, truncated JSON, wrong types, impossible
values, duplicated and out-of-order times, unknown sensor ids, future times, oversized payloads and
foreign schemas. A few paho stations publish them at QoS 1 as fast as the broker takes them (each
sensor always from the same station, so its valid readings arrive in order). The subscriber must
not crash, must account for every message (accepted or dead-lettered, with its raw bytes), and
must store exactly the valid readings.

The second test measures (and reports, without a timing assertion) the subscriber's drain rate
into the real durable SQLite stores (the edge spool and the dead-letter store, fsync'd) against a
bare paho subscriber that only counts, both draining the same backlog the broker kept for them.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack.mosquitto import MosquittoBroker, MosquittoSettings
from edge_agent.delivery.dead_letters import DeadLetterConfig, DeadLetterStore
from edge_agent.delivery.spool import Spool, SpoolConfig
from event_contract.sensors import SensorReadingEvent
from tests.integration.test_sensor_mqtt import (
    WAIT_S,
    MemoryDeadLetters,
    MemorySink,
    Station,
    accounted,
    broker_config,
    eventually,
    reading_time,
    start_subscriber,
    unique,
    water,
    water_sensors,
)

pytestmark = pytest.mark.integration

TOTAL = 100_000
SEED = 20261126
SENSORS = 8
STATIONS = 4
MAX_PAYLOAD_BYTES = 4096
RATE_MESSAGES = 20_000

CATEGORY_WEIGHTS = {
    "valid": 40,
    "random_bytes": 8,
    "truncated_json": 8,
    "wrong_type": 8,
    "impossible_value": 8,
    "duplicate_time": 5,
    "out_of_order": 5,
    "unknown_sensor": 5,
    "future_time": 3,
    "foreign_shape": 6,
    "json_noise": 3,
    "too_large": 1,
}


@dataclass
class FuzzPlan:
    messages: list[tuple[int, bytes]] = field(default_factory=list)
    """(sensor index, payload): published on that sensor's topic by its station."""
    valid: set[tuple[str, dt.datetime]] = field(default_factory=set)
    bad: set[bytes] = field(default_factory=set)
    categories: dict[str, int] = field(default_factory=dict)


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _body(sensor_id: str, index: int, level: float) -> dict[str, Any]:
    return {
        "schema": "ioc.water_level/1",
        "sensor_id": sensor_id,
        "time": _stamp(reading_time(index)),
        "level": level,
        "unit": "m",
    }


def _bad(rng: random.Random, category: str, sensor_id: str, last: int | None) -> bytes:  # noqa: PLR0911
    """One payload of ``category`` that the normaliser must refuse."""
    index = (last or 0) + rng.randint(1, 3)
    body = _body(sensor_id, index, round(rng.uniform(0, 30), 3))
    if category == "random_bytes":
        return rng.randbytes(rng.randint(0, 300))
    if category == "truncated_json":
        text = json.dumps(body).encode()
        return text[: rng.randint(0, len(text) - 1)]
    if category == "wrong_type":
        key, value = rng.choice(
            [("level", str(body["level"])), ("level", True), ("level", [1.0]), ("time", 1_700_000_000),
             ("sensor_id", 7), ("unit", 5), ("level", None), ("time", "yesterday")]
        )  # fmt: skip
        return json.dumps({**body, key: value}).encode()
    if category == "impossible_value":
        return json.dumps({**body, "level": rng.choice([-500.0, -100.5, 1000.5, 1e9, -1e12])}).encode()
    if category == "duplicate_time" and last is not None:
        return json.dumps(_body(sensor_id, last, 1.0)).encode()
    if category == "out_of_order" and last is not None:
        return json.dumps(_body(sensor_id, last - rng.randint(1, 100), 1.0)).encode()
    if category == "unknown_sensor":
        return json.dumps({**body, "sensor_id": f"ghost-{rng.randint(0, 999)}"}).encode()
    if category == "future_time":
        ahead = reading_time(0) + dt.timedelta(days=rng.randint(2, 400))  # reading_time(0) is a day ago
        return json.dumps({**body, "time": _stamp(ahead)}).encode()
    if category == "foreign_shape":
        shapes: list[Any] = [
            {**body, "schema": "ioc.water_level/2"}, {**body, "unit": "furlong"}, {**body, "extra": 1},
            {k: v for k, v in body.items() if k != "time"}, {**body, "schema": "ioc.forest_fire/1"},
            {**body, "distance": 2.0}, [body], {"readings": [body]},
        ]  # fmt: skip
        return json.dumps(rng.choice(shapes)).encode()
    if category == "too_large":
        return json.dumps({**body, "pad": "x" * (MAX_PAYLOAD_BYTES + rng.randint(0, 2000))}).encode()
    # json_noise, and duplicate/out-of-order before any valid reading: valid JSON that is no reading at all
    return json.dumps(rng.choice([rng.random(), rng.randint(-9, 9), "level", None, {}, [], {"level": 4.1}])).encode()


def make_plan(total: int, seed: int) -> FuzzPlan:
    rng = random.Random(seed)
    plan = FuzzPlan()
    last: list[int | None] = [None] * SENSORS
    names, weights = zip(*CATEGORY_WEIGHTS.items(), strict=True)
    for _ in range(total):
        sensor = rng.randrange(SENSORS)
        sensor_id = f"s{sensor}"
        category = rng.choices(names, weights)[0]
        plan.categories[category] = plan.categories.get(category, 0) + 1
        if category == "valid":
            index = (last[sensor] or 0) + rng.randint(1, 3)
            last[sensor] = index
            plan.messages.append((sensor, json.dumps(_body(sensor_id, index, round(rng.uniform(-5, 50), 3))).encode()))
            plan.valid.add((sensor_id, reading_time(index)))
            continue
        payload = _bad(rng, category, sensor_id, last[sensor])
        plan.messages.append((sensor, payload))
        plan.bad.add(payload)
    return plan


@pytest.fixture(scope="module")
def roomy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A broker that queues without limit (mosquitto drops past 1,000 queued messages by default)."""
    broker = MosquittoBroker(tmp_path_factory.mktemp("fuzz"), MosquittoSettings(max_queued_messages=0))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_generator_covers_every_category_and_is_reproducible() -> None:
    plan, again = make_plan(5_000, SEED), make_plan(5_000, SEED)
    assert plan.messages == again.messages
    assert set(plan.categories) == set(CATEGORY_WEIGHTS)
    assert len(plan.messages) == sum(plan.categories.values()) == 5_000
    assert len(plan.valid) == plan.categories["valid"]  # valid times never repeat


def test_fuzzed_payloads_through_the_broker_are_all_accounted_for(roomy_broker: MosquittoBroker) -> None:
    plan = make_plan(TOTAL, SEED)
    root = unique("fuzz")
    sensors = water_sensors(root, SENSORS, reorder_window_s=0)  # the plan's out-of-order cases assume strict order
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    sub = start_subscriber(
        broker_config(roomy_broker),
        sensors,
        sink,
        dead_letters,
        agent_id=unique("agent"),
        max_payload_bytes=MAX_PAYLOAD_BYTES,
    )
    stations = [Station(roomy_broker, inflight=500) for _ in range(STATIONS)]
    try:
        for sensor, payload in plan.messages:
            stations[sensor % STATIONS].publish(f"{root}/s{sensor}", payload)
        for publisher in stations:
            publisher.wait_acked(90.0)
        eventually("every message received", lambda: sub.stats().received == TOTAL, 90.0)
        eventually("every message stored or dead-lettered", lambda: accounted(sub.stats()), 90.0)
        stats = sub.stats()
    finally:
        for publisher in stations:
            publisher.close()
        sub.stop(timeout_s=10.0)
    assert stats.received == stats.accepted_payloads + stats.dead_lettered_payloads == TOTAL
    assert stats.accepted_payloads == stats.readings == len(plan.valid)
    assert stats.dead_lettered_payloads == TOTAL - len(plan.valid)
    assert stats.acked == TOTAL
    assert "internal_error" not in stats.by_code, stats.by_code
    stored = [(event.source_id, event.time) for event in sink.events]
    assert len(stored) == len(set(stored)), "a reading was stored twice"
    assert set(stored) == plan.valid
    assert {letter.raw for letter in dead_letters.letters} == plan.bad
    assert all(letter.reason and letter.source == "mqtt" for letter in dead_letters.letters)


# --- measurement: the subscriber with durable stores against a bare paho subscriber --------------------


class SpoolSink:
    """The agent's sensor path into the spool: refuse (so the message is not acknowledged) unless on disk."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        self._spool.put(events, durable_only=True)


def _v5_session(broker: MosquittoBroker, client_id: str, *, manual_ack: bool = False) -> Client:
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(broker.username, broker.password)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 600
    properties.ReceiveMaximum = 1000
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    return client


def _bare_paho_drain_rate(broker: MosquittoBroker, topic_filter: str, publish: Any, count: int) -> float:
    """Messages/s of a paho subscriber that only counts (auto-acknowledged), draining a kept backlog."""
    client_id = unique("bare")
    subscribed = threading.Event()
    client = _v5_session(broker, client_id)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    assert subscribed.wait(WAIT_S)
    client.disconnect()
    client.loop_stop()
    publish()
    received = 0
    done = threading.Event()

    def on_message(_client: Client, _userdata: Any, _message: MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    started = time.perf_counter()
    client = _v5_session(broker, client_id)
    client.on_message = on_message
    client.loop_start()
    try:
        assert done.wait(90.0), f"bare subscriber got {received} of {count}"
        return count / (time.perf_counter() - started)
    finally:
        client.disconnect()
        client.loop_stop()


def test_subscriber_drain_rate_with_durable_stores_is_measured(
    roomy_broker: MosquittoBroker, tmp_path: Path, record_property: Any
) -> None:
    """Reports messages/s (no timing assertion); asserts every message reached the durable stores."""
    root = unique("rate")
    sensors = water_sensors(root, 4)
    bad_every = 10
    messages = [
        (f"{root}/s{i % 4}", b"not json" if i % bad_every == 0 else water(f"s{i % 4}", i // 4))
        for i in range(RATE_MESSAGES)
    ]
    bad = RATE_MESSAGES // bad_every

    def publish() -> None:
        publisher = Station(roomy_broker, inflight=500)
        try:
            for topic, payload in messages:
                publisher.publish(topic, payload)
            publisher.wait_acked(90.0)
        finally:
            publisher.close()

    baseline = _bare_paho_drain_rate(roomy_broker, f"{root}/#", publish, RATE_MESSAGES)

    agent = unique("agent")
    config = broker_config(roomy_broker)
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite"))
    letters = DeadLetterStore(DeadLetterConfig(path=tmp_path / "dead_letters.sqlite"))
    try:
        start_subscriber(config, sensors, SpoolSink(spool), letters, agent_id=agent).stop()  # the session exists
        publish()
        started = time.perf_counter()
        sub = start_subscriber(config, sensors, SpoolSink(spool), letters, agent_id=agent)
        try:
            eventually("the backlog drained", lambda: sub.stats().acked == RATE_MESSAGES, 90.0)
            elapsed = time.perf_counter() - started
            stats = sub.stats()
        finally:
            sub.stop()
        assert spool.stats().put_events == RATE_MESSAGES - bad
        assert letters.stats().kept == bad
    finally:
        spool.close()
        letters.close()
    rate = RATE_MESSAGES / elapsed
    assert (stats.readings, stats.dead_lettered_payloads) == (RATE_MESSAGES - bad, bad)
    record_property("bare_paho_msgs_per_s", round(baseline))
    record_property("subscriber_sqlite_msgs_per_s", round(rate))
    record_property("store_calls", stats.readings)
    print(  # shown with -s / -rP; the report quotes these
        f"\nsensor drain rate over {RATE_MESSAGES} messages: bare paho {baseline:.0f} msg/s, "
        f"SensorSubscriber -> Spool + DeadLetterStore (SQLite, fsync) {rate:.0f} msg/s ({rate / baseline:.0%})"
    )
