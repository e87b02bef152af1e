"""Central with schema 1.1 events against a real TimescaleDB: quality columns, zone intervals, idempotent
re-sends, schema 1.0 batches, and count queries that never add two interval lengths of one line together.

The events are made by the edge's own aggregation code (``IntervalAggregator`` fed by a
``CoverageMeter``), so what is stored is what an agent sends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.agents import add_agent
from central_ingest.store.writer import store_events
from edge_agent.analytics.coverage import CoverageMeter
from edge_agent.analytics.intervals import IntervalAggregator, IntervalConfig, IntervalEvent
from edge_agent.analytics.lines import Crossing
from edge_agent.analytics.zones import ZoneEntry, ZoneExit, ZoneObservation
from event_contract import CountIntervalEvent, Direction, EventBatch, ZoneIntervalEvent
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

# The fixed dates below are years old: keep them storable (clock sanity refuses events older than retention).
KEEP_OLD_TEST_DATA = RetentionSettings(counts_days=36_500, health_days=36_500)

T0 = dt.datetime(2025, 6, 1, 6, 0, tzinfo=dt.UTC)
_agent_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def client(pg_dsn: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=pg_dsn, retention=KEEP_OLD_TEST_DATA, max_body_bytes=2 * 1024 * 1024, pool_max_size=4
    )
    with TestClient(create_app(settings)) as test_client:
        test_client.headers.update(api_headers(pg_dsn))  # an operator: the read APIs need a session
        yield test_client


@pytest.fixture
def agent(pg_dsn: str, client: TestClient) -> tuple[str, str]:
    agent_id = f"quality-agent-{next(_agent_numbers)}"
    with psycopg.connect(pg_dsn) as conn:
        return agent_id, add_agent(conn, agent_id)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def simulate(
    agent_id: str,
    *,
    lengths: tuple[int, ...] = (60, 900),
    lines: tuple[str, ...] = ("gate",),
    zones: tuple[str, ...] = (),
    live_s: float = 1800.0,
    dead_s: float = 0.0,
    crossings: list[Crossing] | None = None,
    zone_observations: list[ZoneObservation] | None = None,
) -> list[IntervalEvent]:
    """An agent's camera: 5 frames/s for ``live_s``, then ticks every 0.25 s while the source is down."""
    aggregators = [
        IntervalAggregator(
            agent_id,
            "cam-1",
            IntervalConfig(interval_s=length),
            line_ids=lines,
            zone_ids=zones,
            detector_backend="ssd_mobilenet_oidv4",
        )
        for length in lengths
    ]
    meter = CoverageMeter()
    pending = sorted(crossings or [], key=lambda c: c.timestamp)
    observations = sorted(zone_observations or [], key=lambda o: o.timestamp)
    events: list[IntervalEvent] = []
    steps = [(k * 0.2, True) for k in range(int(live_s * 5))]
    steps += [(live_s + k * 0.25, False) for k in range(1, int(dead_s * 4) + 1)]
    for seconds, live in steps:
        now = at(seconds)
        update = meter.frame(now) if live else meter.tick(now, "down")
        for aggregator in aggregators:
            aggregator.add_coverage(update)
            for crossing in (c for c in pending if c.timestamp <= now):
                aggregator.add_crossing(crossing)
            for observation in (o for o in observations if o.timestamp <= now):
                aggregator.add_zone(observation)
            events.extend(aggregator.close_until(now))
        pending = [c for c in pending if c.timestamp > now]
        observations = [o for o in observations if o.timestamp > now]
    for aggregator in aggregators:
        events.extend(aggregator.flush())
    return events


def post(client: TestClient, token: str, agent_id: str, events: list[IntervalEvent]) -> dict[str, Any]:
    body = EventBatch(agent_id=agent_id, events=tuple(events)).model_dump_json().encode()
    response = client.post("/api/v1/events", content=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def table_rows(dsn: str, agent_id: str) -> dict[str, int]:
    tables = ("count_intervals", "line_counts", "zone_intervals", "zone_class_counts")
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE agent_id = %s", (agent_id,)).fetchone()[0]  # type: ignore[index]
            for table in tables
        }


def crossing_pattern(minutes: int, line_id: str = "gate") -> list[Crossing]:
    """A different number of crossings per minute, class and direction."""
    kinds: list[tuple[str, Direction]] = [("motorbike", "in"), ("motorbike", "out"), ("car", "in")]
    out: list[Crossing] = []
    for minute in range(minutes):
        for n, (vehicle_class, direction) in enumerate(kinds):
            for k in range((minute + n) % 4):
                track_id = 1000 * minute + 10 * n + k
                out.append(Crossing(line_id, track_id, vehicle_class, direction, at(60 * minute + 7 * k + n)))
    return out


def test_quality_and_zone_events_are_stored_once_even_when_resent_or_raced(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    observations = [
        ZoneObservation("stop", at(30), (("bus", 1),), (ZoneEntry(5, "bus", at(30)),), (), 0.0),
        ZoneObservation("stop", at(95), (), (), (ZoneExit(5, "bus", at(30), at(92.5)),), None),
    ]
    crossings = crossing_pattern(3)
    events = simulate(
        agent_id, lengths=(60,), zones=("stop",), live_s=180, crossings=crossings, zone_observations=observations
    )
    zone_events = [e for e in events if isinstance(e, ZoneIntervalEvent)]
    assert [(e.entries, e.exits) for e in zone_events] == [(1, 0), (0, 1), (0, 0)]

    first = post(client, token, agent_id, events)
    assert first == {"received": len(events), "stored": len(events), "duplicates": 0, "rejected": 0, "rejections": []}
    stored = table_rows(pg_dsn, agent_id)
    buckets = {(c.timestamp.minute, c.vehicle_class, c.direction) for c in crossings}
    assert stored == {"count_intervals": 3, "line_counts": len(buckets), "zone_intervals": 3, "zone_class_counts": 2}
    assert post(client, token, agent_id, events) == {
        "received": len(events),
        "stored": 0,
        "duplicates": len(events),
        "rejected": 0,
        "rejections": [],
    }

    async def race() -> int:
        conns = [await psycopg.AsyncConnection.connect(pg_dsn) for _ in range(3)]
        try:
            results = await asyncio.gather(*(store_events(conn, events) for conn in conns))
        finally:
            for conn in conns:
                await conn.close()
        return sum(r.stored for r in results)

    assert asyncio.run(race()) == 0
    assert table_rows(pg_dsn, agent_id) == stored

    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT dwell_max_s, exits, coverage, analysed_s, frames_analysed, detector_backend FROM zone_intervals "
            "WHERE agent_id = %s AND time = %s",
            (agent_id, at(60)),
        ).fetchone()
    assert row == (62.5, 1, 1.0, 60.0, 300, "ssd_mobilenet_oidv4")

    zones = client.get("/api/v1/zones", params={"agent_id": agent_id, "start": T0.isoformat()}).json()
    assert [(z["time"], z["entries"], z["exits"], z["dwell_max_s"]) for z in zones] == [
        (at(0).isoformat(), 1, 0, None),
        (at(60).isoformat(), 0, 1, 62.5),
        (at(120).isoformat(), 0, 0, None),
    ]
    assert zones[0]["classes"] == [
        {
            "vehicle_class": "bus",
            "entries": 1,
            "exits": 0,
            "occupancy_mean": zones[0]["occupancy_mean"],
            "occupancy_max": 1,
        }
    ]
    assert zones[2]["classes"] == []


def test_version_1_0_batches_are_still_accepted_with_unknown_quality(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    legacy = {
        "schema_version": "1.0",
        "agent_id": agent_id,
        "events": [
            {
                "kind": "count_interval",
                "schema_version": "1.0",
                "event_id": "0196a2b4-0000-7000-8000-000000000001",
                "agent_id": agent_id,
                "source_id": "cam-old",
                "line_id": "gate",
                "time": at(0).isoformat(),
                "interval_s": 60,
                "counts": [{"vehicle_class": "car", "direction": "in", "count": 4}],
            }
        ],
    }
    response = client.post(
        "/api/v1/events", content=json.dumps(legacy).encode(), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0, "rejected": 0, "rejections": []}
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT schema_version, coverage, analysed_s FROM count_intervals WHERE agent_id = %s", (agent_id,)
        ).fetchone()
    assert row == ("1.0", None, None)
    (total,) = client.get("/api/v1/counts/totals", params={"agent_id": agent_id, "start": T0.isoformat()}).json()
    assert (total["count"], total["coverage"], total["intervals_without_quality"]) == (4, None, 1)


def test_counts_never_add_60_s_and_900_s_intervals_of_one_line(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    crossings = crossing_pattern(30) + crossing_pattern(30, line_id="gate-b")
    events = simulate(agent_id, lines=("gate", "gate-b"), crossings=crossings)
    # gate-b is stored only at 900 s (as if that agent's config had only [900]).
    events = [
        e for e in events if not (isinstance(e, CountIntervalEvent) and e.line_id == "gate-b" and e.interval_s == 60)
    ]
    post(client, token, agent_id, events)
    truth: Counter[tuple[str, str, str]] = Counter((c.line_id, c.vehicle_class, c.direction) for c in crossings)
    params = {"agent_id": agent_id, "start": T0.isoformat(), "end": at(1800).isoformat()}

    def totals(**extra: Any) -> dict[tuple[str, str, str], int]:
        rows = client.get("/api/v1/counts/totals", params=params | extra).json()
        return {(r["line_id"], r["vehicle_class"], r["direction"]): r["count"] for r in rows}

    assert totals() == dict(truth)
    assert totals(interval_s=900) == dict(truth)
    assert totals(interval_s=60) == {k: v for k, v in truth.items() if k[0] == "gate"}
    rows = client.get("/api/v1/counts/totals", params=params).json()
    assert {r["line_id"]: r["interval_lengths_s"] for r in rows} == {"gate": [60], "gate-b": [900]}
    assert {r["line_id"]: r["intervals"] for r in rows} == {"gate": 30, "gate-b": 2}
    # Watched throughout: each frame credits the 0.2 s before it; only the 0.2 s after the last frame are missing.
    assert {r["line_id"]: r["analysed_s"] for r in rows} == {
        "gate": pytest.approx(1799.8),
        "gate-b": pytest.approx(1799.8),
    }

    series = client.get("/api/v1/counts", params=params | {"bucket": "15m", "group_by": "line_id"}).json()
    per_bucket = {(r["bucket"], r["line_id"]): r["count"] for r in series}
    for quarter in range(2):
        for line_id in ("gate", "gate-b"):
            expected = sum(
                1
                for c in crossings
                if c.line_id == line_id and 900 * quarter <= (c.timestamp - T0).total_seconds() < 900 * (quarter + 1)
            )
            assert per_bucket[(at(900 * quarter).isoformat(), line_id)] == expected


def test_a_quiet_road_and_a_dead_camera_look_different(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    events = simulate(agent_id, lengths=(60,), live_s=180, dead_s=180)  # nothing crosses; then the camera dies
    post(client, token, agent_id, events)
    params = {"agent_id": agent_id, "start": T0.isoformat(), "end": at(360).isoformat(), "bucket": "1m"}
    rows = client.get("/api/v1/counts", params=params).json()
    got = [(r["count"], round(r["coverage"], 3), round(r["downtime_s"], 1), r["frames_analysed"]) for r in rows]
    # Each frame credits the 0.2 s before it; the camera died after its last frame at 06:02:59.8.
    assert got == [(0, 1.0, 0.0, 300), (0, 1.0, 0.0, 300), (0, 0.997, 0.2, 300)] + [(0, 0.0, 60.0, 0)] * 3
    grouped = client.get("/api/v1/counts", params=params | {"group_by": "vehicle_class"}).json()
    assert {(r["vehicle_class"], r["count"]) for r in grouped} == {(None, 0)}
