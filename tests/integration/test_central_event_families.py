"""Every event family of schema 1.3 through the real HTTP endpoint into TimescaleDB, exactly once.

Covers the writer's two paths: the COPY fast path (a new batch) and the staging + ON CONFLICT
fallback (a re-sent batch, and a batch that is half old, half new), plus what ingest keeps
beside the events: source_last_seen, the agent's running totals and the dirty rollup hours.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.settings import Settings
from central_ingest.store.agents import add_agent
from event_contract import (
    CountBucket,
    CountIntervalEvent,
    DeliveryHealth,
    Event,
    EventBatch,
    EvidenceRef,
    HealthEvent,
    IntervalQuality,
    PlatePassEvent,
    ProgressEvent,
    SensorReadingEvent,
    ViolationEvent,
    ZoneClassStats,
    ZoneIntervalEvent,
)

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = NOW.replace(minute=0, second=0) - dt.timedelta(hours=1)
_numbers = itertools.count(1)
FAMILY_TABLES = (
    "count_intervals",
    "line_counts",
    "zone_intervals",
    "zone_class_counts",
    "health",
    "violations",
    "plate_passes",
    "progress",
    "sensor_readings",
)


@pytest.fixture(scope="module")
def client(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    keys = tmp_path_factory.mktemp("keys") / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    settings = Settings(database_url=pg_dsn, pool_max_size=4, plate_keys_file=keys)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def agent(pg_dsn: str, client: TestClient) -> tuple[str, str]:
    agent_id = f"fam-{next(_numbers)}"
    with psycopg.connect(pg_dsn) as conn:
        return agent_id, add_agent(conn, agent_id)


def _quality() -> IntervalQuality:
    return IntervalQuality(
        expected_s=60,
        analysed_s=60,
        frames_analysed=600,
        frames_dropped=0,
        downtime_s=0,
        detector_backend="ssd",
        coverage=1.0,
    )


def one_of_each(agent_id: str, minute: int) -> list[Event]:
    time = HOUR + dt.timedelta(minutes=minute)
    keyframe = EvidenceRef(kind="keyframe", uri=f"evidence/{agent_id}/{minute}.jpg", time=time)
    return [
        CountIntervalEvent(
            agent_id=agent_id,
            source_id="cam-1",
            line_id="l1",
            time=time,
            interval_s=60,
            quality=_quality(),
            counts=(
                CountBucket(vehicle_class="car", direction="in", count=3),
                CountBucket(vehicle_class="motorbike", direction="out", count=9),
            ),
        ),
        ZoneIntervalEvent(
            agent_id=agent_id,
            source_id="cam-1",
            zone_id="z1",
            time=time,
            interval_s=60,
            entries=2,
            exits=0,
            occupancy_mean=1.5,
            occupancy_max=2,
            dwell_mean_s=None,
            dwell_max_s=None,
            dwell_p95_s=None,
            dwell_longest_inside_s=30.0,
            quality=_quality(),
            classes=(ZoneClassStats(vehicle_class="car", entries=2, exits=0, occupancy_mean=1.5, occupancy_max=2),),
        ),
        HealthEvent(agent_id=agent_id, source_id="cam-1", time=time, state="live", fps=12.0),
        ViolationEvent(
            agent_id=agent_id,
            source_id="cam-1",
            time=time,
            violation_type="red_light",
            category="violation",
            track_id=41,
            vehicle_class="motorbike",
            line_id="stop",
            plate="29B1-123.45",
            plate_confidence=0.91,
            evidence=(keyframe,),
        ),
        PlatePassEvent(
            agent_id=agent_id,
            source_id="cam-1",
            time=time,
            plate="30A-123.45",
            plate_confidence=0.97,
            track_id=42,
            direction="in",
            plate_colour="white",
        ),
        ProgressEvent(
            agent_id=agent_id,
            source_id="site-cam",
            time=time,
            project_id="bridge-1",
            percent_complete=42.5,
            method="camera_visual",
            confidence=0.7,
        ),
        SensorReadingEvent(
            agent_id=agent_id,
            source_id="air-1",
            time=time,
            sensor_kind="environment",
            values={"pm2_5": 35.0, "pm10": 60.0, "vn_aqi": 95.0},
        ),
    ]


def _post(client: TestClient, token: str, agent_id: str, events: list[Event]) -> dict[str, Any]:
    body = EventBatch(agent_id=agent_id, events=tuple(events)).model_dump_json()
    response = client.post("/api/v1/events", content=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    ack: dict[str, Any] = response.json()
    return ack


def _rows(dsn: str, agent_id: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table} WHERE agent_id = %s", (agent_id,)).fetchone()[0])  # type: ignore[index]
            for table in FAMILY_TABLES
        }


ONE_OF_EACH_ROWS = {
    "count_intervals": 1,
    "line_counts": 2,
    "zone_intervals": 1,
    "zone_class_counts": 1,
    "health": 1,
    "violations": 1,
    "plate_passes": 1,
    "progress": 1,
    "sensor_readings": 3,
}


def test_every_family_stored_once_when_the_batch_is_sent_three_times(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    events = one_of_each(agent_id, 0)
    acks = [_post(client, token, agent_id, events) for _ in range(3)]
    assert [(a["stored"], a["duplicates"], a["rejected"]) for a in acks] == [(7, 0, 0), (0, 7, 0), (0, 7, 0)]
    assert _rows(pg_dsn, agent_id) == ONE_OF_EACH_ROWS

    with psycopg.connect(pg_dsn) as conn:
        violation = conn.execute(
            "SELECT plate_ct, plate_confidence, evidence FROM violations WHERE agent_id = %s", (agent_id,)
        ).fetchone()
        progress = conn.execute(
            "SELECT package_id, percent_complete FROM progress WHERE agent_id = %s", (agent_id,)
        ).fetchone()
        metrics = conn.execute(
            "SELECT metric, value FROM sensor_readings WHERE agent_id = %s ORDER BY metric", (agent_id,)
        ).fetchall()
        seen = conn.execute(
            "SELECT source_id, family, last_event_time FROM source_last_seen WHERE agent_id = %s ORDER BY 1, 2",
            (agent_id,),
        ).fetchall()
        stats = conn.execute(
            "SELECT batches, events_stored, events_duplicate, events_rejected FROM agent_ingest_stats "
            "WHERE agent_id = %s",
            (agent_id,),
        ).fetchone()
        dirty = conn.execute("SELECT count(*) FROM count_rollup_dirty WHERE hour = %s", (HOUR,)).fetchone()
    assert violation is not None
    # The plate is sealed (docs/plate_vault.md): stored, but not as its text.
    assert violation[0] is not None
    assert b"29B1" not in bytes(violation[0])
    assert round(violation[1], 2) == 0.91
    assert violation[2] == [
        {"kind": "keyframe", "uri": f"evidence/{agent_id}/0.jpg", "time": HOUR.isoformat().replace("+00:00", "Z")}
    ]
    assert progress == ("", 42.5)  # '' is the project as a whole
    assert metrics == [("pm10", 60.0), ("pm2_5", 35.0), ("vn_aqi", 95.0)]
    assert seen == [
        ("air-1", "sensor_readings", HOUR),
        ("cam-1", "count_intervals", HOUR),
        ("cam-1", "health", HOUR),
        ("cam-1", "plate_passes", HOUR),
        ("cam-1", "violations", HOUR),
        ("cam-1", "zone_intervals", HOUR),
        ("site-cam", "progress", HOUR),
    ]
    assert stats == (3, 7, 14, 0)
    assert dirty == (1,)


def test_half_old_half_new_batch_stores_only_the_new_half_without_doubling_children(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    old = one_of_each(agent_id, 1)
    assert _post(client, token, agent_id, old)["stored"] == 7
    new = one_of_each(agent_id, 2)
    ack = _post(client, token, agent_id, old + new)
    assert (ack["received"], ack["stored"], ack["duplicates"]) == (14, 7, 7)
    assert _rows(pg_dsn, agent_id) == {table: 2 * n for table, n in ONE_OF_EACH_ROWS.items()}


def test_schema_1_3_delivery_health_and_station_levels_are_kept(
    client: TestClient, agent: tuple[str, str], pg_dsn: str
) -> None:
    agent_id, token = agent
    delivery = DeliveryHealth(
        spool_events=120,
        spool_bytes=51_000,
        dropped_events=7,
        dropped_by_kind={"count_interval": 7},
        dropped_first=HOUR,
        dropped_last=HOUR + dt.timedelta(minutes=6),
    )
    health = HealthEvent(agent_id=agent_id, source_id=agent_id, time=NOW, state="live", delivery=delivery)

    def water(minute: int, levels: tuple[float, float, float]) -> SensorReadingEvent:
        return SensorReadingEvent(
            agent_id=agent_id,
            source_id="tram-1",
            time=HOUR + dt.timedelta(minutes=minute),
            sensor_kind="water_level",
            values={"water_level_m": 2.5},
            alert_levels_m=levels,
        )

    _post(client, token, agent_id, [health, water(10, (3.0, 4.0, 5.0)), water(5, (1.0, 2.0, 3.0))])
    # A late batch with older readings must not overwrite the newer levels.
    _post(client, token, agent_id, [water(1, (0.5, 0.6, 0.7))])
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute("SELECT delivery FROM health WHERE agent_id = %s", (agent_id,)).fetchone()
        station = conn.execute(
            "SELECT alert_levels_m, levels_time FROM sensor_stations WHERE agent_id = %s AND source_id = 'tram-1'",
            (agent_id,),
        ).fetchone()
    assert stored is not None
    assert stored[0]["dropped_events"] == 7
    assert stored[0]["dropped_by_kind"] == {"count_interval": 7}
    assert station == ([3.0, 4.0, 5.0], HOUR + dt.timedelta(minutes=10))
