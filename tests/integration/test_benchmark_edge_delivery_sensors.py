"""The edge-delivery benchmark's sensor phase at a tiny size, through the real mosquitto: every message counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.edge_delivery_sensors import SensorLoad, measure_sensors
from devstack.mosquitto import MosquittoBroker

pytestmark = pytest.mark.integration


def test_sensor_phase_accounts_for_every_message(tmp_path: Path, mqtt_broker: MosquittoBroker) -> None:
    load = SensorLoad(messages=120, stations=6, publishers=2, bad_every=10, timeout_s=60)

    result = measure_sensors(mqtt_broker, load, rounds=1, workdir=tmp_path)

    agent = next(r for r in result["runs"] if r["consumer"] == "agent")
    broker = next(r for r in result["runs"] if r["consumer"] == "broker")
    assert broker["received"] == 120
    assert agent["acked"] == 120
    assert agent["dead_letters_kept"] == load.bad == 12
    assert agent["readings_stored"] == agent["spool_put_events"] == agent["sent_events"] == 108
    assert agent["spool_left"] == 0
    assert result["summary"]["sensor_messages_lost"] == 0
