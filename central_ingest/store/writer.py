"""Store validated events idempotently, one transaction and few round-trips per batch.

Rows go by binary COPY into session-local TEMP staging tables, then ONE statement
moves them into the hypertables with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``.
The unique keys (event_id, time) make a re-sent event a no-op, also when two
identical batches race: the second insert waits on the first's index entry and
then skips it. A count interval's bucket rows are inserted only for intervals that
were new in this statement, so a duplicate never adds buckets twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from event_contract import CountIntervalEvent, Event, HealthEvent

# ON COMMIT DELETE ROWS: the tables live as long as the pooled connection and are
# emptied by every commit, so a batch never sees another batch's rows.
STAGING_DDL = b"""
CREATE TEMP TABLE IF NOT EXISTS staging_count_intervals (
    time timestamptz, event_id uuid, agent_id text, source_id text, line_id text,
    interval_s integer, schema_version text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_line_counts (
    time timestamptz, event_id uuid, agent_id text, source_id text, line_id text,
    interval_s integer, vehicle_class text, direction text, count integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_health (
    time timestamptz, event_id uuid, agent_id text, source_id text, state text, reason text,
    frames_decoded bigint, frames_processed bigint, frames_dropped bigint, fps double precision,
    uptime_s double precision, schema_version text
) ON COMMIT DELETE ROWS;
"""

INTERVAL_COLUMNS = "time, event_id, agent_id, source_id, line_id, interval_s, schema_version"
INTERVAL_TYPES = ["timestamptz", "uuid", "text", "text", "text", "int4", "text"]
BUCKET_COLUMNS = "time, event_id, agent_id, source_id, line_id, interval_s, vehicle_class, direction, count"
BUCKET_TYPES = ["timestamptz", "uuid", "text", "text", "text", "int4", "text", "text", "int4"]
HEALTH_COLUMNS = (
    "time, event_id, agent_id, source_id, state, reason, frames_decoded, frames_processed, "
    "frames_dropped, fps, uptime_s, schema_version"
)
HEALTH_TYPES = [
    "timestamptz",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "int8",
    "int8",
    "int8",
    "float8",
    "float8",
    "text",
]

MOVE_STAGED_ROWS = f"""
WITH new_intervals AS (
    INSERT INTO count_intervals ({INTERVAL_COLUMNS})
    SELECT {INTERVAL_COLUMNS} FROM staging_count_intervals
    ON CONFLICT DO NOTHING
    RETURNING event_id, time
), new_buckets AS (
    INSERT INTO line_counts ({BUCKET_COLUMNS})
    SELECT {", ".join("s." + c for c in BUCKET_COLUMNS.split(", "))}
    FROM staging_line_counts AS s
    JOIN new_intervals AS n ON n.event_id = s.event_id AND n.time = s.time
    ON CONFLICT DO NOTHING
    RETURNING 1
), new_health AS (
    INSERT INTO health ({HEALTH_COLUMNS})
    SELECT {HEALTH_COLUMNS} FROM staging_health
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT (SELECT count(*) FROM new_intervals), (SELECT count(*) FROM new_health), (SELECT count(*) FROM new_buckets)
""".encode()


@dataclass(frozen=True)
class StoreResult:
    stored: int
    """Events new to central."""
    duplicates: int
    """Events central already had, or that appeared twice in the batch."""
    bucket_rows: int
    """``line_counts`` rows written for the new count intervals."""


@dataclass(frozen=True)
class StagedRows:
    """The rows of one batch, split by target table; built without touching the database."""

    intervals: tuple[tuple[Any, ...], ...]
    buckets: tuple[tuple[Any, ...], ...]
    health: tuple[tuple[Any, ...], ...]


def stage_rows(events: Sequence[Event]) -> StagedRows:
    """Rows for the staging tables; an event_id seen earlier in the same batch is skipped."""
    seen: set[object] = set()
    intervals: list[tuple[Any, ...]] = []
    buckets: list[tuple[Any, ...]] = []
    health: list[tuple[Any, ...]] = []
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if isinstance(event, CountIntervalEvent):
            head = (event.time, event.event_id, event.agent_id, event.source_id, event.line_id, event.interval_s)
            intervals.append((*head, event.schema_version))
            buckets.extend((*head, b.vehicle_class, b.direction, b.count) for b in event.counts)
        elif isinstance(event, HealthEvent):
            health.append(
                (
                    event.time,
                    event.event_id,
                    event.agent_id,
                    event.source_id,
                    event.state,
                    event.reason,
                    event.frames_decoded,
                    event.frames_processed,
                    event.frames_dropped,
                    event.fps,
                    event.uptime_s,
                    event.schema_version,
                )
            )
    return StagedRows(tuple(intervals), tuple(buckets), tuple(health))


async def _copy_rows(
    cursor: psycopg.AsyncCursor[Any], table: str, columns: str, types: list[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    statement = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)".encode()
    async with cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(row)


async def store_events(conn: psycopg.AsyncConnection[Any], events: Sequence[Event]) -> StoreResult:
    """Store a validated batch in one transaction; return how many events were new."""
    staged = stage_rows(events)
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.execute(STAGING_DDL)
        if staged.intervals:
            await _copy_rows(cursor, "staging_count_intervals", INTERVAL_COLUMNS, INTERVAL_TYPES, staged.intervals)
        if staged.buckets:
            await _copy_rows(cursor, "staging_line_counts", BUCKET_COLUMNS, BUCKET_TYPES, staged.buckets)
        if staged.health:
            await _copy_rows(cursor, "staging_health", HEALTH_COLUMNS, HEALTH_TYPES, staged.health)
        await cursor.execute(MOVE_STAGED_ROWS)
        row = await cursor.fetchone()
    if row is None:  # a SELECT without FROM always returns one row
        raise RuntimeError("storing the batch returned no counts")
    new_intervals, new_health, new_buckets = (int(v) for v in row)
    stored = new_intervals + new_health
    return StoreResult(stored=stored, duplicates=len(events) - stored, bucket_rows=new_buckets)
