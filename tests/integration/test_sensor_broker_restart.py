"""The broker restarts (SIGTERM, started again on the same port, persistence on) while stations publish.

The station is a paho client with its own persistent session that keeps publishing at QoS 1 through
the outage (paho holds and re-sends what the broker did not acknowledge); the subscriber must
reconnect, resubscribe and end up with every reading exactly once in its sink: redeliveries (a PUBACK
lost with the old broker) come back as duplicates, which the normaliser refuses by time and which are
dead-lettered, never stored twice.

The station buffers readings while the broker is away and sends them in order once it is back, as
station firmware does. (A plain paho publisher does not keep that order: a reading published during
the reconnect can go out between CONNECT and the re-sent backlog; the normaliser then refuses the
older backlog as out_of_order and dead-letters it: kept and counted, but not stored.)
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from devstack.mosquitto import MosquittoBroker, MosquittoSettings
from event_contract.sensors import SensorReadingEvent
from tests.integration.test_sensor_mqtt import (
    WAIT_S,
    MemoryDeadLetters,
    MemorySink,
    Protocol,
    Station,
    accounted,
    broker_config,
    eventually,
    reading_time,
    subscriber,
    unique,
    water,
    water_sensors,
)

pytestmark = pytest.mark.integration

READINGS = 500
"""Per sensor."""
HOLD_AT = 150
"""From here until the broker is back the agent's store stalls, so the broker holds a backlog for it."""
RESTART_AT = 200


class StallingSink(MemorySink):
    """A sink that can stall (a slow disk): the subscriber stops acknowledging and the broker queues."""

    def __init__(self) -> None:
        super().__init__()
        self._open = threading.Event()
        self._open.set()

    def stall(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        assert self._open.wait(WAIT_S)
        super().store(events)


class BufferingStation(Station):
    """Readings go to a local buffer; a sender thread publishes them, in order, only while connected."""

    def __init__(self, broker: MosquittoBroker, *, protocol: Protocol) -> None:
        self._buffer: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = threading.Condition()
        self._closing = False
        super().__init__(broker, protocol=protocol, persistent=True, inflight=1)
        self._sender = threading.Thread(target=self._send, name="station-sender")
        self._sender.start()

    def publish(self, topic: str, payload: bytes) -> None:
        with self._wake:
            self._buffer.append((topic, payload))
            self._wake.notify()

    def _send(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._buffer or self._closing)
                if not self._buffer:
                    return
                topic, payload = self._buffer[0]
            if self._connected.wait(0.1):  # hold everything while the broker is away
                super().publish(topic, payload)
                with self._wake:
                    self._buffer.popleft()

    def wait_acked(self, timeout_s: float = WAIT_S) -> None:
        eventually("the station's buffer sent", lambda: not self._buffer, timeout_s)
        super().wait_acked(timeout_s)

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._sender.join(WAIT_S)
        super().close()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path, MosquittoSettings(persistence=True))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_broker_restart_while_stations_publish_loses_no_reading(
    persistent_broker: MosquittoBroker, protocol: Protocol
) -> None:
    broker = persistent_broker
    root = unique("restart")
    sensors = water_sensors(root, 2)
    sink, dead_letters = StallingSink(), MemoryDeadLetters()
    port = broker.port

    def restart_broker() -> None:
        broker.restart()
        sink.resume()

    restart = threading.Thread(target=restart_broker, name="broker-restart")
    publisher = BufferingStation(broker, protocol=protocol)
    # A small inflight window, so most of the stalled readings wait in the broker's session queue.
    config = broker_config(broker, protocol, receive_maximum=10)
    with (
        contextlib.closing(publisher),
        subscriber(config, sensors, sink, dead_letters, agent_id=unique("agent")) as sub,
    ):
        for index in range(READINGS):
            for sensor in sensors:
                publisher.publish(f"{root}/{sensor.id}", water(sensor.id, index))
            if index == HOLD_AT:
                eventually("readings flowing before the restart", lambda: sink.count() > HOLD_AT)
                sink.stall()
            if index == RESTART_AT:
                restart.start()  # the station keeps publishing while the broker is down
            threading.Event().wait(0.002)
        restart.join(60.0)
        assert not restart.is_alive()
        publisher.wait_acked(60.0)
        expected = [reading_time(index) for index in range(READINGS)]
        eventually("every reading stored", lambda: all(len(set(sink.times(s.id))) == READINGS for s in sensors))
        eventually("every message accounted for", lambda: accounted(sub.stats()))
        stats = sub.stats()
    assert broker.port == port
    assert stats.connects >= 2
    assert stats.disconnects >= 1
    for sensor in sensors:
        assert sink.times(sensor.id) == expected, f"{sensor.id}: lost or stored twice"
    # Redeliveries are refused by time and kept, not stored: the published set and the stored set are equal.
    assert {letter.code for letter in dead_letters.letters} <= {"duplicate_time", "out_of_order"}
    assert stats.received == 2 * READINGS + len(dead_letters.letters)
    assert stats.acked == stats.received - stats.stale_acks_dropped
