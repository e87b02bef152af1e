"""Phase 2: sensor messages/s through the agent's real sensor path, against paho alone on the same broker.

Stations are played by publisher processes (``edge_delivery_publisher``), each owning some of the
stations and publishing their ``ioc.water_level/1`` readings at QoS 1 as fast as the broker takes
them. The clock starts when the publishers are told to go and stops when the consumer has handled
the last message:

- agent path: the real ``SensorSubscriber`` (manual acks, the site config's queue and batch sizes)
  -> the real ``SensorNormaliser`` -> the agent's ``SpoolSink`` -> ``Delivery.submit_many(...,
  durable_only=True)`` into a real ``Spool`` (``synchronous=full``); refused payloads go to a real
  ``DeadLetterStore``. A message counts as handled once its reading is in the spool or its dead
  letter is kept (it is acknowledged to the broker right after). The ``Delivery`` sends through a
  transport that acknowledges every batch at once, so the spool drains without a network: only the
  sensor path (and the spool's lease/ack behind it) is measured.
- baseline: a bare paho client with the same settings (``ioc_common.mqtt_connection.new_client``:
  MQTT 5, QoS 1, manual ack, the same Receive Maximum) that acknowledges and counts each message.
  It is the broker's own rate to one subscriber on this box with these publishers.

Each run uses its own topics, so a session left by an earlier run never receives its messages;
the broker queues without a limit (``max_queued_messages 0``) so nothing is dropped while a
consumer lags, and every run checks that all messages were handled.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from paho.mqtt.client import Client, MQTTMessage

from benchmarks.edge_delivery_common import CallTimes, median, percent_more, settled_heap
from benchmarks.edge_delivery_publisher import PublisherSpec, count_bad, sensor_id, topic_of
from devstack.mosquitto import MosquittoBroker
from edge_agent.agent import SpoolSink
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.dead_letters import DeadLetterConfig, DeadLetterStore
from edge_agent.delivery.sender import Delivery
from edge_agent.delivery.spool import Spool, SpoolConfig
from edge_agent.delivery.transport import Acked, SendOutcome
from event_contract import BatchAck
from event_contract.sensors import SensorReadingEvent
from ioc_common.dead_letter import DeadLetter, DeadLetterSink
from ioc_common.mqtt_connection import new_client
from ioc_common.sensors.broker import BrokerConfig, connect_async
from ioc_common.sensors.config import SensorConfig
from ioc_common.sensors.normalise import NormaliseResult, SensorNormaliser
from ioc_common.sensors.site import SensorsSiteConfig
from ioc_common.sensors.subscriber import SensorSubscriber

Consumer = Literal["agent", "broker"]
REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
UPLINK = UplinkConfig.model_validate({"url": "http://127.0.0.1:9", "token": "unused"})
"""Batching settings of the agent's default uplink; url and token are never used (the transport is local)."""


@dataclass(frozen=True)
class SensorLoad:
    """What the stations send in one run."""

    messages: int
    stations: int
    publishers: int
    bad_every: int
    """Every ``bad_every``-th message is not JSON (dead-lettered); 0: all good."""
    timeout_s: float
    """A run that has not handled every message by then fails (with what it handled)."""

    @property
    def readings_per_station(self) -> int:
        return -(-self.messages // self.stations)

    @property
    def total(self) -> int:
        return self.readings_per_station * self.stations

    @property
    def bad(self) -> int:
        return count_bad(self.stations, self.readings_per_station, self.bad_every)


class _Finish:
    """Counts handled messages; notes the moment the expected number is reached."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self._lock = threading.Lock()
        self.count = 0
        self.done = threading.Event()
        self.done_at = 0.0

    def add(self, count: int) -> None:
        with self._lock:
            self.count += count
            if self.count >= self.expected and not self.done.is_set():
                self.done_at = time.perf_counter()
                self.done.set()


class _Consumer(Protocol):
    def start(self) -> None: ...
    def stop(self) -> dict[str, Any]: ...


# --- the baseline: paho alone -----------------------------------------------------------------------


class BareSubscriber:
    """paho with the agent's client settings; acknowledges and counts each message, nothing else."""

    def __init__(self, config: BrokerConfig, agent_id: str, topics: Sequence[str], finish: _Finish) -> None:
        self._config = config
        self._topics = list(topics)
        self._finish = finish
        self._ready = threading.Event()
        self._client = new_client(config, agent_id=agent_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_args: self._ready.set()
        self._client.on_message = self._on_message

    def _on_connect(self, client: Client, *_args: Any) -> None:
        subscriptions: list[tuple[str, int]] = [(topic, self._config.qos) for topic in self._topics]
        client.subscribe(subscriptions)

    def _on_message(self, client: Client, _userdata: Any, message: MQTTMessage) -> None:
        client.ack(message.mid, message.qos)
        self._finish.add(1)

    def start(self) -> None:
        connect_async(self._client, self._config)
        self._client.loop_start()
        if not self._ready.wait(READY_TIMEOUT_S):
            raise RuntimeError("the bare paho subscriber was not subscribed in time")

    def stop(self) -> dict[str, Any]:
        self._client.disconnect()
        self._client.loop_stop()
        return {"received": self._finish.count}


# --- the agent's sensor path ------------------------------------------------------------------------


class InstantTransport:
    """Central stand-in that acknowledges every batch at once (no network): the spool drains as it would."""

    def send(self, agent_id: str, payloads: Sequence[bytes]) -> SendOutcome:
        return Acked(BatchAck(received=len(payloads), stored=len(payloads), duplicates=0))

    def close(self) -> None:
        return None


class _TimedNormaliser:
    """The real normaliser, with the time of each call noted."""

    def __init__(self, inner: SensorNormaliser, times: CallTimes) -> None:
        self._inner = inner
        self._times = times

    @property
    def topics(self) -> tuple[str, ...]:
        return self._inner.topics

    def normalise(self, topic: str, payload: bytes, received_at: dt.datetime) -> NormaliseResult:
        with self._times.timing("normalise"):
            return self._inner.normalise(topic, payload, received_at)


class _CountingSink:
    """The agent's ``SpoolSink``, counting stored readings (one per message with the ioc_v1 payload)."""

    def __init__(self, inner: SpoolSink, finish: _Finish, times: CallTimes) -> None:
        self._inner = inner
        self._finish = finish
        self._times = times

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        with self._times.timing("spool_store"):
            self._inner.store(events)
        self._finish.add(len(events))


class _CountingLetters:
    """The real dead-letter store, counting kept letters (one per broken payload here)."""

    def __init__(self, inner: DeadLetterSink, finish: _Finish, times: CallTimes) -> None:
        self._inner = inner
        self._finish = finish
        self._times = times

    def keep_many(self, letters: Sequence[DeadLetter]) -> None:
        with self._times.timing("dead_letters_keep"):
            self._inner.keep_many(letters)
        self._finish.add(len(letters))


class AgentSensorPath:
    """Subscriber + normaliser + spool (durable_only) + dead-letter store + sender, as the agent wires them."""

    def __init__(
        self,
        config: BrokerConfig,
        sensors: Sequence[SensorConfig],
        *,
        workdir: Path,
        agent_id: str,
        finish: _Finish,
        site: SensorsSiteConfig,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._times = CallTimes()
        self._spool = Spool(SpoolConfig(path=workdir / "spool.sqlite"))
        self._letters = DeadLetterStore(DeadLetterConfig(path=workdir / "dead_letters.sqlite"))
        self._delivery = Delivery(agent_id, UPLINK, self._spool, InstantTransport(), dead_letters=self._letters)
        self._subscriber = SensorSubscriber(
            config,
            _TimedNormaliser(
                SensorNormaliser(agent_id, sensors, max_payload_bytes=site.max_payload_bytes), self._times
            ),
            _CountingSink(SpoolSink(self._delivery), finish, self._times),
            _CountingLetters(self._letters, finish, self._times),
            agent_id=agent_id,
            silent_after_s={sensor.id: sensor.silent_after_s for sensor in sensors},
            queue_capacity=site.queue_capacity,
            batch_max=site.batch_max,
            store_retry_backoff=site.store_retry_backoff,
        )

    def start(self) -> None:
        self._subscriber.start()
        if not self._subscriber.wait_ready(READY_TIMEOUT_S):
            raise RuntimeError(f"the sensor subscriber was not subscribed in time: {self._subscriber.stats()}")

    def stop(self) -> dict[str, Any]:
        try:
            self._subscriber.stop(timeout_s=30.0)
            delivery = self._delivery.close(timeout=30.0)
            stats = self._subscriber.stats()
            return {
                "received": stats.received,
                "accepted_payloads": stats.accepted_payloads,
                "dead_lettered_payloads": stats.dead_lettered_payloads,
                "readings_stored": stats.readings,
                "acked": stats.acked,
                "queue_waits": stats.queue_waits,
                "store_retries": stats.store_retries,
                "duplicates_redelivered": stats.duplicates_redelivered,
                "spool_put_events": self._spool.stats().put_events,
                "sent_events": delivery.sent_events,
                "spool_left": delivery.backlog_events,
                "dead_letters_kept": self._letters.stats().kept,
                "worker_calls": self._times.per_call_ms(),
            }
        finally:
            self._spool.close()
            self._letters.close()


# --- one run ----------------------------------------------------------------------------------------


def sensor_configs(topic_root: str, stations: int) -> list[SensorConfig]:
    """The stations as the agent's site config would list them: ``wl-i`` on ``{topic_root}/wl-i``."""
    return [
        SensorConfig(id=sensor_id(i), kind="water_level", topic=topic_of(topic_root, i), alert_levels_m=(4.5, 5.5, 6.5))
        for i in range(stations)
    ]


def _start_publishers(broker: MosquittoBroker, load: SensorLoad, topic_root: str) -> list[subprocess.Popen[str]]:
    base = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).replace(microsecond=0)
    procs: list[subprocess.Popen[str]] = []
    for number in range(load.publishers):
        spec = PublisherSpec(
            host=broker.host,
            port=broker.port,
            username=broker.username,
            password=broker.password,
            topic_root=topic_root,
            stations=tuple(range(number, load.stations, load.publishers)),
            station_count=load.stations,
            readings_per_station=load.readings_per_station,
            bad_every=load.bad_every,
            base_time=base.isoformat(),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.edge_delivery_publisher", spec.to_json()],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"publisher did not get ready (said {line!r}, exit {proc.poll()})")
    except BaseException:
        _kill(procs)
        raise
    return procs


def _finish_publishers(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=READY_TIMEOUT_S)
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"publisher failed (exit {proc.returncode}): {out!r}")
        results.append(json.loads(lines[-1]))
    return results


def _kill(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_once(consumer: Consumer, broker: MosquittoBroker, load: SensorLoad, workdir: Path) -> dict[str, Any]:
    """One timed run: publishers -> broker -> ``consumer``; messages/s from go to the last handled message."""
    run_id = uuid.uuid4().hex[:8]
    topic_root = f"bench/{consumer}-{run_id}"
    agent_id = f"bench-{consumer}-{run_id}"
    config = BrokerConfig(host=broker.host, port=broker.port, username=broker.username, password=broker.password)
    sensors = sensor_configs(topic_root, load.stations)
    finish = _Finish(load.total)
    target: _Consumer
    if consumer == "agent":
        target = AgentSensorPath(
            config, sensors, workdir=workdir / agent_id, agent_id=agent_id, finish=finish, site=SensorsSiteConfig()
        )
    else:
        target = BareSubscriber(config, agent_id, [s.topic for s in sensors], finish)
    procs: list[subprocess.Popen[str]] = []
    try:
        target.start()
        procs = _start_publishers(broker, load, topic_root)
        with settled_heap():
            cpu0 = time.process_time()
            start = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            finished = finish.done.wait(load.timeout_s)
            cpu_s = time.process_time() - cpu0
            seconds = (finish.done_at if finished else time.perf_counter()) - start
        publishers = _finish_publishers(procs)
    finally:
        _kill(procs)
        counts = target.stop()
    if not finished:
        raise RuntimeError(f"{consumer}: only {finish.count} of {load.total} messages handled in {load.timeout_s} s")
    publish_s = max(p["acked_s"] for p in publishers)
    return {
        "consumer": consumer,
        "messages": load.total,
        "handled": finish.count,
        "seconds": round(seconds, 3),
        "messages_per_s": round(load.total / seconds),
        "cpu_us_per_message": round(1e6 * cpu_s / load.total, 1),
        "publishers_acked_messages_per_s": round(sum(p["acked"] for p in publishers) / publish_s),
        **counts,
    }


def measure_sensors(broker: MosquittoBroker, load: SensorLoad, rounds: int, workdir: Path) -> dict[str, Any]:
    """``rounds`` runs of each consumer, alternating which goes first; medians and the agent/broker ratio."""
    runs: list[dict[str, Any]] = []
    for number in range(rounds):
        order: tuple[Consumer, Consumer] = ("broker", "agent") if number % 2 == 0 else ("agent", "broker")
        for consumer in order:
            run = run_once(consumer, broker, load, workdir)
            run["round"] = number
            runs.append(run)
            print(
                f"  sensors round {number} {consumer}: {run['messages_per_s']} msg/s "
                f"({run['cpu_us_per_message']} us CPU/msg)",
                flush=True,
            )
    agent = [r for r in runs if r["consumer"] == "agent"]
    bare = [r for r in runs if r["consumer"] == "broker"]
    agent_rate = round(median([r["messages_per_s"] for r in agent]))
    broker_rate = round(median([r["messages_per_s"] for r in bare]))
    agent_cpu = median([r["cpu_us_per_message"] for r in agent])
    broker_cpu = median([r["cpu_us_per_message"] for r in bare])
    lost = [r["messages"] - r["handled"] for r in agent]
    return {
        "messages": load.total,
        "stations": load.stations,
        "publishers": load.publishers,
        "bad_payloads": load.bad,
        "rounds": rounds,
        "runs": runs,
        "summary": {
            "sensor_messages_per_s": agent_rate,
            "broker_messages_per_s": broker_rate,
            "sensor_to_broker_ratio": round(agent_rate / broker_rate, 3),
            "sensor_cpu_us_per_message": agent_cpu,
            "broker_cpu_us_per_message": broker_cpu,
            "sensor_cpu_over_broker_pct": percent_more(agent_cpu, broker_cpu),
            "sensor_messages_lost": max(lost),
            "sensor_messages_not_in_spool_or_dead_letters": max(
                r["messages"] - r["readings_stored"] - r["dead_letters_kept"] for r in agent
            ),
        },
    }
