"""Retention: drop raw chunks and prune plain tables older than ``RetentionSettings`` says.

Apache path (``apply_retention``): ``drop_chunks(table, older_than => cutoff)`` on every raw
hypertable and on the hourly rollups (hypertables of 30-day chunks), and a plain ``DELETE`` on
``dead_letters``. ``drop_chunks`` removes whole chunks only (1-day chunks for most raw tables), so
rows slightly older than the cutoff may live until their chunk's end passes it: retention is a
floor, never an early deletion. Each table is its own short transaction.

The count tables are the input of the rollups: the caller refreshes the rollups first, and the
plan's count cutoff is pulled back to the oldest hour still dirty or pending (``clamp_counts``),
so no raw count leaves the database before the rollups hold it.

Timescale path (``retention_policies``): the same cutoffs as ``add_retention_policy`` jobs, applied
by ``maintenance.ensure_timescale_policies``; ``dead_letters`` is pruned by the service on both paths.

Personal data (``PERSONAL_DATA_TABLES``: plate passes, violations, evidence images) is deleted with a
record: every step that removes any of it appends a ``retention_delete`` entry to the audit log in
the step's own transaction, so the deletion and its record commit together. For ``drop_chunks`` the
rows are counted first (``count(*)`` over exactly the chunks about to go, in the same transaction).
Evidence images (``evidence_blobs``, a plain table) go when older than the plate-pass period, except
those a still-stored violation references, which stay until the violation period ends, and those a
still-stored progress row references (a construction camera's daily timelapse keyframe, a PMU's
confirmation photo), which stay as long as that row: a project's timelapse must outlive the
plate-pass period (``_EVIDENCE_DELETE``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

import psycopg
from psycopg import sql

from central_ingest.audit import AuditEntry, append_audit
from central_ingest.settings import RetentionSettings

RAW_COUNT_TABLES = ("count_intervals", "line_counts", "zone_intervals", "zone_class_counts")
ROLLUP_INPUT_TABLES = frozenset({"count_intervals", "line_counts"})
HOURLY_ROLLUP_TABLES = ("counts_hourly", "count_quality_hourly")
HOURLY_CONTINUOUS_AGGREGATES = ("counts_hourly_cagg", "count_quality_hourly_cagg")

PERSONAL_DATA_TABLES = frozenset({"plate_passes", "violations", "evidence_blobs"})
"""Tables whose deletions are written to the audit log (plates and their images are personal data)."""
EVIDENCE_TABLE = "evidence_blobs"
EVIDENCE_REFERENCE_WINDOW = dt.timedelta(days=1)
"""A violation references images taken within this of its own time (as ``plates.evidence_store`` looks)."""
RETENTION_ACTOR = "system:retention"

Method = Literal["drop_chunks", "delete", "delete_evidence"]


@dataclass(frozen=True)
class RetentionTarget:
    table: str
    keep: dt.timedelta
    """Rows older than ``now - keep`` go."""
    method: Method
    time_column: str = "time"
    keep_referenced: dt.timedelta | None = None
    """delete_evidence: images a stored violation references are kept this long instead."""


@dataclass(frozen=True)
class RetentionStep:
    """One table's cutoff at one moment."""

    table: str
    cutoff: dt.datetime
    method: Method
    time_column: str
    referenced_cutoff: dt.datetime | None = None
    """delete_evidence: the cutoff of images a stored violation references."""


@dataclass(frozen=True)
class TableRetention:
    table: str
    cutoff: dt.datetime
    method: Method
    dropped_chunks: tuple[str, ...]
    """Chunk names (schema-qualified) dropped; empty for a DELETE."""
    deleted_rows: int | None
    """Rows deleted by a DELETE; for drop_chunks the rows of the dropped chunks when the table holds personal
    data (counted before the drop), else None (counting would read every chunk)."""


@dataclass(frozen=True)
class RetentionReport:
    tables: tuple[TableRetention, ...]

    @property
    def chunks_dropped(self) -> int:
        return sum(len(table.dropped_chunks) for table in self.tables)


def _days(days: int) -> dt.timedelta:
    return dt.timedelta(days=days)


def raw_targets(settings: RetentionSettings) -> tuple[RetentionTarget, ...]:
    """The raw hypertables and how long each keeps its rows."""
    return (
        *(RetentionTarget(table, _days(settings.counts_days), "drop_chunks") for table in RAW_COUNT_TABLES),
        RetentionTarget("health", _days(settings.health_days), "drop_chunks"),
        RetentionTarget("violations", _days(settings.violations_days), "drop_chunks"),
        RetentionTarget("plate_passes", _days(settings.plate_passes_days), "drop_chunks"),
        RetentionTarget("congestion", _days(settings.congestion_days), "drop_chunks"),
        RetentionTarget("progress", _days(settings.progress_days), "drop_chunks"),
        RetentionTarget("site_activity", _days(settings.site_activity_days), "drop_chunks"),
        RetentionTarget("sensor_readings", _days(settings.sensor_readings_days), "drop_chunks"),
    )


def dead_letter_target(settings: RetentionSettings) -> RetentionTarget:
    return RetentionTarget("dead_letters", _days(settings.dead_letters_days), "delete", "received_at")


def evidence_target(settings: RetentionSettings) -> RetentionTarget:
    """Evidence images: the plate-pass period, or the violation period for images a violation references."""
    return RetentionTarget(
        EVIDENCE_TABLE,
        _days(settings.plate_passes_days),
        "delete_evidence",
        keep_referenced=_days(settings.violations_days),
    )


def service_targets(settings: RetentionSettings) -> tuple[RetentionTarget, ...]:
    """Everything the Apache path prunes: raw hypertables, evidence images, hourly rollups, dead letters.

    Evidence goes after the raw tables, so the violations it checks for references are already pruned.
    """
    hourly = tuple(
        RetentionTarget(table, _days(settings.hourly_rollup_days), "drop_chunks", "bucket")
        for table in HOURLY_ROLLUP_TABLES
    )
    return (*raw_targets(settings), evidence_target(settings), *hourly, dead_letter_target(settings))


def retention_policies(settings: RetentionSettings) -> dict[str, dt.timedelta]:
    """Timescale path: ``drop_after`` per relation (raw hypertables and hourly continuous aggregates)."""
    policies = {target.table: target.keep for target in raw_targets(settings)}
    policies |= {view: _days(settings.hourly_rollup_days) for view in HOURLY_CONTINUOUS_AGGREGATES}
    return policies


def plan(targets: tuple[RetentionTarget, ...], now: dt.datetime) -> tuple[RetentionStep, ...]:
    """Each target's cutoff at ``now``; pure."""
    if now.utcoffset() is None:
        raise ValueError("now must carry a timezone")
    return tuple(
        RetentionStep(
            t.table,
            now - t.keep,
            t.method,
            t.time_column,
            None if t.keep_referenced is None else now - t.keep_referenced,
        )
        for t in targets
    )


def clamp_counts(steps: tuple[RetentionStep, ...], oldest_unrolled: dt.datetime | None) -> tuple[RetentionStep, ...]:
    """Pull the cutoff of the rollups' input tables back to the oldest hour not yet rolled up."""
    if oldest_unrolled is None:
        return steps
    return tuple(
        replace(step, cutoff=min(step.cutoff, oldest_unrolled)) if step.table in ROLLUP_INPUT_TABLES else step
        for step in steps
    )


# Images older than the plate-pass cutoff go unless a still-stored violation references them; those go
# once past the violation cutoff. The reference check reads the evidence column of the violations
# stored between the two cutoffs (hash anti-join); see docs/access_and_audit.md for its cost.
# Images a stored progress row references stay while the row does, whatever the row's time (a PMU may
# confirm a past day with a photo taken today); progress holds a few rows per package and day, so
# reading the evidence of every row that has some is cheap.
_EVIDENCE_DELETE = b"""
WITH referenced AS (
    SELECT DISTINCT ref->>'sha256' AS sha256
    FROM violations AS v, jsonb_array_elements(v.evidence) AS ref
    WHERE v.time >= %(referenced_cutoff)s AND v.time < %(cutoff)s + %(window)s
),
progress_referenced AS (
    SELECT DISTINCT ref->>'sha256' AS sha256
    FROM progress AS p, jsonb_array_elements(p.evidence) AS ref
    WHERE p.evidence <> '[]'::jsonb
)
DELETE FROM evidence_blobs AS e
WHERE e.time < %(cutoff)s
  AND (e.time < %(referenced_cutoff)s - %(window)s
       OR NOT EXISTS (SELECT 1 FROM referenced AS r WHERE r.sha256 = e.sha256))
  AND NOT EXISTS (SELECT 1 FROM progress_referenced AS r WHERE r.sha256 = e.sha256)
"""


async def _count_rows_of_chunks(conn: psycopg.AsyncConnection[Any], step: RetentionStep) -> int:
    """Rows in the chunks ``drop_chunks`` is about to drop (the same ``older_than`` test)."""
    cursor = await conn.execute(
        b"SELECT show_chunks(%s::regclass, older_than => %s::timestamptz)", (step.table, step.cutoff)
    )
    total = 0
    for (chunk,) in await cursor.fetchall():
        counted = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(str(chunk))))
        row = await counted.fetchone()
        total += int(row[0]) if row is not None else 0
    return total


async def _drop_chunks(conn: psycopg.AsyncConnection[Any], step: RetentionStep) -> TableRetention:
    rows = await _count_rows_of_chunks(conn, step) if step.table in PERSONAL_DATA_TABLES else None
    cursor = await conn.execute(
        b"SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz)", (step.table, step.cutoff)
    )
    chunks = tuple(str(row[0]) for row in await cursor.fetchall())
    return TableRetention(step.table, step.cutoff, step.method, chunks, rows)


async def _delete(conn: psycopg.AsyncConnection[Any], step: RetentionStep) -> TableRetention:
    if step.method == "delete_evidence":
        referenced = step.referenced_cutoff if step.referenced_cutoff is not None else step.cutoff
        params = {
            "cutoff": step.cutoff,
            "referenced_cutoff": referenced,
            "window": EVIDENCE_REFERENCE_WINDOW,
        }
        cursor = await conn.execute(_EVIDENCE_DELETE, params)
    else:
        statement = sql.SQL("DELETE FROM {} WHERE {} < %s").format(
            sql.Identifier(step.table), sql.Identifier(step.time_column)
        )
        cursor = await conn.execute(statement, (step.cutoff,))
    return TableRetention(step.table, step.cutoff, step.method, (), cursor.rowcount)


def retention_audit_entry(result: TableRetention) -> AuditEntry:
    """The audit record of one table's deletion of personal data."""
    target: dict[str, Any] = {
        "table": result.table,
        "cutoff": result.cutoff.astimezone(dt.UTC).isoformat(),
        "method": result.method,
        "rows_removed": result.deleted_rows,
    }
    if result.method == "drop_chunks":
        target |= {"chunks_removed": len(result.dropped_chunks), "chunks": list(result.dropped_chunks)}
    if result.table == EVIDENCE_TABLE:
        target["evidence_blobs_removed"] = result.deleted_rows
    return AuditEntry(
        actor=RETENTION_ACTOR,
        role="system",
        action="retention_delete",
        target=target,
        reason="retention period elapsed (RetentionSettings)",
        result_count=result.deleted_rows,
    )


async def _apply_step(conn: psycopg.AsyncConnection[Any], step: RetentionStep) -> TableRetention:
    async with conn.transaction():
        if step.method == "drop_chunks":
            result = await _drop_chunks(conn, step)
        else:
            result = await _delete(conn, step)
        if step.table in PERSONAL_DATA_TABLES and (result.dropped_chunks or result.deleted_rows):
            # Last in the transaction: the audit chain's lock is held only until the commit just after.
            await append_audit(conn, retention_audit_entry(result))
        return result


async def apply_retention(conn: psycopg.AsyncConnection[Any], steps: tuple[RetentionStep, ...]) -> RetentionReport:
    """Run the steps, one short transaction each; ``conn`` must be in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("retention needs an autocommit connection (one transaction per table)")
    return RetentionReport(tuple([await _apply_step(conn, step) for step in steps]))
