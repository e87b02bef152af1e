"""A field-sensor publisher for the edge-delivery benchmark, run as its own process (the stations).

    python -m benchmarks.edge_delivery_publisher '<PublisherSpec as JSON>'

It builds its stations' ``ioc.water_level/1`` payloads, connects (QoS 1 publishes), prints
``ready``, waits for a ``go`` line on stdin, publishes everything as fast as the broker takes it,
waits for every PUBACK and prints one JSON line: published, acked, and the seconds from ``go``
until the last publish call and until the last PUBACK. Each station's readings go out in time
order from one client, so the normaliser sees them in order. Stations run in their own processes
so that building and sending messages does not share the agent process's CPU or GIL.

Only paho and the standard library are imported here: the process starts fast.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

BAD_PAYLOAD = b"{not json"
"""What a broken station sends now and then; the normaliser dead-letters it as not_json."""
ACK_WAIT_S = 120.0


@dataclass(frozen=True)
class PublisherSpec:
    """One publisher process: its broker login and which stations it plays."""

    host: str
    port: int
    username: str
    password: str
    topic_root: str
    stations: tuple[int, ...]
    """Station numbers: station ``i`` is sensor ``wl-i`` on topic ``{topic_root}/wl-i``."""
    station_count: int
    """Stations over all publishers (to place the bad payloads the same way everywhere)."""
    readings_per_station: int
    bad_every: int
    """Every ``bad_every``-th message of the whole load (by reading-major order) is broken; 0: none."""
    base_time: str
    """ISO 8601 time of reading 0; reading ``j`` is ``j`` seconds later."""
    inflight: int = 1000
    """paho's limit of unacknowledged publishes (its default, 20, makes the publisher the bottleneck)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PublisherSpec:
        values: dict[str, Any] = json.loads(text)
        values["stations"] = tuple(values["stations"])
        return cls(**values)


def sensor_id(station: int) -> str:
    return f"wl-{station}"


def topic_of(topic_root: str, station: int) -> str:
    return f"{topic_root}/{sensor_id(station)}"


def is_bad(station: int, reading: int, station_count: int, bad_every: int) -> bool:
    return bad_every > 0 and (reading * station_count + station) % bad_every == bad_every - 1


def water_level_payload(station: int, reading: int, base_time: dt.datetime) -> bytes:
    """A station's ``ioc.water_level/1`` reading number ``reading`` (one second apart)."""
    stamp = (base_time + dt.timedelta(seconds=reading)).isoformat().replace("+00:00", "Z")
    body = {
        "schema": "ioc.water_level/1",
        "sensor_id": sensor_id(station),
        "time": stamp,
        "level": round(2.0 + (reading % 300) / 100, 2),
        "unit": "m",
        "alert_levels_m": [4.5, 5.5, 6.5],
    }
    return json.dumps(body).encode()


def messages(spec: PublisherSpec) -> list[tuple[str, bytes]]:
    """Every (topic, payload) of this publisher, reading-major: each station's readings in time order."""
    base = dt.datetime.fromisoformat(spec.base_time)
    out: list[tuple[str, bytes]] = []
    for reading in range(spec.readings_per_station):
        for station in spec.stations:
            bad = is_bad(station, reading, spec.station_count, spec.bad_every)
            payload = BAD_PAYLOAD if bad else water_level_payload(station, reading, base)
            out.append((topic_of(spec.topic_root, station), payload))
    return out


def count_bad(station_count: int, readings_per_station: int, bad_every: int) -> int:
    return sum(
        is_bad(station, reading, station_count, bad_every)
        for reading in range(readings_per_station)
        for station in range(station_count)
    )


class _Acks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.expected: int | None = None
        self.all_in = threading.Event()

    def on_publish(self, *_args: Any) -> None:
        with self.lock:
            self.count += 1
            if self.expected is not None and self.count >= self.expected:
                self.all_in.set()

    def expect(self, total: int) -> None:
        with self.lock:
            self.expected = total
            if self.count >= total:
                self.all_in.set()


def run(spec: PublisherSpec) -> dict[str, Any]:
    payloads = messages(spec)
    acks = _Acks()
    connected = threading.Event()
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-station-{uuid.uuid4().hex[:10]}",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    client.username_pw_set(spec.username, spec.password)
    client.max_inflight_messages_set(spec.inflight)
    client.on_connect = lambda *_args: connected.set()
    client.on_publish = acks.on_publish
    client.connect(spec.host, spec.port)
    client.loop_start()
    try:
        if not connected.wait(30):
            raise RuntimeError(f"publisher could not connect to {spec.host}:{spec.port}")
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise RuntimeError("expected 'go' on stdin")
        start = time.perf_counter()
        for topic, payload in payloads:
            client.publish(topic, payload, qos=1)
        published_s = time.perf_counter() - start
        acks.expect(len(payloads))
        acks.all_in.wait(ACK_WAIT_S)
        acked_s = time.perf_counter() - start
        return {"published": len(payloads), "acked": acks.count, "publish_s": published_s, "acked_s": acked_s}
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(run(PublisherSpec.from_json(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
