"""central-ingest sensor-bridge: stations on a province broker -> the agent's sensor code -> TimescaleDB.

A real bridge process, a real mosquitto and TimescaleDB: good readings are stored once (a station
re-sending its last reading adds nothing), a bad payload lands in central's dead letters with its raw
bytes and the reason, and SIGTERM stops the bridge cleanly.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devstack.apps import ManagedProcess, run_central_cli
from devstack.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration

AGENT_ID = "province-bridge-test"
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)


def reading(sensor_id: str, minute: int, level: float) -> bytes:
    time = (T0 + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    body = {"schema": "ioc.water_level/1", "sensor_id": sensor_id, "time": time, "level": level, "unit": "m"}
    return json.dumps(body).encode()


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, (AGENT_ID,)).fetchone()
    return int(row[0]) if row else 0


def test_the_bridge_stores_province_readings_and_dead_letters_bad_ones(
    tmp_path: Path, pg_dsn: str, mqtt_broker: MosquittoBroker
) -> None:
    run_central_cli(pg_dsn, "migrate")
    site = {
        "broker": {
            "host": mqtt_broker.host,
            "port": mqtt_broker.port,
            "username": mqtt_broker.username,
            "password": mqtt_broker.password,
            "client_id": "bridge-test",
        },
        "sensors": [
            {"id": f"tram-p{i}", "kind": "water_level", "topic": f"province/water/tram-p{i}", "silent_after_s": 600}
            for i in range(2)
        ],
    }
    config = tmp_path / "stations.yaml"
    config.write_text(yaml.safe_dump(site), encoding="utf-8")
    argv = [sys.executable, "-m", "central_ingest", "--database-url", pg_dsn, "sensor-bridge"]
    bridge = ManagedProcess.start(
        "sensor-bridge", [*argv, "--config", str(config), "--agent-id", AGENT_ID], tmp_path / "bridge.log"
    )
    station = Client(CallbackAPIVersion.VERSION2, client_id="province-station", protocol=MQTTProtocolVersion.MQTTv5)
    station.username_pw_set(mqtt_broker.username, mqtt_broker.password)
    station.connect(mqtt_broker.host, mqtt_broker.port)
    station.loop_start()
    try:
        wait_for(lambda: "stations on" in bridge.log_tail(), 30, "the bridge to start")
        time.sleep(1.5)  # its SUBSCRIBE follows the CONNACK
        sent = [
            station.publish(f"province/water/tram-p{i}", reading(f"tram-p{i}", minute, 2.0 + minute / 10), qos=1)
            for i in range(2)
            for minute in range(5)
        ]
        sent.append(station.publish("province/water/tram-p0", reading("tram-p0", 4, 2.4), qos=1))  # re-sent
        sent.append(station.publish("province/water/tram-p1", reading("tram-p1", 9, -500.0), qos=1))
        for info in sent:
            info.wait_for_publish(10)
        readings = "SELECT count(*) FROM sensor_readings WHERE agent_id = %s"
        wait_for(lambda: count(pg_dsn, readings) == 10, 30, "ten readings stored")
        letters = "SELECT count(*) FROM dead_letters WHERE agent_id = %s"
        wait_for(lambda: count(pg_dsn, letters) == 2, 30, "two dead letters")
    finally:
        station.loop_stop()
        station.disconnect()
        code = bridge.stop(timeout_s=20)
    assert code == 0, bridge.log_tail()
    with psycopg.connect(pg_dsn) as conn:
        reasons = [
            (str(reason), bytes(payload))
            for reason, payload in conn.execute(
                "SELECT reason, payload FROM dead_letters WHERE agent_id = %s ORDER BY reason", (AGENT_ID,)
            )
        ]
    assert reasons[0][0].startswith("duplicate_time: ")
    assert reasons[1][0].startswith("impossible_value: ")
    assert b"-500.0" in reasons[1][1]
    assert count(pg_dsn, "SELECT count(*) FROM sensor_readings WHERE agent_id = %s") == 10
