"""The sensor subscriber against the real mosquitto: readings in, dead letters, sessions, logins, TLS.

Stations are played by paho clients publishing the ``ioc.water_level/1`` payload at QoS 1; the
subscriber runs the real ``SensorNormaliser`` into in-memory stores. Every test has its own agent id
(so its own client id and session) and its own topics, so tests never see each other's messages.
The helpers here are shared with the broker-restart and fuzz modules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack.mosquitto import MosquittoBroker, MosquittoSettings, MosquittoTls
from event_contract.sensors import SensorReadingEvent
from ioc_common.backoff import BackoffConfig
from ioc_common.dead_letter import DeadLetter, DeadLetterSink
from ioc_common.mqtt_connection import BrokerTls
from ioc_common.sensors.broker import BrokerConfig
from ioc_common.sensors.config import SensorConfig
from ioc_common.sensors.normalise import SensorNormaliser
from ioc_common.sensors.subscriber import ReadingSink, SensorSubscriber, SubscriberStats

pytestmark = pytest.mark.integration

WAIT_S = 30.0
RUN = uuid.uuid4().hex[:8]
# Readings are dated in the past: the normaliser refuses times ahead of the receive clock.
BASE = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
FAST_RECONNECT = BackoffConfig(base_s=0.05, ceiling_s=0.5)
FAST_RETRY = BackoffConfig(base_s=0.01, ceiling_s=0.1)
Protocol = str


# --- helpers (shared with test_sensor_broker_restart and test_sensor_fuzz_broker) ------------------


def unique(name: str) -> str:
    return f"{name}-{RUN}-{uuid.uuid4().hex[:6]}"


def reading_time(index: int) -> dt.datetime:
    return BASE + dt.timedelta(seconds=index)


def water(sensor_id: str, index: int, level: float = 4.12) -> bytes:
    """A station's native payload for reading number ``index`` (one second apart)."""
    stamp = reading_time(index).isoformat().replace("+00:00", "Z")
    body = {"schema": "ioc.water_level/1", "sensor_id": sensor_id, "time": stamp, "level": level, "unit": "m"}
    return json.dumps(body).encode()


def water_sensors(topic_root: str, count: int, *, reorder_window_s: float = 300.0) -> tuple[SensorConfig, ...]:
    """Sensors ``s0..`` each on its own topic ``{topic_root}/s<i>``."""
    return tuple(
        SensorConfig(id=f"s{i}", kind="water_level", topic=f"{topic_root}/s{i}", reorder_window_s=reorder_window_s)
        for i in range(count)
    )


class MemorySink:
    """The agent's spool stand-in: keeps every stored reading (duplicates too, to count them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[SensorReadingEvent] = []
        self.calls = 0

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        with self._lock:
            self.events.extend(events)
            self.calls += 1

    def times(self, sensor_id: str) -> list[dt.datetime]:
        with self._lock:
            return [event.time for event in self.events if event.source_id == sensor_id]

    def count(self) -> int:
        with self._lock:
            return len(self.events)


class MemoryDeadLetters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.letters: list[DeadLetter] = []

    def keep_many(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self.letters.extend(letters)


def eventually(what: str, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.01)


def broker_config(broker: MosquittoBroker, protocol: Protocol = "5", **overrides: Any) -> BrokerConfig:
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "protocol": protocol,
        "session_expiry_s": 600,
        "reconnect_backoff": FAST_RECONNECT,
    }
    values.update(overrides)
    return BrokerConfig.model_validate(values)


class Station:
    """A publisher (one or many stations) at QoS 1; counts the broker's PUBACKs.

    ``persistent``: a fixed client id and a kept session, and paho re-sends what the broker has not
    acknowledged when it reconnects (what a station's own MQTT stack does across a broker restart).
    """

    def __init__(
        self, broker: MosquittoBroker, *, protocol: Protocol = "5", persistent: bool = False, inflight: int = 100
    ) -> None:
        v5 = protocol == "5"
        self._client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=unique("station"),
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else not persistent,
        )
        self._client.username_pw_set(broker.username, broker.password)
        self._client.max_inflight_messages_set(inflight)
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self.published = 0
        self.acked = 0
        self._connected = threading.Event()
        self._client.on_connect = lambda *_args: self._connected.set()
        self._client.on_disconnect = lambda *_args: self._connected.clear()
        self._client.on_publish = self._on_publish
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 600 if persistent else 0
            self._client.connect(broker.host, broker.port, clean_start=not persistent, properties=properties)
        else:
            self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._connected.wait(WAIT_S), "the station could not connect"

    def _on_publish(self, *_args: Any) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.published += 1
        self._client.publish(topic, payload, qos=1)

    def wait_acked(self, timeout_s: float = WAIT_S) -> None:
        eventually(
            f"the broker acknowledged {self.published} publishes", lambda: self.acked >= self.published, timeout_s
        )

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextlib.contextmanager
def station(broker: MosquittoBroker, **kwargs: Any) -> Iterator[Station]:
    made = Station(broker, **kwargs)
    try:
        yield made
    finally:
        made.close()


def start_subscriber(
    config: BrokerConfig,
    sensors: Sequence[SensorConfig],
    sink: ReadingSink,
    dead_letters: DeadLetterSink,
    *,
    agent_id: str,
    ready: bool = True,
    max_payload_bytes: int = 65_536,
    **kwargs: Any,
) -> SensorSubscriber:
    """A started subscriber with the real normaliser, subscribed unless ``ready`` is False."""
    made = SensorSubscriber(
        config,
        SensorNormaliser(agent_id, sensors, max_payload_bytes=max_payload_bytes),
        sink,
        dead_letters,
        agent_id=agent_id,
        store_retry_backoff=FAST_RETRY,
        **kwargs,
    )
    made.start()
    if ready and not made.wait_ready(WAIT_S):
        made.stop(timeout_s=1.0)
        raise AssertionError(f"not subscribed within {WAIT_S} s: {made.stats()}")
    return made


@contextlib.contextmanager
def subscriber(
    config: BrokerConfig,
    sensors: Sequence[SensorConfig],
    sink: ReadingSink,
    dead_letters: DeadLetterSink,
    *,
    agent_id: str,
    ready: bool = True,
    **kwargs: Any,
) -> Iterator[SensorSubscriber]:
    """``start_subscriber`` for the block, stopped after it."""
    made = start_subscriber(config, sensors, sink, dead_letters, agent_id=agent_id, ready=ready, **kwargs)
    try:
        yield made
    finally:
        made.stop(timeout_s=10.0)


def accounted(stats: SubscriberStats) -> bool:
    return stats.in_progress == 0 and stats.received == stats.accepted_payloads + stats.dead_lettered_payloads


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_arrive_once_each_and_bad_payloads_are_dead_lettered(
    mqtt_broker: MosquittoBroker, protocol: Protocol
) -> None:
    root = unique("sensors")
    sensors = water_sensors(root, 2)
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    bad = {
        b"{not json": "not_json",
        water("s0", 1000, level=-500.0): "impossible_value",
        water("ghost", 5): "unknown_sensor",
        json.dumps({"schema": "ioc.water_level/1", "sensor_id": "s0", "time": 5, "level": 1}).encode(): "bad_time",
    }
    agent = unique("agent")
    with (
        subscriber(broker_config(mqtt_broker, protocol), sensors, sink, dead_letters, agent_id=agent) as sub,
        station(mqtt_broker, protocol=protocol) as publisher,
    ):
        for index in range(40):
            if index % 10 == 0:
                for payload in bad:  # bad payloads between the good ones, on a good sensor's topic
                    publisher.publish(f"{root}/s0", payload)
            publisher.publish(f"{root}/s0", water("s0", index))
            publisher.publish(f"{root}/s1", water("s1", index))
        publisher.wait_acked()
        eventually("every message accounted for", lambda: sub.stats().received == publisher.published)
        eventually("every message stored or dead-lettered", lambda: accounted(sub.stats()))
        stats = sub.stats()
    expected = [reading_time(index) for index in range(40)]
    assert sink.times("s0") == expected
    assert sink.times("s1") == expected
    assert {event.agent_id for event in sink.events} == {agent}
    assert (stats.accepted_payloads, stats.dead_lettered_payloads, stats.readings) == (80, 16, 80)
    assert stats.acked == stats.received == 96
    assert stats.by_code == {"not_json": 4, "impossible_value": 4, "unknown_sensor": 4, "bad_time": 4}
    by_raw = {letter.raw: letter for letter in dead_letters.letters}
    assert {raw: letter.code for raw, letter in by_raw.items()} == bad
    assert all(letter.topic == f"{root}/s0" and letter.reason for letter in dead_letters.letters)
    assert "-500" in by_raw[water("s0", 1000, level=-500.0)].reason
    assert (stats.connects, stats.disconnects, stats.duplicates_redelivered) == (1, 0, 0)


def test_a_wrong_password_is_refused_and_reported(mqtt_broker: MosquittoBroker) -> None:
    config = broker_config(mqtt_broker, password="not-the-password")
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    with subscriber(
        config, water_sensors(unique("sensors"), 1), sink, dead_letters, agent_id=unique("a"), ready=False
    ) as sub:
        eventually("the refusal is reported", lambda: sub.stats().last_error is not None)
        stats = sub.stats()
        assert not sub.wait_ready(0.0)
    assert (stats.connects, stats.connected) == (0, False)
    assert stats.last_error is not None
    assert "refused" in stats.last_error


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_agent_away_while_the_station_publishes_loses_nothing(
    mqtt_broker: MosquittoBroker, protocol: Protocol
) -> None:
    """Stopped mid-stream, restarted with the same client id: the broker kept its QoS 1 readings."""
    root = unique("sensors")
    sensors = water_sensors(root, 1)
    config = broker_config(mqtt_broker, protocol)
    agent = unique("agent")
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    total = 300
    with station(mqtt_broker, protocol=protocol) as publisher:
        first = start_subscriber(config, sensors, sink, dead_letters, agent_id=agent)
        for index in range(total):
            publisher.publish(f"{root}/s0", water("s0", index))
            if index == 100:
                eventually("some readings stored", lambda: sink.count() > 50)
                first.stop(timeout_s=10.0)  # the agent goes away while the station keeps publishing
            time.sleep(0.0005)
        publisher.wait_acked()
        stored_while_away = sink.count()
        with subscriber(config, sensors, sink, dead_letters, agent_id=agent) as again:
            assert again.client_id == first.client_id
            eventually("every reading stored", lambda: len(set(sink.times("s0"))) == total)
            eventually("all acknowledged", lambda: accounted(again.stats()))
            second = again.stats()
    first_stats = first.stats()
    assert stored_while_away < total
    assert first_stats.acked == first_stats.received  # a graceful stop acknowledges all it stored
    assert second.received == total - first_stats.received
    # Exactly once: what the first run stored it acknowledged, so the broker kept only the rest.
    assert sink.times("s0") == [reading_time(index) for index in range(total)]
    assert dead_letters.letters == []


# --- TLS with client certificates ------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed: {done.stderr}"


def _make_certificates(folder: Path) -> None:
    """A CA, a server certificate for ``localhost`` (not for 127.0.0.1) and a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=IOC test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (folder / f"{name}.ext").write_text(extension + "\n")
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=ioc-{name}", cwd=folder)
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=folder,
        )  # fmt: skip


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MosquittoBroker, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    _make_certificates(folder)
    tls = MosquittoTls(ca_file=folder / "ca.pem", cert_file=folder / "server.pem", key_file=folder / "server.key")
    broker = MosquittoBroker(folder / "state", MosquittoSettings(tls=tls))
    broker.start()
    try:
        yield broker, folder
    finally:
        broker.stop()


def test_tls_broker_refuses_an_agent_without_a_client_certificate(tls_broker: tuple[MosquittoBroker, Path]) -> None:
    broker, certs = tls_broker
    config = broker_config(broker, host="localhost", port=broker.tls_port, tls=BrokerTls(ca_file=certs / "ca.pem"))
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    with subscriber(config, water_sensors("tls/none", 1), sink, dead_letters, agent_id=unique("a"), ready=False) as sub:
        eventually("the failure is reported", lambda: sub.stats().last_error is not None)
        stats = sub.stats()
        assert not sub.wait_ready(0.0)
    assert (stats.connects, stats.connected) == (0, False)
    assert "peer did not return a certificate" in broker.log_path.read_text()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_tls_with_a_client_certificate_delivers_readings(
    tls_broker: tuple[MosquittoBroker, Path], protocol: Protocol
) -> None:
    broker, certs = tls_broker
    tls = BrokerTls(ca_file=certs / "ca.pem", cert_file=certs / "client.pem", key_file=certs / "client.key")
    config = broker_config(broker, protocol, host="localhost", port=broker.tls_port, tls=tls)
    root = unique("tls")
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    with (
        subscriber(config, water_sensors(root, 1), sink, dead_letters, agent_id=unique("a")) as sub,
        station(broker) as publisher,
    ):
        for index in range(5):
            publisher.publish(f"{root}/s0", water("s0", index))
        eventually("readings stored", lambda: sink.count() == 5)
        assert sub.stats().connects == 1
    assert sink.times("s0") == [reading_time(index) for index in range(5)]


def test_tls_checks_the_broker_name_unless_told_not_to(tls_broker: tuple[MosquittoBroker, Path]) -> None:
    """The certificate names localhost only; reached as 127.0.0.1 (the same listener) it is refused."""
    broker, certs = tls_broker
    files = {"ca_file": certs / "ca.pem", "cert_file": certs / "client.pem", "key_file": certs / "client.key"}
    sink, dead_letters = MemorySink(), MemoryDeadLetters()
    checked = broker_config(broker, host="127.0.0.1", port=broker.tls_port, tls=BrokerTls(**files))
    with subscriber(checked, water_sensors("tls/a", 1), sink, dead_letters, agent_id=unique("a"), ready=False) as sub:
        eventually("the failure is reported", lambda: sub.stats().last_error is not None)
        stats = sub.stats()
    assert stats.connects == 0
    assert stats.last_error is not None
    assert "mismatch" in stats.last_error
    relaxed = broker_config(
        broker, host="127.0.0.1", port=broker.tls_port, tls=BrokerTls(**files, check_hostname=False)
    )
    with subscriber(relaxed, water_sensors("tls/b", 1), sink, dead_letters, agent_id=unique("a")) as sub:
        assert sub.stats().connects == 1
