"""Retention of personal data with its audit record, on the real TimescaleDB (Apache path).

Plate passes and violations lose whole chunks (rows counted first), congestion follows its own
period unaudited (not personal data), evidence images go after the plate-pass period unless a
still-stored violation references them. Each step that removed personal data appends one
``retention_delete`` entry, and the chain still verifies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from central_ingest.audit import AuditFilter, AuditRecord, list_audit, verify_chain
from central_ingest.settings import RetentionSettings
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.retention import RetentionReport, apply_retention, plan, service_targets

pytestmark = pytest.mark.integration

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
RETENTION = RetentionSettings(plate_passes_days=10, violations_days=40, congestion_days=20)
DAY = dt.timedelta(days=1)


def sha(n: int) -> str:
    return f"{n:064x}"


def insert_pass(conn: psycopg.Connection[Any], time: dt.datetime, evidence: str) -> None:
    conn.execute(
        "INSERT INTO plate_passes (time, event_id, agent_id, source_id, plate_confidence, track_id, evidence,"
        " schema_version, plate_key_id, plate_ct, plate_bidx, plate_index_key, plate_grams)"
        " VALUES (%s, %s, 'agent-r', 'cam-1', 0.9, 1, %s, '1.4', 'k1', '\\x00', '\\x00', 'i1', '{}')",
        (time, uuid.uuid4(), Jsonb([{"sha256": evidence}])),
    )


def insert_violation(conn: psycopg.Connection[Any], time: dt.datetime, evidence: str) -> None:
    conn.execute(
        "INSERT INTO violations (time, event_id, agent_id, source_id, violation_type, category, track_id, evidence,"
        " schema_version) VALUES (%s, %s, 'agent-r', 'cam-1', 'red_light', 'violation', 1, %s, '1.4')",
        (time, uuid.uuid4(), Jsonb([{"sha256": evidence}])),
    )


def insert_blob(conn: psycopg.Connection[Any], time: dt.datetime, digest: str) -> None:
    conn.execute(
        "INSERT INTO evidence_blobs (sha256, agent_id, content_type, time, key_id, sealed)"
        " VALUES (%s, 'agent-r', 'image/jpeg', %s, 'k1', '\\x00')",
        (digest, time),
    )


def insert_congestion(conn: psycopg.Connection[Any], time: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO congestion (time, event_id, agent_id, source_id, zone_id, level, window_s, vehicles,"
        " queue_length_ratio, occupancy, schema_version) VALUES (%s, %s, 'agent-r', 'cam-1', 'z1', 'heavy', 60, 9,"
        " 0.5, 0.5, '1.4')",
        (time, uuid.uuid4()),
    )


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        for n in range(3):  # 3 passes 30 days old (dropped), 1 pass 2 days old (kept)
            insert_pass(conn, NOW - 30 * DAY + n * dt.timedelta(minutes=5), sha(100 + n))
        insert_pass(conn, NOW - 2 * DAY, sha(200))
        insert_violation(conn, NOW - 50 * DAY, sha(300))  # past the violation period: dropped
        insert_violation(conn, NOW - 15 * DAY, sha(301))  # kept, and so is its image
        insert_blob(conn, NOW - 30 * DAY, sha(100))  # a pass image past 10 days: deleted
        insert_blob(conn, NOW - 12 * DAY, sha(999))  # unreferenced, past 10 days: deleted
        insert_blob(conn, NOW - 15 * DAY, sha(301))  # referenced by a stored violation: kept
        insert_blob(conn, NOW - 50 * DAY, sha(300))  # its violation is past 40 days: deleted
        insert_blob(conn, NOW - 2 * DAY, sha(200))  # recent: kept
        insert_congestion(conn, NOW - 30 * DAY)
        insert_congestion(conn, NOW - 2 * DAY)
    return pg_dsn


async def _run(dsn: str) -> tuple[RetentionReport, list[AuditRecord], bool]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        report = await apply_retention(conn, plan(service_targets(RETENTION), NOW))
        entries = await list_audit(conn, AuditFilter(action="retention_delete"), 100)
        chain = await verify_chain(conn)
    return report, entries, chain.ok


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def test_personal_data_is_deleted_and_each_deletion_is_audited(dsn: str) -> None:
    report, entries, chain_ok = asyncio.run(_run(dsn))
    by_table = {t.table: t for t in report.tables}
    assert (by_table["plate_passes"].deleted_rows, len(by_table["plate_passes"].dropped_chunks)) == (3, 1)
    assert (by_table["violations"].deleted_rows, len(by_table["violations"].dropped_chunks)) == (1, 1)
    assert by_table["evidence_blobs"].deleted_rows == 3
    assert (by_table["congestion"].deleted_rows, len(by_table["congestion"].dropped_chunks)) == (None, 1)
    assert (count(dsn, "plate_passes"), count(dsn, "violations"), count(dsn, "congestion")) == (1, 1, 1)
    with psycopg.connect(dsn) as conn:
        kept = {row[0] for row in conn.execute("SELECT sha256 FROM evidence_blobs").fetchall()}
    assert kept == {sha(301), sha(200)}

    assert [e.target["table"] for e in entries] == ["violations", "plate_passes", "evidence_blobs"]
    passes = next(e for e in entries if e.target["table"] == "plate_passes")
    assert (passes.actor, passes.role, passes.result_count) == ("system:retention", "system", 3)
    assert passes.target["chunks_removed"] == 1
    assert passes.target["cutoff"] == (NOW - 10 * DAY).isoformat()
    blobs = next(e for e in entries if e.target["table"] == "evidence_blobs")
    assert (blobs.target["evidence_blobs_removed"], blobs.result_count) == (3, 3)
    assert chain_ok


def test_a_pass_that_deletes_nothing_writes_no_entry(dsn: str) -> None:
    _, before, _ = asyncio.run(_run(dsn))
    report, after, chain_ok = asyncio.run(_run(dsn))
    assert all(not t.dropped_chunks and not t.deleted_rows for t in report.tables)
    assert len(after) == len(before)
    assert chain_ok
