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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Literal

import psycopg
from psycopg import sql

from central_ingest.settings import RetentionSettings

RAW_COUNT_TABLES = ("count_intervals", "line_counts", "zone_intervals", "zone_class_counts")
ROLLUP_INPUT_TABLES = frozenset({"count_intervals", "line_counts"})
HOURLY_ROLLUP_TABLES = ("counts_hourly", "count_quality_hourly")
HOURLY_CONTINUOUS_AGGREGATES = ("counts_hourly_cagg", "count_quality_hourly_cagg")

Method = Literal["drop_chunks", "delete"]


@dataclass(frozen=True)
class RetentionTarget:
    table: str
    keep: dt.timedelta
    """Rows older than ``now - keep`` go."""
    method: Method
    time_column: str = "time"


@dataclass(frozen=True)
class RetentionStep:
    """One table's cutoff at one moment."""

    table: str
    cutoff: dt.datetime
    method: Method
    time_column: str


@dataclass(frozen=True)
class TableRetention:
    table: str
    cutoff: dt.datetime
    method: Method
    dropped_chunks: tuple[str, ...]
    """Chunk names (schema-qualified) dropped; empty for a DELETE."""
    deleted_rows: int | None
    """Rows deleted by a DELETE; None for drop_chunks (counting the rows of a dropped chunk would read it)."""


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
        RetentionTarget("progress", _days(settings.progress_days), "drop_chunks"),
        RetentionTarget("sensor_readings", _days(settings.sensor_readings_days), "drop_chunks"),
    )


def dead_letter_target(settings: RetentionSettings) -> RetentionTarget:
    return RetentionTarget("dead_letters", _days(settings.dead_letters_days), "delete", "received_at")


def service_targets(settings: RetentionSettings) -> tuple[RetentionTarget, ...]:
    """Everything the Apache path prunes: raw hypertables, hourly rollups, dead letters."""
    hourly = tuple(
        RetentionTarget(table, _days(settings.hourly_rollup_days), "drop_chunks", "bucket")
        for table in HOURLY_ROLLUP_TABLES
    )
    return (*raw_targets(settings), *hourly, dead_letter_target(settings))


def retention_policies(settings: RetentionSettings) -> dict[str, dt.timedelta]:
    """Timescale path: ``drop_after`` per relation (raw hypertables and hourly continuous aggregates)."""
    policies = {target.table: target.keep for target in raw_targets(settings)}
    policies |= {view: _days(settings.hourly_rollup_days) for view in HOURLY_CONTINUOUS_AGGREGATES}
    return policies


def plan(targets: tuple[RetentionTarget, ...], now: dt.datetime) -> tuple[RetentionStep, ...]:
    """Each target's cutoff at ``now``; pure."""
    if now.utcoffset() is None:
        raise ValueError("now must carry a timezone")
    return tuple(RetentionStep(t.table, now - t.keep, t.method, t.time_column) for t in targets)


def clamp_counts(steps: tuple[RetentionStep, ...], oldest_unrolled: dt.datetime | None) -> tuple[RetentionStep, ...]:
    """Pull the cutoff of the rollups' input tables back to the oldest hour not yet rolled up."""
    if oldest_unrolled is None:
        return steps
    return tuple(
        replace(step, cutoff=min(step.cutoff, oldest_unrolled)) if step.table in ROLLUP_INPUT_TABLES else step
        for step in steps
    )


async def _apply_step(conn: psycopg.AsyncConnection[Any], step: RetentionStep) -> TableRetention:
    async with conn.transaction():
        if step.method == "drop_chunks":
            cursor = await conn.execute(
                b"SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz)", (step.table, step.cutoff)
            )
            chunks = tuple(str(row[0]) for row in await cursor.fetchall())
            return TableRetention(step.table, step.cutoff, step.method, chunks, None)
        statement = sql.SQL("DELETE FROM {} WHERE {} < %s").format(
            sql.Identifier(step.table), sql.Identifier(step.time_column)
        )
        cursor = await conn.execute(statement, (step.cutoff,))
        return TableRetention(step.table, step.cutoff, step.method, (), cursor.rowcount)


async def apply_retention(conn: psycopg.AsyncConnection[Any], steps: tuple[RetentionStep, ...]) -> RetentionReport:
    """Run the steps, one short transaction each; ``conn`` must be in autocommit mode."""
    if not conn.autocommit:
        raise ValueError("retention needs an autocommit connection (one transaction per table)")
    return RetentionReport(tuple([await _apply_step(conn, step) for step in steps]))
