"""The JSON of the map's sites and of the health page's agents, built from database rows (``mapview.views``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from central_ingest.alerts.rules import Level, SensorThresholdRule
from central_ingest.mapview.views import health_agents, map_site

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
AQI = SensorThresholdRule(
    id="aqi",
    sensor_kind="environment",
    metric="vn_aqi",
    levels=(Level(name="kem", value=Decimal(151), label_vi="Kém", label_en="Poor"),),
)


def row(source_id: str, kind: str | None = "camera", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "agent_id": "hue-1",
        "source_id": source_id,
        "kind": kind,
        "name": None if kind is None else f"Site {source_id}",
        "lat": 16.46,
        "lon": 107.59,
        "province": "Huế",
        "district": None,
        "commune": "Phú Hội",
        "last_event_time": None,
        "health_time": None,
        "health_state": None,
        "health_reason": None,
        "fps": None,
    }
    return {**base, **fields}


def test_camera_site() -> None:
    site = map_site(row("cam-1", health_time=NOW - dt.timedelta(seconds=20), health_state="live", fps=12.0), NOW)
    assert site["state"] == "live"
    assert site["area_path"] == "Huế/Phú Hội"
    assert site["detail"]["link"] == "/live?grid=1&cameras=hue-1/cam-1"
    assert site["detail"]["fps"] == 12.0
    assert site["detail"]["last_heard"] == "2025-06-01T07:59:40+00:00"
    assert "sensor" not in site


def test_sensor_site_shows_the_rule_metric_and_its_level() -> None:
    reading = {
        "sensor_kind": "environment",
        "time": NOW,
        "values": {"vn_aqi": (180.0, NOW), "pm2_5": (90.5, NOW - dt.timedelta(minutes=1))},
    }
    site = map_site(row("env-1", "sensor", last_event_time=NOW), NOW, [AQI], reading)
    sensor = site["sensor"]
    assert site["state"] == "live"
    assert (sensor["level"], sensor["level_label_vi"], sensor["severity"]) == ("kem", "Kém", "warning")
    assert sensor["reading"]["metric"] == "vn_aqi"
    assert [r["metric"] for r in sensor["readings"]] == ["pm2_5", "vn_aqi"]
    assert sensor["readings"][0]["unit"] == "µg/m³"
    assert sensor["link"] == "/sensors?station=hue-1/env-1"
    quiet = map_site(row("env-1", "sensor"), NOW, [AQI], None)
    assert (quiet["state"], quiet["sensor"]["level"], quiet["sensor"]["reading"]) == ("unknown", "normal", None)


def test_health_agents_group_sources_under_their_agent() -> None:
    agents = [
        {
            "agent_id": "hue-1",
            "revoked": False,
            "events_stored": 10,
            "events_rejected": 2,
            "last_batch_at": NOW - dt.timedelta(seconds=10),
            "health_time": NOW - dt.timedelta(minutes=5),
            "health_state": "live",
            "health_reason": "",
            "uptime_s": 3600.0,
            "delivery": {"spool_events": 42, "spool_bytes": 1000, "dropped_events": 0, "state": "ok"},
        }
    ]
    sources = [
        row("cam-1", last_event_time=NOW - dt.timedelta(minutes=1), uptime_s=100.0, frames_dropped=3),
        row("cam-x", None, families=["count_intervals"], health_time=NOW, health_state="down"),
        {**row("cam-9"), "agent_id": "hue-2"},
    ]
    answer = health_agents(agents, sources, NOW)
    assert [a["agent_id"] for a in answer] == ["hue-1", "hue-2"]
    first = answer[0]
    assert (first["state"], first["stale"], first["events_refused"]) == ("live", True, 2)
    assert first["delivery"]["spool_events"] == 42
    assert first["last_event_time"] == "2025-06-01T07:59:00+00:00"
    assert [(s["id"], s["registered"], s["state"]) for s in first["sources"]] == [
        ("cam-1", True, "live"),
        ("cam-x", False, "down"),
    ]
    assert first["sources"][0]["frames_dropped"] == 3
    assert (answer[1]["known"], answer[1]["state"], answer[1]["delivery"]) == (False, "unknown", None)
