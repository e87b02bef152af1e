"""The agent's own health event (spool state for central), sensor silence events, and saved sensor times."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from edge_agent.delivery.dead_letters import DeadLetterStats
from edge_agent.sensor_state import load_last_times, save_last_times
from edge_agent.status_events import agent_health_event, delivery_health, sensor_health_events
from ioc_common.sensors.silence import SilenceChange
from tests.unit.test_preview_server import SPOOL, UPLINK

NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)


def test_the_agent_health_event_carries_the_spool_gap_for_central() -> None:
    letters = _dead_letter_stats(kept=3)
    health = delivery_health(UPLINK, SPOOL, letters)
    assert health.spool_events == UPLINK.backlog_events
    assert health.dropped_events == 1
    assert health.dropped_by_kind == {"count_interval": 1}
    assert health.dropped_first == dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC)
    assert health.dead_letters == 3
    assert health.state == "ok"
    assert "uplink circuit open" in health.reason  # the fixture's breaker is open
    event = agent_health_event("agent-1", NOW, 12.0, health)
    assert (event.source_id, event.state, event.delivery) == ("agent-1", "live", health)

    full = dataclasses.replace(SPOOL, state="disk_full", last_error="database or disk is full")
    degraded = delivery_health(UPLINK, full, letters)
    assert degraded.state == "degraded"
    assert degraded.reason.startswith("spool disk_full: database or disk is full")


def test_silent_sensors_go_down_and_come_back_live() -> None:
    changes = [
        SilenceChange("tram-1", "silent", NOW, "no reading for 900 s"),
        SilenceChange("tram-2", "live", NOW, "reading again after 1200 s"),
    ]
    events = sensor_health_events("agent-1", changes, NOW)
    assert [(e.source_id, e.state, e.reason) for e in events] == [
        ("tram-1", "down", "no reading for 900 s"),
        ("tram-2", "live", "reading again after 1200 s"),
    ]


def test_sensor_last_times_survive_a_restart_and_a_broken_file_is_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sensor_last_times.json"
    assert load_last_times(path) == {}
    save_last_times(path, {"tram-1": NOW})
    assert load_last_times(path) == {"tram-1": NOW}
    path.write_text("{not json", encoding="utf-8")
    assert load_last_times(path) == {}


def _dead_letter_stats(kept: int) -> DeadLetterStats:
    return DeadLetterStats(
        kept=kept,
        by_code={"not_json": kept},
        evicted=0,
        stored_now=kept,
        stored_bytes=100,
        truncated=0,
        failed=0,
        disk_errors=0,
        state="ok",
        last_error=None,
        corrupt_recoveries=0,
        salvaged=0,
        quarantined_files=(),
    )
