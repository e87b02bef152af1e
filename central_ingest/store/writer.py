"""Store validated events idempotently, one transaction and few round-trips per batch.

Rows go by binary COPY into session-local TEMP staging tables, then ONE statement
moves them into the hypertables with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``.
The unique keys (event_id, time) make a re-sent event a no-op, also when two
identical batches race: the second insert waits on the first's index entry and
then skips it. The per-bucket rows of a count interval (``line_counts``) and the
per-class rows of a zone interval (``zone_class_counts``) are inserted only for
intervals that were new in this statement, so a duplicate never adds them twice.
Schema 1.0 count intervals carry no quality: their quality columns stay NULL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from event_contract import CountIntervalEvent, Event, HealthEvent, IntervalQuality, ZoneIntervalEvent

# ON COMMIT DELETE ROWS: the tables live as long as the pooled connection and are
# emptied by every commit, so a batch never sees another batch's rows. The _v2 names
# keep a connection opened by an older version of this code from reusing old shapes.
STAGING_DDL = b"""
CREATE TEMP TABLE IF NOT EXISTS staging_count_intervals_v2 (
    time timestamptz, event_id uuid, agent_id text, source_id text, line_id text,
    interval_s integer, schema_version text,
    expected_s double precision, analysed_s double precision, frames_analysed bigint, frames_dropped bigint,
    downtime_s double precision, detector_backend text, coverage double precision
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
CREATE TEMP TABLE IF NOT EXISTS staging_zone_intervals (
    time timestamptz, event_id uuid, agent_id text, source_id text, zone_id text, interval_s integer,
    entries integer, exits integer, occupancy_mean double precision, occupancy_max integer,
    dwell_mean_s double precision, dwell_max_s double precision, dwell_p95_s double precision,
    dwell_longest_inside_s double precision,
    expected_s double precision, analysed_s double precision, frames_analysed bigint, frames_dropped bigint,
    downtime_s double precision, detector_backend text, coverage double precision, schema_version text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_zone_class_counts (
    time timestamptz, event_id uuid, agent_id text, source_id text, zone_id text, interval_s integer,
    vehicle_class text, entries integer, exits integer, occupancy_mean double precision, occupancy_max integer
) ON COMMIT DELETE ROWS;
"""

QUALITY_COLUMNS = "expected_s, analysed_s, frames_analysed, frames_dropped, downtime_s, detector_backend, coverage"
QUALITY_TYPES = ["float8", "float8", "int8", "int8", "float8", "text", "float8"]
INTERVAL_COLUMNS = f"time, event_id, agent_id, source_id, line_id, interval_s, schema_version, {QUALITY_COLUMNS}"
INTERVAL_TYPES = ["timestamptz", "uuid", "text", "text", "text", "int4", "text", *QUALITY_TYPES]
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
ZONE_COLUMNS = (
    "time, event_id, agent_id, source_id, zone_id, interval_s, entries, exits, occupancy_mean, occupancy_max, "
    f"dwell_mean_s, dwell_max_s, dwell_p95_s, dwell_longest_inside_s, {QUALITY_COLUMNS}, schema_version"
)
ZONE_TYPES = [
    "timestamptz",
    "uuid",
    "text",
    "text",
    "text",
    "int4",
    "int4",
    "int4",
    "float8",
    "int4",
    "float8",
    "float8",
    "float8",
    "float8",
    *QUALITY_TYPES,
    "text",
]
ZONE_CLASS_COLUMNS = (
    "time, event_id, agent_id, source_id, zone_id, interval_s, vehicle_class, entries, exits, occupancy_mean, "
    "occupancy_max"
)
ZONE_CLASS_TYPES = ["timestamptz", "uuid", "text", "text", "text", "int4", "text", "int4", "int4", "float8", "int4"]


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{column}" for column in columns.split(", "))


MOVE_STAGED_ROWS = f"""
WITH new_intervals AS (
    INSERT INTO count_intervals ({INTERVAL_COLUMNS})
    SELECT {INTERVAL_COLUMNS} FROM staging_count_intervals_v2
    ON CONFLICT DO NOTHING
    RETURNING event_id, time
), new_buckets AS (
    INSERT INTO line_counts ({BUCKET_COLUMNS})
    SELECT {_prefixed(BUCKET_COLUMNS, "s")}
    FROM staging_line_counts AS s
    JOIN new_intervals AS n ON n.event_id = s.event_id AND n.time = s.time
    ON CONFLICT DO NOTHING
    RETURNING 1
), new_health AS (
    INSERT INTO health ({HEALTH_COLUMNS})
    SELECT {HEALTH_COLUMNS} FROM staging_health
    ON CONFLICT DO NOTHING
    RETURNING event_id
), new_zones AS (
    INSERT INTO zone_intervals ({ZONE_COLUMNS})
    SELECT {ZONE_COLUMNS} FROM staging_zone_intervals
    ON CONFLICT DO NOTHING
    RETURNING event_id, time
), new_zone_classes AS (
    INSERT INTO zone_class_counts ({ZONE_CLASS_COLUMNS})
    SELECT {_prefixed(ZONE_CLASS_COLUMNS, "s")}
    FROM staging_zone_class_counts AS s
    JOIN new_zones AS n ON n.event_id = s.event_id AND n.time = s.time
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM new_intervals), (SELECT count(*) FROM new_health), (SELECT count(*) FROM new_buckets),
       (SELECT count(*) FROM new_zones), (SELECT count(*) FROM new_zone_classes)
""".encode()


@dataclass(frozen=True)
class StoreResult:
    stored: int
    """Events new to central."""
    duplicates: int
    """Events central already had, or that appeared twice in the batch."""
    bucket_rows: int
    """``line_counts`` rows written for the new count intervals."""
    zone_class_rows: int = 0
    """``zone_class_counts`` rows written for the new zone intervals."""


@dataclass(frozen=True)
class StagedRows:
    """The rows of one batch, split by target table; built without touching the database."""

    intervals: tuple[tuple[Any, ...], ...]
    buckets: tuple[tuple[Any, ...], ...]
    health: tuple[tuple[Any, ...], ...]
    zones: tuple[tuple[Any, ...], ...] = ()
    zone_classes: tuple[tuple[Any, ...], ...] = ()


def _quality_row(quality: IntervalQuality | None) -> tuple[Any, ...]:
    if quality is None:
        return (None,) * 7
    return (
        quality.expected_s,
        quality.analysed_s,
        quality.frames_analysed,
        quality.frames_dropped,
        quality.downtime_s,
        quality.detector_backend,
        quality.coverage,
    )


def stage_rows(events: Sequence[Event]) -> StagedRows:
    """Rows for the staging tables; an event_id seen earlier in the same batch is skipped."""
    seen: set[object] = set()
    intervals: list[tuple[Any, ...]] = []
    buckets: list[tuple[Any, ...]] = []
    health: list[tuple[Any, ...]] = []
    zones: list[tuple[Any, ...]] = []
    zone_classes: list[tuple[Any, ...]] = []
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        if isinstance(event, CountIntervalEvent):
            head = (event.time, event.event_id, event.agent_id, event.source_id, event.line_id, event.interval_s)
            intervals.append((*head, event.schema_version, *_quality_row(event.quality)))
            buckets.extend((*head, b.vehicle_class, b.direction, b.count) for b in event.counts)
        elif isinstance(event, ZoneIntervalEvent):
            head = (event.time, event.event_id, event.agent_id, event.source_id, event.zone_id, event.interval_s)
            zones.append(
                (
                    *head,
                    event.entries,
                    event.exits,
                    event.occupancy_mean,
                    event.occupancy_max,
                    event.dwell_mean_s,
                    event.dwell_max_s,
                    event.dwell_p95_s,
                    event.dwell_longest_inside_s,
                    *_quality_row(event.quality),
                    event.schema_version,
                )
            )
            zone_classes.extend(
                (*head, c.vehicle_class, c.entries, c.exits, c.occupancy_mean, c.occupancy_max) for c in event.classes
            )
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
    return StagedRows(tuple(intervals), tuple(buckets), tuple(health), tuple(zones), tuple(zone_classes))


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
    copies = (
        ("staging_count_intervals_v2", INTERVAL_COLUMNS, INTERVAL_TYPES, staged.intervals),
        ("staging_line_counts", BUCKET_COLUMNS, BUCKET_TYPES, staged.buckets),
        ("staging_health", HEALTH_COLUMNS, HEALTH_TYPES, staged.health),
        ("staging_zone_intervals", ZONE_COLUMNS, ZONE_TYPES, staged.zones),
        ("staging_zone_class_counts", ZONE_CLASS_COLUMNS, ZONE_CLASS_TYPES, staged.zone_classes),
    )
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.execute(STAGING_DDL)
        for table, columns, types, rows in copies:
            if rows:
                await _copy_rows(cursor, table, columns, types, rows)
        await cursor.execute(MOVE_STAGED_ROWS)
        row = await cursor.fetchone()
    if row is None:  # a SELECT without FROM always returns one row
        raise RuntimeError("storing the batch returned no counts")
    new_intervals, new_health, new_buckets, new_zones, new_zone_classes = (int(v) for v in row)
    stored = new_intervals + new_health + new_zones
    return StoreResult(
        stored=stored, duplicates=len(events) - stored, bucket_rows=new_buckets, zone_class_rows=new_zone_classes
    )
