"""Store and forward, whole: stations -> mosquitto -> edge-agent process -> spool -> central process -> TimescaleDB.

1. Central down while a camera and water-level stations keep producing (far more than 30 minutes of
   the demo's traffic), then back: every reading stored exactly once, the camera's intervals
   contiguous and unique, the backlog drained within 60 s, and the agent's counters agree.
2. The agent killed with SIGKILL while central has committed a batch whose answer it never got
   (a proxy holds central's response back), then restarted on the same spool: the batch is re-sent,
   central counts it as duplicates, and every reading is stored exactly once.
3. The site broker restarted (persistence on) while stations publish: the agent reconnects,
   resubscribes to its persistent session, and every reading reaches TimescaleDB exactly once.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack.apps import (
    ManagedProcess,
    edge_config,
    provision_agent,
    start_central,
    start_edge,
    write_edge_config,
    write_secret,
)
from devstack.demo_sensors import Published, SimulatedStations, station_topic
from devstack.mosquitto import MosquittoBroker, MosquittoSettings
from devstack.ports import free_port
from devstack.scene import SceneParams, render_scene
from tests.e2e.holding_proxy import HoldingProxy

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEMO_EVENTS_PER_MINUTE = 60 / 10 + 60 / 30 + 60 / 5 + 60 / 30
"""The demo's rate (``./run demo`` defaults): one line counted per 10 s interval, the camera's health every
30 s, one station reading every 5 s and the agent's own health every 30 s: 22 events a minute."""
THIRTY_MINUTES_OF_DEMO = int(30 * DEMO_EVENTS_PER_MINUTE)
DRAIN_LIMIT_S = 60.0
LIVE_AGE_S = 5.0
"""Drained: no waiting event is older than this (live events wait up to flush_interval_s for their batch)."""


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> float:
    """Seconds it took; fails the test with ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - started


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return status


def stored_readings(dsn: str, agent_id: str) -> list[tuple[str, dt.datetime]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT source_id, time FROM sensor_readings WHERE agent_id = %s AND metric = 'water_level_m'",
            (agent_id,),
        ).fetchall()
    return [(str(source), time) for source, time in rows]


def family_rows(dsn: str, agent_id: str) -> dict[str, tuple[int, int]]:
    """Per event table: (rows, distinct event ids) of the agent."""
    tables = ("count_intervals", "health", "sensor_readings")
    with psycopg.connect(dsn) as conn:
        result = {}
        for table in tables:
            row = conn.execute(
                f"SELECT count(*), count(DISTINCT event_id) FROM {table} WHERE agent_id = %s", (agent_id,)
            ).fetchone()
            assert row is not None
            result[table] = (int(row[0]), int(row[1]))
    return result


def ingest_stats(dsn: str, agent_id: str) -> tuple[int, int, int]:
    """(batches, events stored, duplicate events) central counted for the agent."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT batches, events_stored, events_duplicate FROM agent_ingest_stats WHERE agent_id = %s", (agent_id,)
        ).fetchone()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def wait_subscribed(status_file: Path) -> None:
    """Stations publish only once the agent's session exists; earlier readings have no subscriber to wait for."""

    def connected() -> bool:
        status = read_status(status_file)
        return bool(status and status.get("sensors") and status["sensors"]["connected"])

    wait_for(connected, 60, "the agent to connect to the broker")
    time.sleep(1.0)  # the SUBSCRIBE follows the CONNACK


def assert_each_reading_once(published: list[Published], stored: list[tuple[str, dt.datetime]]) -> None:
    expected = {(p.station_id, p.time) for p in published}
    assert len(stored) == len(set(stored)), "a reading is stored twice"
    missing = expected - set(stored)
    assert not missing, f"{len(missing)} of {len(expected)} readings lost, e.g. {sorted(missing)[:3]}"
    assert set(stored) == expected


def sensors_section(broker: MosquittoBroker, stations: list[str], client_id: str) -> dict[str, Any]:
    return {
        "broker": {
            "host": broker.host,
            "port": broker.port,
            "username": broker.username,
            "password": broker.password,
            "client_id": client_id,
        },
        "sensors": [
            {"id": station, "kind": "water_level", "topic": station_topic(station), "silent_after_s": 120}
            for station in stations
        ],
    }


def stations_on(broker: MosquittoBroker, agent_id: str, stations: list[str], every_s: float) -> SimulatedStations:
    """The test's station loggers on ``broker``: one QoS 1 client with a persistent session."""
    return SimulatedStations(
        broker.host,
        broker.port,
        broker.username,
        broker.password,
        stations=stations,
        every_s=every_s,
        start_m=2.0,
        rise_m=0.001,
        client_id=f"{agent_id}-stations",
    )


@pytest.fixture
def processes() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        process.stop(timeout_s=10)


def test_central_down_then_back_loses_and_duplicates_nothing(
    tmp_path: Path,
    pg_dsn: str,
    mqtt_broker: MosquittoBroker,
    rtsp_server_factory: Any,
    processes: list[ManagedProcess],
) -> None:
    agent_id = "saf-outage"
    stations = [f"tram-o{i}" for i in range(8)]
    video, _truth = render_scene(SceneParams(duration_s=20.0, width=640, height=360), tmp_path / "scene")
    camera_url = rtsp_server_factory(video, loop=True)
    token_file = write_secret(tmp_path / "agent.token", provision_agent(pg_dsn, agent_id))
    port = free_port()
    central = start_central(pg_dsn, tmp_path / "central.log", port=port)
    processes.append(central.process)
    config = edge_config(
        agent_id=agent_id,
        central_url=central.url,
        token_file=token_file,
        camera_id="cam-saf",
        camera_url=str(camera_url),
        lines=[{"id": "mid", "start": [0.0, 0.5], "end": [1.0, 0.5]}],
        interval_s=1,
        on_end="reconnect",
        detector={"backend": "motion"},
        state_dir=tmp_path / "agent-state",
        sensors=sensors_section(mqtt_broker, stations, f"{agent_id}-sensors"),
    )
    config["health_interval_s"] = 2.0
    config["central"].update({"flush_interval_s": 0.5, "retry": {"base_s": 0.2, "ceiling_s": 2.0}})
    config["central"]["breaker"] = {"open_backoff": {"base_s": 0.5, "ceiling_s": 2.0}}
    status_file = tmp_path / "status.json"
    edge = start_edge(write_edge_config(tmp_path / "edge.yaml", config), tmp_path / "edge.log", status_file)
    processes.append(edge)
    publisher = stations_on(mqtt_broker, agent_id, stations, every_s=0.1)
    try:
        wait_subscribed(status_file)
        publisher.start()
        wait_for(lambda: len(stored_readings(pg_dsn, agent_id)) > 0, 60, "the agent's first readings")
        central.process.stop()  # the uplink is down from here
        outage_started = time.monotonic()
        stored_before = ingest_stats(pg_dsn, agent_id)[1]

        def backlog() -> int:
            status = read_status(status_file)
            return int(status["uplink"]["backlog_events"]) if status else 0

        wait_for(lambda: backlog() >= 2 * THIRTY_MINUTES_OF_DEMO, 120, "a backlog of an hour of demo traffic")
        outage_s = time.monotonic() - outage_started
        held = backlog()
        central = start_central(pg_dsn, tmp_path / "central-2.log", port=port)
        processes.append(central.process)

        def drained() -> bool:
            # Nothing from the outage is left: every waiting event is younger than the status file's period.
            status = read_status(status_file)
            age = status["uplink"]["oldest_pending_age_s"] if status else None
            return age is None or age < LIVE_AGE_S

        drain_s = wait_for(drained, DRAIN_LIMIT_S, "the backlog to drain")
    finally:
        publisher.stop()
    # Let the last readings through, then stop the agent politely (it flushes its open intervals).
    time.sleep(2.0)
    assert edge.stop(timeout_s=30) == 0, edge.log_tail()
    final = read_status(status_file)
    assert final is not None
    uplink = final["uplink"]

    assert_each_reading_once(publisher.published, stored_readings(pg_dsn, agent_id))
    rows = family_rows(pg_dsn, agent_id)
    for table, (count, distinct) in rows.items():
        assert count == distinct or table == "sensor_readings", f"{table}: duplicated events"
    with psycopg.connect(pg_dsn) as conn:
        starts = [
            row[0]
            for row in conn.execute(
                "SELECT time FROM count_intervals WHERE agent_id = %s AND line_id = 'mid' ORDER BY time", (agent_id,)
            )
        ]
    assert len(starts) == len(set(starts)), "an interval is stored twice"
    gaps = [b - a for a, b in itertools.pairwise(starts) if b - a != dt.timedelta(seconds=1)]
    assert not gaps, f"count intervals missing across the outage: gaps {gaps[:5]}"
    assert uplink["backlog_events"] == 0
    assert uplink["spool"]["dropped_events"] == 0
    assert uplink["sent_events"] == uplink["submitted"]
    assert ingest_stats(pg_dsn, agent_id)[1] - stored_before >= held
    print(
        f"\noutage {outage_s:.1f} s, backlog {held} events (30 min of demo traffic = {THIRTY_MINUTES_OF_DEMO}), "
        f"drained in {drain_s:.1f} s; {len(publisher.published)} readings, {starts and len(starts)} intervals"
    )
    assert drain_s <= DRAIN_LIMIT_S


def test_agent_killed_mid_batch_resends_it_and_central_stores_it_once(
    tmp_path: Path, pg_dsn: str, mqtt_broker: MosquittoBroker, processes: list[ManagedProcess]
) -> None:
    agent_id = "saf-kill"
    stations = [f"tram-k{i}" for i in range(4)]
    token_file = write_secret(tmp_path / "agent.token", provision_agent(pg_dsn, agent_id))
    central = start_central(pg_dsn, tmp_path / "central.log")
    processes.append(central.process)
    proxy = HoldingProxy(int(central.url.rsplit(":", 1)[1]))
    config: dict[str, Any] = {
        "agent_id": agent_id,
        "central": {
            "url": f"http://127.0.0.1:{proxy.port}",
            "token_file": str(token_file),
            "flush_interval_s": 0.3,
            "timeout_s": 60,  # the held answer must not time out before the kill
        },
        "state_dir": str(tmp_path / "agent-state"),
        "health_interval_s": 5.0,
        "sensors": sensors_section(mqtt_broker, stations, f"{agent_id}-sensors"),
    }
    config_path = write_edge_config(tmp_path / "edge.yaml", config)
    status_file = tmp_path / "status.json"
    publisher = stations_on(mqtt_broker, agent_id, stations, every_s=0.05)
    edge = start_edge(config_path, tmp_path / "edge.log", status_file)
    processes.append(edge)
    try:
        wait_subscribed(status_file)
        publisher.start()
        wait_for(lambda: ingest_stats(pg_dsn, agent_id)[0] >= 3, 60, "the agent's first batches")
        batches_before = ingest_stats(pg_dsn, agent_id)[0]
        proxy.hold_responses()
        wait_for(proxy.requests_while_holding.is_set, 30, "a batch sent while answers are held")
        wait_for(lambda: ingest_stats(pg_dsn, agent_id)[0] > batches_before, 30, "central to commit that batch")
        os.kill(edge.process.pid, signal.SIGKILL)  # central has the batch; the agent never heard back
        edge.process.wait(timeout=10)
        duplicates_before = ingest_stats(pg_dsn, agent_id)[2]
        proxy.pass_responses()
        time.sleep(1.0)  # readings published meanwhile wait in the broker session
        edge = start_edge(config_path, tmp_path / "edge-2.log", status_file)
        processes.append(edge)
        wait_for(lambda: ingest_stats(pg_dsn, agent_id)[2] > duplicates_before, 60, "the re-sent batch")
        time.sleep(2.0)
    finally:
        publisher.stop()
        time.sleep(2.0)
    assert edge.stop(timeout_s=30) == 0, edge.log_tail()
    proxy.close()
    assert_each_reading_once(publisher.published, stored_readings(pg_dsn, agent_id))
    for table, (count, distinct) in family_rows(pg_dsn, agent_id).items():
        assert count == distinct or table == "sensor_readings", f"{table}: duplicated events"
    final = read_status(status_file)
    assert final is not None
    assert final["uplink"]["backlog_events"] == 0


def test_broker_restart_while_stations_publish_loses_no_reading(
    tmp_path: Path, pg_dsn: str, processes: list[ManagedProcess]
) -> None:
    agent_id = "saf-broker"
    stations = [f"tram-b{i}" for i in range(4)]
    broker = MosquittoBroker(tmp_path / "site-broker", MosquittoSettings(persistence=True))
    broker.start()
    try:
        token_file = write_secret(tmp_path / "agent.token", provision_agent(pg_dsn, agent_id))
        central = start_central(pg_dsn, tmp_path / "central.log")
        processes.append(central.process)
        config: dict[str, Any] = {
            "agent_id": agent_id,
            "central": {"url": central.url, "token_file": str(token_file), "flush_interval_s": 0.3},
            "state_dir": str(tmp_path / "agent-state"),
            "sensors": sensors_section(broker, stations, f"{agent_id}-sensors"),
        }
        config["sensors"]["broker"]["reconnect_backoff"] = {"base_s": 0.2, "ceiling_s": 1.0}
        status_file = tmp_path / "status.json"
        edge = start_edge(write_edge_config(tmp_path / "edge.yaml", config), tmp_path / "edge.log", status_file)
        processes.append(edge)
        publisher = stations_on(broker, agent_id, stations, every_s=0.05)
        try:
            wait_subscribed(status_file)
            publisher.start()
            wait_for(lambda: len(stored_readings(pg_dsn, agent_id)) > 40, 60, "readings before the restart")
            broker.restart()  # stations keep publishing; their client buffers while the broker is away
            at_restart = len(publisher.published)
            wait_for(lambda: len(stored_readings(pg_dsn, agent_id)) > at_restart + 40, 60, "readings after it")
        finally:
            publisher.stop()
        wait_for(
            lambda: len(set(stored_readings(pg_dsn, agent_id))) >= len(publisher.published),
            60,
            "every published reading in TimescaleDB",
        )
        assert edge.stop(timeout_s=30) == 0, edge.log_tail()
        status = read_status(status_file)
        assert status is not None
        assert status["sensors"]["connects"] >= 2, "the agent never reconnected"
    finally:
        broker.stop()
    assert_each_reading_once(publisher.published, stored_readings(pg_dsn, agent_id))
