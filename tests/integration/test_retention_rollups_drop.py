"""Retention on the real TimescaleDB (Apache path): old chunks dropped, newer ones kept, rollups kept.

One database for the module; ``now`` is fixed, so the cutoffs are exact. Retention here is short
(10 days raw, 100 days hourly rollups, 5 days dead letters) and the data sits 50 and 200 days
back (old) and 1 day back (new).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.maintenance import (
    MAINTENANCE_LOCK_KEY,
    MaintenanceReport,
    MaintenanceStats,
    maintenance_loop,
    run_maintenance_once,
)
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.rollups import refresh_rollups
from tests.integration.test_retention_rollups import ZONE, expected_counts, make_interval, store, stored_counts

pytestmark = pytest.mark.integration

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
NEW = NOW - dt.timedelta(days=1)
OLD = NOW - dt.timedelta(days=50)
ANCIENT = NOW - dt.timedelta(days=200)
RETENTION = RetentionSettings(
    counts_days=10,
    health_days=10,
    violations_days=10,
    plate_passes_days=10,
    progress_days=10,
    sensor_readings_days=10,
    dead_letters_days=5,
    hourly_rollup_days=100,
)
RAW_TABLES = (
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
AGENT = "agent-retention"


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


def settings_for(dsn: str) -> Settings:
    return Settings(database_url=dsn, retention=RETENTION, timezone=ZONE)


def insert_other_families(conn: psycopg.Connection[Any], time: dt.datetime) -> None:
    """One row in every raw hypertable that is not a count table, at ``time``."""
    event_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO zone_intervals (time, event_id, agent_id, source_id, zone_id, interval_s, entries, exits,"
        " expected_s, analysed_s, frames_analysed, frames_dropped, downtime_s, detector_backend, coverage,"
        " schema_version) VALUES (%s, %s, %s, 'cam-1', 'zone-1', 60, 1, 1, 60, 60, 300, 0, 0, 'cpu', 1, '1.2')",
        (time, event_id, AGENT),
    )
    conn.execute(
        "INSERT INTO zone_class_counts (time, event_id, agent_id, source_id, zone_id, interval_s, vehicle_class,"
        " entries, exits) VALUES (%s, %s, %s, 'cam-1', 'zone-1', 60, 'car', 1, 1)",
        (time, event_id, AGENT),
    )
    conn.execute(
        "INSERT INTO health (time, event_id, agent_id, source_id, state, reason, frames_decoded, frames_processed,"
        " frames_dropped, fps, uptime_s, schema_version)"
        " VALUES (%s, %s, %s, 'cam-1', 'live', '', 1, 1, 0, 25, 1, '1.2')",
        (time, uuid.uuid4(), AGENT),
    )
    conn.execute(
        "INSERT INTO violations (time, event_id, agent_id, source_id, violation_type, category, track_id,"
        " schema_version) VALUES (%s, %s, %s, 'cam-1', 'red_light', 'violation', 7, '1.2')",
        (time, uuid.uuid4(), AGENT),
    )
    conn.execute(
        "INSERT INTO plate_passes (time, event_id, agent_id, source_id, plate_key_id, plate_ct, plate_bidx,"
        " plate_index_key, plate_grams, plate_confidence, track_id, schema_version)"
        " VALUES (%s, %s, %s, 'cam-1', 'k1', '\\x00', '\\x00', 'i1', '{}', 0.9, 7, '1.2')",
        (time, uuid.uuid4(), AGENT),
    )
    conn.execute(
        "INSERT INTO progress (time, event_id, agent_id, source_id, project_id, percent_complete, method,"
        " confidence, confirmed, schema_version) VALUES (%s, %s, %s, 'cam-1', 'p-1', 40, 'manual', 1, true, '1.2')",
        (time, uuid.uuid4(), AGENT),
    )
    conn.execute(
        "INSERT INTO sensor_readings (time, event_id, agent_id, source_id, sensor_kind, metric, value,"
        " schema_version) VALUES (%s, %s, %s, 'st-1', 'water_level', 'water_level_m', 1.5, '1.2')",
        (time, uuid.uuid4(), AGENT),
    )


def chunk_starts(conn: psycopg.Connection[Any], table: str) -> list[dt.datetime]:
    rows = conn.execute(
        "SELECT range_start FROM timescaledb_information.chunks WHERE hypertable_name = %s ORDER BY 1", (table,)
    ).fetchall()
    return [row[0] for row in rows]


def row_count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def maintain(dsn: str, now: dt.datetime = NOW) -> MaintenanceReport:
    async def run() -> MaintenanceReport:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            report = await run_maintenance_once(conn, settings_for(dsn), now)
            assert not conn.autocommit  # restored for the pool
            return report

    return asyncio.run(run())


def test_old_chunks_dropped_rollups_kept_dead_letters_pruned(dsn: str) -> None:
    rng = random.Random(7)
    counts = [
        make_interval(rng, agent_id=AGENT, line_id="line-1", start=when + dt.timedelta(minutes=m))
        for when in (ANCIENT, OLD, NEW)
        for m in range(3)
    ]
    store(dsn, counts)  # marks the hours dirty: the maintenance pass rolls them up before dropping
    with psycopg.connect(dsn, autocommit=True) as conn:
        for when in (ANCIENT, OLD, NEW):
            insert_other_families(conn, when)
        for age_days in (30, 6, 4, 0):
            conn.execute(
                "INSERT INTO dead_letters (received_at, channel, agent_id, reason, payload)"
                " VALUES (%s, 'http', %s, 'bad', '\\x00')",
                (NOW - dt.timedelta(days=age_days), AGENT),
            )
        before = {table: chunk_starts(conn, table) for table in RAW_TABLES}
    for table in RAW_TABLES:
        assert len(before[table]) == 3, table  # one chunk per age, also for the 30-day chunks of progress

    report = maintain(dsn)

    assert report.ran
    assert report.path == "service"
    assert report.license == "apache"
    assert report.rollups is not None
    assert report.rollups.hours_recomputed == 3
    assert report.retention is not None
    by_table = {t.table: t for t in report.retention.tables}
    with psycopg.connect(dsn) as conn:
        for table in RAW_TABLES:
            after = chunk_starts(conn, table)
            # Only the chunk of the new data is left, untouched; the report names the dropped ones.
            assert after == [before[table][-1]], table
            assert len(by_table[table].dropped_chunks) == len(before[table]) - 1, table
        assert row_count(conn, "count_intervals") == 3
        assert row_count(conn, "violations") == 1
        assert row_count(conn, "dead_letters") == 2  # 4 and 0 days old; 30 and 6 days were pruned
        assert by_table["dead_letters"].deleted_rows == 2
        # Hourly rollups keep 100 days: the ancient hour went with its chunk, the old one stayed.
        hourly = stored_counts(conn, "counts_hourly", AGENT)
        assert hourly == expected_counts(counts[3:], day=False)
        assert len(by_table["counts_hourly"].dropped_chunks) == 1
        # Daily rollups are kept forever and still hold every interval's counts, dropped raw rows included.
        assert stored_counts(conn, "counts_daily", AGENT) == expected_counts(counts, day=True)

    # A second pass finds nothing more to drop.
    again = maintain(dsn)
    assert again.retention is not None
    assert again.retention.chunks_dropped == 0


def test_an_hour_whose_raw_chunks_are_gone_is_never_recomputed(dsn: str) -> None:
    """Recomputing an hour from dropped raw rows would erase its rollup: it is skipped instead."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        daily_before = stored_counts(conn, "counts_daily", AGENT)
        hourly_before = stored_counts(conn, "counts_hourly", AGENT)
        assert hourly_before  # the previous test left the OLD hour here
        old_hour = OLD.replace(minute=0, second=0, microsecond=0)
        conn.execute("INSERT INTO count_rollup_dirty VALUES (%s)", (old_hour,))

    async def run() -> Any:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await refresh_rollups(conn, ZONE)

    report = asyncio.run(run())

    assert (report.hours_recomputed, report.hours_skipped) == (0, 1)
    with psycopg.connect(dsn) as conn:
        assert stored_counts(conn, "counts_daily", AGENT) == daily_before
        assert stored_counts(conn, "counts_hourly", AGENT) == hourly_before
        assert row_count(conn, "count_rollup_pending") == 0


def test_a_second_process_skips_while_the_lock_is_held(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MAINTENANCE_LOCK_KEY,))
        report = maintain(dsn)
        assert not report.ran
        assert report.retention is None
        holder.execute("SELECT pg_advisory_unlock(%s)", (MAINTENANCE_LOCK_KEY,))
    assert maintain(dsn).ran


def test_the_loop_runs_passes_and_survives_errors(dsn: str) -> None:
    async def run(settings: Settings) -> MaintenanceStats:
        stats = MaintenanceStats()
        async with AsyncConnectionPool(dsn, min_size=1, max_size=1, open=False) as pool:
            task = asyncio.create_task(maintenance_loop(pool, settings, 0.05, stats=stats, rng=random.Random(0)))
            deadline = asyncio.get_running_loop().time() + 30
            while stats.passes + stats.errors < 3 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            assert not task.done()  # never dies on its own
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return stats

    good = asyncio.run(run(settings_for(dsn)))
    assert good.passes >= 3
    assert good.errors == 0
    assert good.last_report is not None
    assert good.last_report.ran

    broken = asyncio.run(run(Settings(database_url=dsn, retention=RETENTION, timezone="Mars/Olympus_Mons")))
    assert broken.passes == 0
    assert broken.errors >= 3
    assert broken.last_error is not None
    assert "Mars/Olympus_Mons" in broken.last_error
