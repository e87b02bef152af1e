"""Simulated field stations: water-level readings published over MQTT the way a real station logger does.

Each station publishes our native payload (``ioc.water_level/1``, see docs/sensors.md) to its own
topic, QoS 1, from a client with a persistent session, so a broker restart loses nothing. The edge
agent subscribes to those topics, normalises the readings and ships them to central. The demo's
station starts below báo động 1 and rises, so central's alert engine raises the alert during the demo;
tests use many stations at a high rate and compare what was published with what central stored.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

STATION_ID = "tram-demo"
STATION_TOPIC_PREFIX = "site/water"
DEMO_ALERT_LEVELS_M = (9.5, 10.5, 11.5)
"""báo động 1/2/3 of the demo station, m above its datum."""


def station_topic(station_id: str) -> str:
    return f"{STATION_TOPIC_PREFIX}/{station_id}"


def water_level_payload(station_id: str, time: dt.datetime, level_m: float) -> bytes:
    """One ``ioc.water_level/1`` reading, as a station logger sends it."""
    return json.dumps(
        {
            "schema": "ioc.water_level/1",
            "sensor_id": station_id,
            "time": time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "level": round(level_m, 3),
            "unit": "m",
        }
    ).encode()


@dataclass(frozen=True)
class Published:
    station_id: str
    time: dt.datetime
    level_m: float


class SimulatedStations:
    """Publishes a rising level for each station every ``every_s`` seconds until ``stop``.

    Reading times step by ``every_s`` from ``start`` (default: now), so they are unique per station even
    when published faster than real time. ``published`` lists every reading handed to the client.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        stations: Sequence[str] = (STATION_ID,),
        every_s: float = 5.0,
        start_m: float = 9.3,
        rise_m: float = 0.05,
        start: dt.datetime | None = None,
        client_id: str = "demo-stations",
    ) -> None:
        self._client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self._client.username_pw_set(username, password)
        self._client.max_queued_messages_set(0)  # unbounded while the broker is away: every reading is kept
        self._address = (host, port)
        self._stations = tuple(stations)
        self._every_s = every_s
        self._start_m = start_m
        self._rise_m = rise_m
        self._start = start or dt.datetime.now(dt.UTC).replace(microsecond=0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-stations", daemon=True)
        self._lock = threading.Lock()
        self._published: list[Published] = []

    @property
    def published(self) -> list[Published]:
        with self._lock:
            return list(self._published)

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self._client.connect(*self._address, clean_start=False, properties=properties)
        self._client.loop_start()
        self._thread.start()

    def _run(self) -> None:
        step = 0
        while not self._stop.is_set():
            time = self._start + dt.timedelta(seconds=self._every_s * step)
            level = self._start_m + self._rise_m * step
            for station in self._stations:
                self._client.publish(station_topic(station), water_level_payload(station, time, level), qos=1)
                with self._lock:
                    self._published.append(Published(station, time, round(level, 3)))
            step += 1
            self._stop.wait(self._every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.loop_stop()
        self._client.disconnect()


def demo_sensor_section(host: str, port: int, username: str, password: str) -> dict[str, object]:
    """The agent's ``sensors:`` config for the demo station (native payloads on its own topic)."""
    return {
        "broker": {"host": host, "port": port, "username": username, "password": password},
        "sensors": [
            {
                "id": STATION_ID,
                "kind": "water_level",
                "topic": station_topic(STATION_ID),
                "name": "Trạm đo mực nước (mô phỏng)",
                "alert_levels_m": list(DEMO_ALERT_LEVELS_M),
                "datum": "Hòn Dấu",
                "silent_after_s": 60,
            }
        ],
    }
