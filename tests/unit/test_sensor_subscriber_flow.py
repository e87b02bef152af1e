"""SensorSubscriber without a broker: paho's callbacks are driven by hand on a fake client.

The fake stands in for paho's Client (records subscriptions and acknowledgements); the tests call
the callbacks the subscriber registered on it, from the test thread or a thread playing paho's
network thread. They pin the rules that keep readings safe: acknowledged only after storing,
one store call per batch, retries without loss, DUP and stale-session handling, back-pressure.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from event_contract.sensors import SensorReadingEvent
from ioc_common.backoff import BackoffConfig
from ioc_common.dead_letter import DeadLetter, DeadLetterCode
from ioc_common.sensors.broker import BrokerConfig
from ioc_common.sensors.subscriber import SensorSubscriber, SubscriberStats

T0 = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
TOPIC = "site/sensors/s1/reading"
FAST = BackoffConfig(base_s=0.001, ceiling_s=0.01)
WAIT_S = 10.0


# --- fakes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeRejection:
    code: DeadLetterCode
    reason: str
    sensor_id: str | None = None


@dataclass(frozen=True)
class FakeResult:
    events: tuple[SensorReadingEvent, ...] = ()
    rejections: tuple[FakeRejection, ...] = ()


class FakeNormaliser:
    """Payload: JSON list of {"id", "level", "t"} readings; a level < -100 is refused; b"boom" raises."""

    topics = ("site/sensors/+/reading", "site/other/#")

    def normalise(self, topic: str, payload: bytes, received_at: dt.datetime) -> FakeResult:
        if payload == b"boom":
            raise RuntimeError("normaliser bug")
        try:
            readings = json.loads(payload)
        except ValueError:
            return FakeResult(rejections=(FakeRejection("not_json", f"not JSON on {topic}"),))
        events: list[SensorReadingEvent] = []
        rejections: list[FakeRejection] = []
        for reading in readings:
            if reading["level"] < -100:
                rejections.append(FakeRejection("impossible_value", f"level {reading['level']}", reading["id"]))
                continue
            events.append(
                SensorReadingEvent(
                    agent_id="agent-1",
                    source_id=reading["id"],
                    time=T0 + dt.timedelta(seconds=reading["t"]),
                    sensor_kind="water_level",
                    values={"water_level_m": reading["level"]},
                )
            )
        return FakeResult(tuple(events), tuple(rejections))


@dataclass
class FakeSink:
    """Records each store call; ``failures`` raise first; ``gate`` (when set) must open before storing."""

    failures: int = 0
    gate: threading.Event | None = None
    calls: list[list[SensorReadingEvent]] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT_S)
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk full")
        self.calls.append(list(events))


@dataclass
class FakeDeadLetters:
    failures: int = 0
    kept: list[DeadLetter] = field(default_factory=list)

    def keep_many(self, letters: Sequence[DeadLetter]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("dead-letter store locked")
        self.kept.extend(letters)


class FakeClient:
    """The parts of paho's Client the subscriber uses; callbacks are assigned to it by the subscriber."""

    def __init__(self) -> None:
        self.on_connect: Callable[..., None] | None = None
        self.on_connect_fail: Callable[..., None] | None = None
        self.on_disconnect: Callable[..., None] | None = None
        self.on_subscribe: Callable[..., None] | None = None
        self.on_message: Callable[..., None] | None = None
        self.subscriptions: list[list[tuple[str, int]]] = []
        self.acks: list[tuple[int, int]] = []
        self.connect_kwargs: dict[str, Any] = {}
        self.delays: list[float] = []
        self.disconnected = False

    def reconnect_delay_set(self, min_delay: float, max_delay: float) -> None:
        assert min_delay == max_delay
        self.delays.append(min_delay)

    def connect_async(self, host: str, port: int, **kwargs: Any) -> None:
        self.connect_kwargs = {"host": host, "port": port, **kwargs}

    def loop_start(self) -> None: ...

    def loop_stop(self) -> None: ...

    def disconnect(self) -> None:
        self.disconnected = True

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        self.subscriptions.append(topics)

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos))

    # --- what paho's network thread would do ---

    def connected(self, *, session_present: bool = False) -> None:
        assert self.on_connect is not None
        self.on_connect(self, None, ConnectFlags(session_present), ReasonCode(PacketTypes.CONNACK, "Success"), None)

    def suback(self) -> None:
        assert self.on_subscribe is not None
        self.on_subscribe(self, None, 1, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")], None)

    def lost(self) -> None:
        assert self.on_disconnect is not None
        self.on_disconnect(
            self, None, DisconnectFlags(False), ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None
        )

    def deliver(self, mid: int, payload: bytes, *, topic: str = TOPIC, dup: bool = False, qos: int = 1) -> None:
        message = MQTTMessage(mid=mid, topic=topic.encode())
        message.payload = payload
        message.qos = qos
        message.dup = dup
        assert self.on_message is not None
        self.on_message(self, None, message)


def reading(t: int, level: float = 4.12, sensor: str = "s1") -> dict[str, Any]:
    return {"id": sensor, "level": level, "t": t}


def payload(*readings: dict[str, Any]) -> bytes:
    return json.dumps(list(readings)).encode()


@dataclass
class Rig:
    subscriber: SensorSubscriber
    client: FakeClient
    sink: FakeSink
    dead_letters: FakeDeadLetters

    def eventually(self, what: str, condition: Callable[[SubscriberStats], bool]) -> SubscriberStats:
        deadline = time.monotonic() + WAIT_S
        while True:
            stats = self.subscriber.stats()
            if condition(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {WAIT_S} s: {what}; {stats}")
            time.sleep(0.002)

    def settled(self) -> SubscriberStats:
        return self.eventually("queue drained", lambda s: s.in_progress == 0)


def make_rig(
    *,
    sink: FakeSink | None = None,
    dead_letters: FakeDeadLetters | None = None,
    broker: BrokerConfig | None = None,
    normaliser: Any = None,
    **kwargs: Any,
) -> Rig:
    client = FakeClient()
    sink = sink or FakeSink()
    dead_letters = dead_letters or FakeDeadLetters()
    subscriber = SensorSubscriber(
        broker or BrokerConfig(),
        normaliser or FakeNormaliser(),
        sink,
        dead_letters,
        agent_id="agent-1",
        store_retry_backoff=FAST,
        client_factory=lambda _config, _agent: cast(Client, client),
        **kwargs,
    )
    return Rig(subscriber, client, sink, dead_letters)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = make_rig()
    made.subscriber.start()
    made.client.connected()
    yield made
    made.subscriber.stop(timeout_s=1.0)


# --- tests --------------------------------------------------------------------------------------


def test_connect_keeps_the_session_and_subscribes_qos1_to_every_topic_on_each_connect(rig: Rig) -> None:
    client = rig.client
    assert client.connect_kwargs["clean_start"] is False
    assert client.connect_kwargs["properties"].SessionExpiryInterval == 86_400
    expected = [("site/sensors/+/reading", 1), ("site/other/#", 1)]
    assert client.subscriptions == [expected]
    assert not rig.subscriber.wait_ready(0.0)
    client.suback()
    assert rig.subscriber.wait_ready(0.0)
    client.lost()
    assert not rig.subscriber.wait_ready(0.0)
    client.connected(session_present=True)
    assert client.subscriptions == [expected, expected]
    stats = rig.subscriber.stats()
    assert (stats.connects, stats.disconnects, stats.connected) == (2, 1, True)
    assert stats.last_error is not None
    assert "disconnected" in stats.last_error


def test_refused_connection_is_reported_and_nothing_subscribed() -> None:
    made = make_rig()
    made.subscriber.start()
    assert made.client.on_connect is not None
    refused = ReasonCode(PacketTypes.CONNACK, "Not authorized")
    made.client.on_connect(made.client, None, ConnectFlags(False), refused, None)
    stats = made.subscriber.stats()
    assert made.client.subscriptions == []
    assert (stats.connects, stats.connected) == (0, False)
    assert stats.last_error is not None
    assert "Not authorized" in stats.last_error
    made.subscriber.stop(timeout_s=1.0)


def test_reconnect_delays_come_from_the_backoff_with_a_ceiling() -> None:
    backoff = BackoffConfig(base_s=0.5, ceiling_s=2.0)
    made = make_rig(broker=BrokerConfig(reconnect_backoff=backoff))
    made.subscriber.start()
    assert made.client.on_connect_fail is not None
    for _ in range(10):
        made.client.on_connect_fail(made.client, None)
    assert len(made.client.delays) == 11  # one set before the first connect
    assert all(0.0 <= delay <= 2.0 for delay in made.client.delays)
    made.subscriber.stop(timeout_s=1.0)


def test_readings_are_acknowledged_only_after_the_sink_stored_them_in_one_call_per_batch() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)  # the worker holds message 1 in the (blocked) sink
    for mid in (2, 3, 4):
        made.client.deliver(mid, payload(reading(mid)))
    assert made.client.acks == []
    gate.set()
    stats = made.settled()
    assert [len(call) for call in made.sink.calls] == [1, 3]  # message 1, then 2..4 as one batch
    assert sorted(made.client.acks) == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert (stats.received, stats.accepted_payloads, stats.readings, stats.acked) == (4, 4, 4, 4)
    made.subscriber.stop(timeout_s=1.0)


def test_batch_max_limits_one_store_call() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate), batch_max=2)
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)
    for mid in range(2, 7):
        made.client.deliver(mid, payload(reading(mid)))
    gate.set()
    made.settled()
    assert [len(call) for call in made.sink.calls] == [1, 2, 2, 1]
    made.subscriber.stop(timeout_s=1.0)


def test_a_failing_sink_is_retried_without_acknowledging_and_nothing_is_lost() -> None:
    made = make_rig(sink=FakeSink(failures=3))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(7, payload(reading(1), reading(2)))
    stats = made.settled()
    assert stats.store_retries == 3
    assert stats.last_error is not None
    assert "disk full" in stats.last_error
    assert len(made.sink.calls) == 1
    assert [event.time for event in made.sink.calls[0]] == [T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)]
    assert made.client.acks == [(7, 1)]
    made.subscriber.stop(timeout_s=1.0)


def test_nothing_is_acknowledged_while_the_sink_fails() -> None:
    made = make_rig(sink=FakeSink(failures=1_000_000))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    made.eventually("several retries", lambda s: s.store_retries >= 5)
    made.subscriber.stop(timeout_s=0.2)
    stats = made.subscriber.stats()
    assert made.client.acks == []
    assert made.sink.calls == []
    assert (stats.received, stats.in_progress, stats.acked) == (1, 1, 0)
    assert made.client.disconnected


def test_bad_payloads_are_dead_lettered_with_raw_bytes_and_do_not_block_good_ones(rig: Rig) -> None:
    rig.client.deliver(1, b"{not json")
    rig.client.deliver(2, payload(reading(1)))
    rig.client.deliver(3, payload(reading(2), reading(3, level=-500.0)))  # one good, one impossible
    rig.client.deliver(4, b"boom")  # the normaliser itself fails
    stats = rig.settled()
    assert (stats.received, stats.accepted_payloads, stats.dead_lettered_payloads) == (4, 1, 3)
    assert stats.received == stats.accepted_payloads + stats.dead_lettered_payloads
    assert stats.by_code == {"not_json": 1, "impossible_value": 1, "internal_error": 1}
    assert stats.readings == 2  # the mixed payload's good reading is stored
    assert sorted(mid for mid, _ in rig.client.acks) == [1, 2, 3, 4]
    kept = {letter.code: letter for letter in rig.dead_letters.kept}
    assert kept["not_json"].raw == b"{not json"
    assert kept["not_json"].topic == TOPIC
    assert kept["not_json"].source == "mqtt"
    assert kept["impossible_value"].sensor_id == "s1"
    assert kept["impossible_value"].reason == "level -500.0"
    assert "RuntimeError: normaliser bug" in kept["internal_error"].reason
    assert kept["internal_error"].raw == b"boom"


def test_a_failing_dead_letter_store_does_not_store_the_readings_twice() -> None:
    made = make_rig(dead_letters=FakeDeadLetters(failures=2))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1), reading(2, level=-500.0)))
    stats = made.settled()
    assert stats.store_retries == 2
    assert len(made.sink.calls) == 1
    assert len(made.dead_letters.kept) == 1
    assert made.client.acks == [(1, 1)]
    made.subscriber.stop(timeout_s=1.0)


def test_a_dup_whose_first_copy_still_waits_is_not_queued_twice() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)
    made.client.deliver(2, payload(reading(2)))
    made.client.lost()
    made.client.connected(session_present=True)
    made.client.deliver(1, payload(reading(1)), dup=True)
    made.client.deliver(2, payload(reading(2)), dup=True)
    gate.set()
    stats = made.settled()
    assert stats.duplicates_redelivered == 2
    assert stats.received == 2
    assert sum(len(call) for call in made.sink.calls) == 2
    assert sorted(made.client.acks) == [(1, 1), (2, 1)]  # same session: the packet ids are still valid
    made.subscriber.stop(timeout_s=1.0)


def test_a_dup_after_its_first_copy_was_acknowledged_is_stored_again_and_counted() -> None:
    made = make_rig()
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    made.eventually("acknowledged", lambda s: s.acked == 1)
    made.client.deliver(1, payload(reading(1)), dup=True)  # the PUBACK was lost with the connection
    stats = made.eventually("acknowledged again", lambda s: s.acked == 2)
    assert stats.duplicates_redelivered == 1
    assert sum(len(call) for call in made.sink.calls) == 2  # at-least-once: the store absorbs it
    made.subscriber.stop(timeout_s=1.0)


def test_acknowledgements_of_a_lost_session_are_dropped() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(5, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)
    made.client.lost()
    made.client.connected(session_present=False)  # the broker forgot the session: packet id 5 means nothing
    made.client.deliver(5, payload(reading(9)))  # a new message reusing the packet id
    gate.set()
    stats = made.settled()
    assert stats.stale_acks_dropped == 1
    assert made.client.acks == [(5, 1)]  # only the new message's
    assert sum(len(call) for call in made.sink.calls) == 2
    made.subscriber.stop(timeout_s=1.0)


def test_qos0_messages_are_stored_and_never_acknowledged(rig: Rig) -> None:
    rig.client.deliver(0, payload(reading(1)), qos=0)
    stats = rig.settled()
    assert (stats.readings, stats.acked) == (1, 0)
    assert rig.client.acks == []


def test_a_full_queue_blocks_the_network_thread_and_counts_the_wait() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate), queue_capacity=1)
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)  # the worker holds 1; the queue is empty
    made.client.deliver(2, payload(reading(2)))  # fills the queue
    network = threading.Thread(target=made.client.deliver, args=(3, payload(reading(3))))
    network.start()
    made.eventually("the network thread waits", lambda s: s.queue_waits == 1)
    assert network.is_alive()
    gate.set()
    network.join(WAIT_S)
    assert not network.is_alive()
    stats = made.settled()
    assert (stats.received, stats.readings, stats.acked, stats.queue_waits) == (3, 3, 3, 1)
    made.subscriber.stop(timeout_s=1.0)


def test_stop_unblocks_a_waiting_network_thread_and_leaves_its_message_unacknowledged() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate), queue_capacity=1)
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)
    made.client.deliver(2, payload(reading(2)))
    network = threading.Thread(target=made.client.deliver, args=(3, payload(reading(3))))
    network.start()
    made.eventually("the network thread waits", lambda s: s.queue_waits == 1)
    stopper = threading.Thread(target=made.subscriber.stop, kwargs={"timeout_s": 5.0})
    stopper.start()
    network.join(WAIT_S)
    assert not network.is_alive()
    gate.set()
    stopper.join(WAIT_S)
    stats = made.subscriber.stats()
    # 1 and 2 were stored and acknowledged during the drain; 3 never entered: the broker re-sends it.
    assert sorted(made.client.acks) == [(1, 1), (2, 1)]
    assert (stats.received, stats.in_progress, stats.readings) == (2, 0, 2)
    made.client.deliver(4, payload(reading(4)))  # after stop: ignored, not acknowledged
    assert made.subscriber.stats().received == 2


def test_silence_is_reported_once_from_the_receive_clock() -> None:
    now = [T0]
    made = make_rig(silent_after_s={"s1": 60.0, "s2": 60.0}, clock=lambda: now[0])
    assert made.subscriber.silence_changes(T0) == []  # not started
    made.subscriber.start()
    made.client.connected()
    now[0] = T0 + dt.timedelta(seconds=30)
    made.client.deliver(1, payload(reading(1, sensor="s1")))
    made.settled()
    changes = made.subscriber.silence_changes(T0 + dt.timedelta(seconds=61))
    assert [(c.sensor_id, c.state) for c in changes] == [("s2", "silent")]
    assert made.subscriber.silence_changes(T0 + dt.timedelta(seconds=62)) == []
    changes = made.subscriber.silence_changes(T0 + dt.timedelta(seconds=95))
    assert [(c.sensor_id, c.state, c.since) for c in changes] == [("s1", "silent", T0 + dt.timedelta(seconds=30))]
    now[0] = T0 + dt.timedelta(seconds=100)
    made.client.deliver(2, payload(reading(2, sensor="s2")))
    made.settled()
    changes = made.subscriber.silence_changes(T0 + dt.timedelta(seconds=101))
    assert [(c.sensor_id, c.state, c.since) for c in changes] == [("s2", "live", now[0])]
    made.subscriber.stop(timeout_s=1.0)


def test_a_stopped_subscriber_cannot_start_again(rig: Rig) -> None:
    rig.subscriber.stop(timeout_s=1.0)
    with pytest.raises(RuntimeError, match="cannot start again"):
        rig.subscriber.start()


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="queue_capacity"):
        make_rig(queue_capacity=0)


def test_after_a_stop_that_timed_out_the_queued_messages_are_left_for_redelivery() -> None:
    gate = threading.Event()
    made = make_rig(sink=FakeSink(gate=gate))
    made.subscriber.start()
    made.client.connected()
    made.client.deliver(1, payload(reading(1)))
    assert made.sink.entered.wait(WAIT_S)  # the worker is stuck in the sink with message 1
    made.client.deliver(2, payload(reading(2)))
    made.client.deliver(3, payload(reading(3)))
    made.subscriber.stop(timeout_s=0.05)
    gate.set()  # the sink comes back after the stop gave up waiting
    made.eventually("message 1 finished", lambda s: s.readings == 1)
    worker_name = f"sensors-{made.subscriber.client_id}"
    for thread in [t for t in threading.enumerate() if t.name == worker_name]:
        thread.join(WAIT_S)  # the worker ends instead of taking the next batch
        assert not thread.is_alive()
    stats = made.subscriber.stats()
    assert [len(call) for call in made.sink.calls] == [1]
    assert (stats.received, stats.readings, stats.in_progress) == (3, 1, 2)
    assert (2, 1) not in made.client.acks
