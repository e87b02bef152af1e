"""A simulated water-level station for the demo: readings published over MQTT the way agents publish.

Every ``every_s`` seconds it sends one ``SensorReadingEvent`` batch (QoS 1) to the agent topic of
``docs/mqtt_topics.md``; the level starts at ``start_m`` and rises ``rise_m`` per reading, so the
central alert engine sees it cross báo động 1 during the demo. (Reading real stations over MQTT,
with vendor adapters, is the edge agent's job in the sensors issue.)
"""

from __future__ import annotations

import datetime as dt
import threading

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from central_ingest.ingest.mqtt_topics import agent_topic
from event_contract import EventBatch, SensorReadingEvent

SENSOR_AGENT_ID = "demo-sensors"
STATION_ID = "tram-demo"


class SimulatedStation:
    """Publishes rising water levels in a background thread until ``stop``."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        every_s: float = 5.0,
        start_m: float = 9.3,
        rise_m: float = 0.05,
    ) -> None:
        self._client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self._client.username_pw_set(username, password)
        self._address = (host, port)
        self._every_s = every_s
        self._start_m = start_m
        self._rise_m = rise_m
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-station", daemon=True)
        self.published = 0

    def start(self) -> None:
        self._client.connect(*self._address)
        self._client.loop_start()
        self._thread.start()

    def _run(self) -> None:
        topic = agent_topic("ioc/v1", SENSOR_AGENT_ID)
        while not self._stop.is_set():
            level = round(self._start_m + self._rise_m * self.published, 3)
            reading = SensorReadingEvent(
                agent_id=SENSOR_AGENT_ID,
                source_id=STATION_ID,
                time=dt.datetime.now(dt.UTC),
                sensor_kind="water_level",
                values={"water_level_m": level},
            )
            batch = EventBatch(agent_id=SENSOR_AGENT_ID, events=(reading,))
            self._client.publish(topic, batch.model_dump_json().encode(), qos=1)
            self.published += 1
            self._stop.wait(self._every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.loop_stop()
        self._client.disconnect()
