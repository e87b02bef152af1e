"""Hourly and daily rollups of the interval counts: service-maintained tables, or continuous aggregates.

Two tables per resolution (migration 0004): ``counts_hourly``/``counts_daily`` hold the summed
count per (bucket, agent, camera, line, interval_s, class, direction), and
``count_quality_hourly``/``count_quality_daily`` the summed data quality per (bucket, agent,
camera, line, interval_s): intervals, intervals without quality, expected_s, analysed_s,
downtime_s, frames analysed and dropped. ``interval_s`` stays in every key, so 60 s and 900 s
intervals of one line are never added together. An interval belongs to the bucket holding its
start time (as in ``store.queries``). Hour buckets start on the UTC hour; day buckets at local
midnight of the service timezone (day buckets are summed from hour buckets, which is exact for
every zone whose offset is a whole number of hours, Asia/Ho_Chi_Minh included).

Apache path (``refresh_rollups``): the ingest writer adds the UTC hour of every newly stored count
interval to ``count_rollup_dirty`` in the transaction that stores it. A refresh

1. claims the dirty hours: one short transaction takes ``LOCK count_rollup_dirty IN SHARE ROW
   EXCLUSIVE MODE``, which waits for every writer transaction that has marked an hour (so their
   rows are committed and visible) and holds off new markings for the moment it needs to move the
   hours into ``count_rollup_pending``; a writer that marks an hour afterwards marks it dirty anew;
2. recomputes the pending hours from ``line_counts``/``count_intervals`` (delete + insert, so it is
   idempotent and late data, e.g. an interval of last week stored today, rewrites its old bucket),
   then the local days holding them from the hourly table, and removes the hours from
   ``count_rollup_pending``: all in one transaction, a bounded number of hours at a time. A crash
   leaves the hours pending, and the next refresh finishes them.

Hours older than the oldest raw chunk still stored are never recomputed (their raw rows were
dropped by retention, and recomputing would erase the rollup): they are reported as skipped.

Timescale path (``continuous_aggregate_statements``): the same shapes as continuous aggregates over
the raw hypertables, created at runtime by ``maintenance.ensure_timescale_policies`` because the
Apache edition cannot even parse them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from central_ingest.query.params import parse_timezone

HOUR = dt.timedelta(hours=1)
DEFAULT_HOURS_PER_TRANSACTION = 48
"""Bounds one recomputation transaction: two days of a province's hours at most."""
CLAIM_LOCK_TIMEOUT_S = 10.0
"""How long a claim waits for in-flight ingest transactions before giving up (and trying next run)."""

COUNT_KEYS = ("agent_id", "source_id", "line_id", "interval_s", "vehicle_class", "direction")
QUALITY_KEYS = ("agent_id", "source_id", "line_id", "interval_s")
QUALITY_SUMS = ("intervals", "intervals_without_quality", "expected_s", "analysed_s", "downtime_s")
QUALITY_SUMS_ALL = (*QUALITY_SUMS, "frames_analysed", "frames_dropped")


@dataclass(frozen=True)
class RollupTables:
    """The four relations a rollup query reads: service tables (Apache) or continuous aggregates."""

    counts_hourly: str
    quality_hourly: str
    counts_daily: str
    quality_daily: str


SERVICE_TABLES = RollupTables("counts_hourly", "count_quality_hourly", "counts_daily", "count_quality_daily")
CONTINUOUS_AGGREGATES = RollupTables(
    "counts_hourly_cagg", "count_quality_hourly_cagg", "counts_daily_cagg", "count_quality_daily_cagg"
)


@dataclass(frozen=True)
class RollupReport:
    hours_claimed: int
    """Dirty hours moved to pending by this refresh (hours already pending from a crash are not counted)."""
    hours_recomputed: int
    days_recomputed: int
    hours_skipped: int
    """Pending hours older than the oldest raw chunk: left as they are in the rollups."""
    transactions: int


# --- pure helpers -----------------------------------------------------------------------------------


def utc_hour(instant: dt.datetime) -> dt.datetime:
    """The start of the UTC hour holding ``instant`` (which must carry a zone)."""
    if instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no timezone")
    return instant.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def contiguous_ranges(starts: Iterable[dt.datetime], step: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """Half-open ranges covering buckets of width ``step`` that start at ``starts``, adjacent ones merged."""
    ranges: list[tuple[dt.datetime, dt.datetime]] = []
    for start in sorted(set(starts)):
        if ranges and ranges[-1][1] >= start:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], start + step))
        else:
            ranges.append((start, start + step))
    return ranges


def local_day(instant: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` in UTC of the local calendar day of ``timezone`` holding ``instant``."""
    zone = ZoneInfo(timezone)
    day = instant.astimezone(zone).date()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def day_ranges(hours: Iterable[dt.datetime], timezone: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """The local days holding ``hours``, adjacent days merged into one range."""
    days = sorted({local_day(hour, timezone) for hour in hours})
    ranges: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in days:
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


def split_by_floor(
    hours: Sequence[dt.datetime], raw_floor: dt.datetime | None
) -> tuple[list[dt.datetime], list[dt.datetime]]:
    """(hours to recompute, hours to skip): an hour is recomputed only if its raw rows are all still stored."""
    if raw_floor is None:
        return [], list(hours)
    return [h for h in hours if h >= raw_floor], [h for h in hours if h < raw_floor]


# --- SQL --------------------------------------------------------------------------------------------


def _columns(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


_QUALITY_FROM_RAW = sql.SQL(
    "count(*), count(*) FILTER (WHERE expected_s IS NULL), sum(expected_s), sum(analysed_s), sum(downtime_s), "
    "sum(frames_analysed)::bigint, sum(frames_dropped)::bigint"
)
_QUALITY_FROM_HOURLY = sql.SQL(
    "sum(intervals), sum(intervals_without_quality), sum(expected_s), sum(analysed_s), sum(downtime_s), "
    "sum(frames_analysed)::bigint, sum(frames_dropped)::bigint"
)

_HOURLY_STATEMENTS = (
    sql.SQL("DELETE FROM counts_hourly WHERE bucket >= %(start)s AND bucket < %(end)s"),
    sql.SQL(
        "INSERT INTO counts_hourly (bucket, {keys}, count)"
        " SELECT time_bucket(INTERVAL '1 hour', time), {keys}, sum(count) FROM line_counts"
        " WHERE time >= %(start)s AND time < %(end)s GROUP BY 1, {keys}"
    ).format(keys=_columns(COUNT_KEYS)),
    sql.SQL("DELETE FROM count_quality_hourly WHERE bucket >= %(start)s AND bucket < %(end)s"),
    sql.SQL(
        "INSERT INTO count_quality_hourly (bucket, {keys}, {sums})"
        " SELECT time_bucket(INTERVAL '1 hour', time), {keys}, {quality} FROM count_intervals"
        " WHERE time >= %(start)s AND time < %(end)s GROUP BY 1, {keys}"
    ).format(keys=_columns(QUALITY_KEYS), sums=_columns(QUALITY_SUMS_ALL), quality=_QUALITY_FROM_RAW),
)

_DAILY_STATEMENTS = (
    sql.SQL("DELETE FROM counts_daily WHERE bucket >= %(start)s AND bucket < %(end)s"),
    sql.SQL(
        "INSERT INTO counts_daily (bucket, {keys}, count)"
        " SELECT time_bucket(INTERVAL '1 day', bucket, %(tz)s::text), {keys}, sum(count) FROM counts_hourly"
        " WHERE bucket >= %(start)s AND bucket < %(end)s GROUP BY 1, {keys}"
    ).format(keys=_columns(COUNT_KEYS)),
    sql.SQL("DELETE FROM count_quality_daily WHERE bucket >= %(start)s AND bucket < %(end)s"),
    sql.SQL(
        "INSERT INTO count_quality_daily (bucket, {keys}, {sums})"
        " SELECT time_bucket(INTERVAL '1 day', bucket, %(tz)s::text), {keys}, {quality} FROM count_quality_hourly"
        " WHERE bucket >= %(start)s AND bucket < %(end)s GROUP BY 1, {keys}"
    ).format(keys=_columns(QUALITY_KEYS), sums=_columns(QUALITY_SUMS_ALL), quality=_QUALITY_FROM_HOURLY),
)

# The oldest instant from which every raw count row is still stored: the newest of the two tables'
# oldest chunk starts (chunks are dropped whole, oldest first). NULL when neither holds a chunk.
_RAW_FLOOR = b"""
SELECT max(oldest) FROM (
    SELECT min(range_start) AS oldest FROM timescaledb_information.chunks
    WHERE hypertable_schema = current_schema() AND hypertable_name IN ('count_intervals', 'line_counts')
    GROUP BY hypertable_name
) AS per_table
"""

_CLAIM = b"""
WITH claimed AS (DELETE FROM count_rollup_dirty RETURNING hour)
INSERT INTO count_rollup_pending (hour)
SELECT DISTINCT date_trunc('hour', hour, 'UTC') FROM claimed
ON CONFLICT (hour) DO NOTHING
"""


def _require_autocommit(conn: psycopg.AsyncConnection[Any]) -> None:
    # Each step must commit on its own; inside an outer transaction the claim's lock would be held to its end.
    if not conn.autocommit:
        raise ValueError("rollup and retention maintenance needs an autocommit connection")


async def claim_dirty_hours(conn: psycopg.AsyncConnection[Any], lock_timeout_s: float = CLAIM_LOCK_TIMEOUT_S) -> int:
    """Move the dirty hours into ``count_rollup_pending`` (see the module doc); the number newly pending."""
    _require_autocommit(conn)
    async with conn.transaction():
        await conn.execute(b"SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout_s * 1000)}ms",))
        await conn.execute(b"LOCK TABLE count_rollup_dirty IN SHARE ROW EXCLUSIVE MODE")
        cursor = await conn.execute(_CLAIM)
        return max(cursor.rowcount, 0)


async def raw_floor(conn: psycopg.AsyncConnection[Any]) -> dt.datetime | None:
    cursor = await conn.execute(_RAW_FLOOR)
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def _recompute(
    conn: psycopg.AsyncConnection[Any],
    statements: Sequence[sql.SQL | sql.Composed],
    ranges: Sequence[tuple[dt.datetime, dt.datetime]],
    timezone: str,
) -> None:
    for start, end in ranges:
        for statement in statements:
            await conn.execute(statement, {"start": start, "end": end, "tz": timezone})


async def refresh_rollups(
    conn: psycopg.AsyncConnection[Any],
    timezone: str,
    *,
    hours_per_transaction: int = DEFAULT_HOURS_PER_TRANSACTION,
) -> RollupReport:
    """Claim the dirty hours and recompute them and their local days; see the module doc.

    ``conn`` must be in autocommit mode (each batch commits on its own).
    """
    _require_autocommit(conn)
    parse_timezone(timezone)
    if hours_per_transaction < 1:
        raise ValueError(f"hours_per_transaction must be >= 1, got {hours_per_transaction}")
    claimed = await claim_dirty_hours(conn)
    recomputed = skipped = days = transactions = 0
    while True:
        async with conn.transaction():
            cursor = await conn.execute(
                b"SELECT hour FROM count_rollup_pending ORDER BY hour LIMIT %s FOR UPDATE", (hours_per_transaction,)
            )
            batch: list[dt.datetime] = [row[0] for row in await cursor.fetchall()]
            if not batch:
                break
            to_recompute, to_skip = split_by_floor(batch, await raw_floor(conn))
            await _recompute(conn, _HOURLY_STATEMENTS, contiguous_ranges(to_recompute, HOUR), timezone)
            local_days = day_ranges(to_recompute, timezone)
            await _recompute(conn, _DAILY_STATEMENTS, local_days, timezone)
            await conn.execute(b"DELETE FROM count_rollup_pending WHERE hour = ANY(%s)", (batch,))
        transactions += 1
        recomputed += len(to_recompute)
        skipped += len(to_skip)
        days += len({local_day(hour, timezone) for hour in to_recompute})
    return RollupReport(claimed, recomputed, days, skipped, transactions)


async def oldest_unrolled_hour(conn: psycopg.AsyncConnection[Any]) -> dt.datetime | None:
    """The oldest hour still dirty or pending; retention never drops raw chunks from it on."""
    cursor = await conn.execute(
        b"SELECT min(hour) FROM (SELECT min(hour) AS hour FROM count_rollup_dirty"
        b" UNION ALL SELECT min(hour) FROM count_rollup_pending) AS both_tables"
    )
    row = await cursor.fetchone()
    return None if row is None else row[0]


# --- Timescale path: continuous aggregates ----------------------------------------------------------


def continuous_aggregate_statements(timezone: str, tables: RollupTables = CONTINUOUS_AGGREGATES) -> list[sql.Composed]:
    """``CREATE MATERIALIZED VIEW IF NOT EXISTS ... WITH (timescaledb.continuous)`` for the four rollups.

    Same columns as the service tables, so one query reads either. Day buckets are computed from
    the raw rows with the zone as a constant of the view (a continuous aggregate cannot take a
    parameter): changing ``Settings.timezone`` later needs the daily views dropped and rebuilt.
    """
    zone = sql.Literal(parse_timezone(timezone))
    hour = sql.SQL("time_bucket(INTERVAL '1 hour', time)")
    day = sql.SQL("time_bucket(INTERVAL '1 day', time, {})").format(zone)
    quality = sql.SQL(
        "count(*) AS intervals, sum(CASE WHEN expected_s IS NULL THEN 1 ELSE 0 END) AS intervals_without_quality, "
        "sum(expected_s) AS expected_s, sum(analysed_s) AS analysed_s, sum(downtime_s) AS downtime_s, "
        "sum(frames_analysed) AS frames_analysed, sum(frames_dropped) AS frames_dropped"
    )
    template = sql.SQL(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {view}"
        " WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS"
        " SELECT {bucket} AS bucket, {keys}, {aggregates} FROM {source} GROUP BY {bucket}, {keys} WITH NO DATA"
    )
    shapes = (
        (tables.counts_hourly, hour, COUNT_KEYS, sql.SQL("sum(count) AS count"), "line_counts"),
        (tables.quality_hourly, hour, QUALITY_KEYS, quality, "count_intervals"),
        (tables.counts_daily, day, COUNT_KEYS, sql.SQL("sum(count) AS count"), "line_counts"),
        (tables.quality_daily, day, QUALITY_KEYS, quality, "count_intervals"),
    )
    return [
        template.format(
            view=sql.Identifier(view),
            bucket=bucket,
            keys=_columns(keys),
            aggregates=aggregates,
            source=sql.Identifier(source),
        )
        for view, bucket, keys, aggregates, source in shapes
    ]


async def rollup_tables(conn: psycopg.AsyncConnection[Any]) -> RollupTables:
    """The continuous aggregates when the edition has them and they exist, else the service tables."""
    cursor = await conn.execute(
        b"SELECT current_setting('timescaledb.license') = 'timescale' AND to_regclass(%s) IS NOT NULL"
        b" AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
        (
            CONTINUOUS_AGGREGATES.counts_hourly,
            CONTINUOUS_AGGREGATES.quality_hourly,
            CONTINUOUS_AGGREGATES.counts_daily,
            CONTINUOUS_AGGREGATES.quality_daily,
        ),
    )
    row = await cursor.fetchone()
    return CONTINUOUS_AGGREGATES if row is not None and row[0] else SERVICE_TABLES
