"""From events to alerts through the real processes: agent batches over HTTP into a ``central-ingest
serve`` process (TimescaleDB, alert rules from YAML), alerts out on its server-sent event stream and
on the mosquitto broker.

- a water-level reading above báo động 2 opens one alert at that level;
- "vi phạm tăng 20%": ten full-coverage days of 10 violations at a junction; today's 12th violation
  (exactly +20%) must not fire, the 13th (+30%) must: the first violation notice carries 13.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import zoneinfo
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import psycopg
import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from devstack.apps import CentralService, start_central
from devstack.mosquitto import MosquittoBroker
from event_contract import (
    CountIntervalEvent,
    Event,
    IntervalQuality,
    SensorReadingEvent,
    ViolationEvent,
)
from tests.api_sessions import api_headers

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = "agent-e2e-alerts"
ZONE = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
RULES = f"""
junctions:
  - id: nga-tu-e2e
    name_vi: Ngã tư Kiểm thử
    name_en: Test junction
    cameras: [{{agent_id: {AGENT}, source_id: cam-j1}}]
rules:
  - id: violations-up-20
    kind: violation_increase
    junctions: all
    window_periods: 30
    threshold_pct: 20
    min_baseline_periods: 7
    min_count: 5
  - id: water-level
    kind: sensor_threshold
    sensor_kind: water_level
    metric: water_level_m
    levels:
      - {{name: bao_dong_1, value: 9.5, severity: notice}}
      - {{name: bao_dong_2, value: 10.5, severity: warning}}
      - {{name: bao_dong_3, value: 11.5, severity: critical}}
    hysteresis: 0.1
    min_duration_s: 0
"""
WAIT_S = 20.0


@pytest.fixture(scope="module")
def central(
    pg_dsn: str, mqtt_broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CentralService]:
    workdir = tmp_path_factory.mktemp("alerts-e2e")
    rules = workdir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    sinks = {
        "mqtt": {
            "host": mqtt_broker.host,
            "port": mqtt_broker.port,
            "username": mqtt_broker.username,
            "password": mqtt_broker.password,
        }
    }
    env = {"IOC_CENTRAL_ALERT_RULES_PATH": str(rules), "IOC_CENTRAL_ALERT_SINKS": json.dumps(sinks)}
    service = start_central(pg_dsn, workdir / "central.log", env=env)
    try:
        yield service
    finally:
        service.process.stop()


@pytest.fixture(scope="module")
def token(pg_dsn: str, central: CentralService) -> str:
    apply_migrations(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        return add_agent(conn, AGENT)


class SseReader:
    """Reads the alert stream in a thread; notices land in ``notices``."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.notices: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(5.0, read=60.0)
        with httpx.Client(timeout=timeout, headers=headers) as client, client.stream("GET", url) as response:
            for line in response.iter_lines():
                self.connected.set()
                if self._stop.is_set():
                    return
                if line.startswith("data:"):
                    self.notices.put(json.loads(line[5:]))

    def next(self, rule_kind: str) -> dict[str, Any]:
        while True:
            notice = self.notices.get(timeout=WAIT_S)
            if notice["rule_kind"] == rule_kind:
                return notice

    def close(self) -> None:
        self._stop.set()


@pytest.fixture(scope="module")
def reader_headers(pg_dsn: str, central: CentralService) -> dict[str, str]:
    """An operator's bearer session (the service has migrated the database)."""
    return api_headers(pg_dsn)


@pytest.fixture(scope="module")
def sse(central: CentralService, reader_headers: dict[str, str]) -> Iterator[SseReader]:
    reader = SseReader(f"{central.url}/api/v1/alerts/stream", reader_headers)
    assert reader.connected.wait(WAIT_S), "the alert stream did not answer"
    try:
        yield reader
    finally:
        reader.close()


@pytest.fixture(scope="module")
def mqtt_alerts(mqtt_broker: MosquittoBroker) -> Iterator[queue.Queue[tuple[str, dict[str, Any]]]]:
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    subscribed = threading.Event()
    client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(mqtt_broker.username, mqtt_broker.password)

    def on_message(_client: Client, _userdata: object, message: MQTTMessage) -> None:
        received.put((message.topic, json.loads(message.payload)))

    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.subscribe("ioc/v1/alerts/#", qos=1)
    client.loop_start()
    assert subscribed.wait(WAIT_S)
    try:
        yield received
    finally:
        client.loop_stop()
        client.disconnect()


def _post(central: CentralService, token: str, events: Sequence[Event]) -> dict[str, Any]:
    ack = central.post_events(token, AGENT, events)
    assert ack["rejected"] == 0, ack
    return ack


def test_water_level_above_bao_dong_2_alerts_on_the_stream_and_the_broker(
    central: CentralService,
    token: str,
    sse: SseReader,
    mqtt_alerts: queue.Queue[tuple[str, dict[str, Any]]],
    reader_headers: dict[str, str],
) -> None:
    reading = SensorReadingEvent(
        agent_id=AGENT,
        source_id="tram-e2e",
        time=dt.datetime.now(dt.UTC),
        sensor_kind="water_level",
        values={"water_level_m": 10.7},
    )
    _post(central, token, [reading])
    notice = sse.next("sensor_threshold")
    assert (notice["status"], notice["transition"], notice["level"]) == ("open", "opened", "bao_dong_2")
    assert notice["value"] == pytest.approx(10.7)
    assert notice["threshold"] == pytest.approx(10.5)
    assert "báo động 2" in notice["message_vi"].lower()
    (evidence,) = notice["evidence"]  # the readings behind the alert, through the query API
    readings = httpx.get(f"{central.url}{evidence}", headers=reader_headers, timeout=10).json()["items"]
    assert [(r["source_id"], r["metric"], r["value"]) for r in readings] == [("tram-e2e", "water_level_m", 10.7)]
    topic, published = mqtt_alerts.get(timeout=WAIT_S)
    assert published["alert_id"] == notice["alert_id"]
    assert topic.startswith("ioc/v1/alerts/sensor_threshold/")


def _local_midnight(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(ZONE).replace(hour=0, minute=0, second=0, microsecond=0)
    return (today - dt.timedelta(days=days_ago)).astimezone(dt.UTC)


def _full_day(day: dt.datetime) -> CountIntervalEvent:
    quality = IntervalQuality(
        expected_s=86_400,
        analysed_s=86_400,
        frames_analysed=432_000,
        frames_dropped=0,
        downtime_s=0,
        detector_backend="ssd_mobilenet_oidv4",
        coverage=1.0,
    )
    return CountIntervalEvent(
        agent_id=AGENT, source_id="cam-j1", line_id="l1", time=day, interval_s=86_400, quality=quality
    )


def _violation(time: dt.datetime, track_id: int) -> ViolationEvent:
    return ViolationEvent(
        agent_id=AGENT,
        source_id="cam-j1",
        time=time,
        violation_type="red_light",
        category="violation",
        track_id=track_id,
        vehicle_class="motorbike",
    )


def test_violations_up_more_than_20_percent_fire_exactly_past_the_threshold(
    central: CentralService, token: str, sse: SseReader, reader_headers: dict[str, str]
) -> None:
    history: list[Event] = []
    for days_ago in range(1, 11):
        day = _local_midnight(days_ago)
        history.append(_full_day(day))
        history += [_violation(day + dt.timedelta(hours=8, minutes=i), i) for i in range(10)]
    _post(central, token, history)

    now = dt.datetime.now(dt.UTC)
    start = max(_local_midnight(0), now - dt.timedelta(minutes=30))
    today = [_violation(start + dt.timedelta(seconds=10 * i), 100 + i) for i in range(13)]
    _post(central, token, today[:12])  # exactly +20 %: must not fire
    _post(central, token, today[12:])  # +30 %
    notice = sse.next("violation_increase")
    assert (notice["status"], notice["transition"]) == ("open", "opened")
    assert (notice["value"], notice["baseline"], notice["threshold"]) == (13, 10, 12)
    assert notice["subject"] == "junction:nga-tu-e2e"
    assert "Ngã tư Kiểm thử" in notice["message_vi"]
    listed = httpx.get(
        f"{central.url}/api/v1/alerts", params={"rule_kind": "violation_increase"}, headers=reader_headers, timeout=10
    ).json()
    assert [item["alert_id"] for item in listed["items"]] == [notice["alert_id"]]


def test_stream_route_exists_in_openapi(central: CentralService) -> None:
    paths = httpx.get(f"{central.url}/openapi.json", timeout=10).json()["paths"]
    assert {"/api/v1/alerts/stream", "/api/v1/alerts", "/api/v1/events", "/api/v1/violations"} <= set(paths)
