"""Read queries of the event families (violations, congestion, sensor readings, progress), count export and rollups.

Lists are keyset-paginated, newest first (see ``query.pagination``): each page function fetches
``limit + 1`` rows after the cursor and returns a ``Page``. The count export and the rollup
reads are streamed through a server-side cursor (``stream_*``), so a month of a camera never
sits in memory, neither here nor in the database's answer buffer.

Counts follow ``store.queries``: a range is half-open on the interval's (or bucket's) start time,
and for each line (agent, camera, line) ONE interval length is read: the ``interval_s`` filter
when given, else the finest length stored for that line in the range, so 60 s and 900 s
intervals of one line are never added together. An interval (or rollup bucket) with no crossing
of the filtered class/direction still gives one row, with ``count`` 0 and null class and
direction, so its coverage is never lost.

Violations are listed without the plate text (``has_plate`` and ``plate_confidence`` only): reading
plates is personal data, served by the audited plate feature of the police issue (and stored sealed:
``plates.vault``).

Congestion hotspots rank zones by the time they spent heavy or jammed in a range: each congestion event
holds its level until the zone's next event, at most ``max_hold`` (a camera that stops reporting does not
stay jammed forever), clipped to the range; the event before the range (within ``max_hold``) gives the
level at its start.

Area scope: every read takes ``visible`` (the caller's visible ``(agent_id, source_id)`` pairs from
``access.scope.visible_sources``; None: unrestricted) and keeps only the rows of those sources
(``store.queries.visible_condition``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from central_ingest.access.scope import Source
from central_ingest.query.pagination import Cursor, Page, page_of, row_cursor
from central_ingest.query.params import (
    LINE_KEYS,
    MAX_BUCKETS_PER_QUERY,
    CountFilters,
    QueryError,
    TimeRange,
)
from central_ingest.store.queries import equalities, fetch_dicts, visible_condition
from central_ingest.store.rollups import RollupTables

STREAM_CHUNK_ROWS = 2000
"""Rows fetched per round trip of a streamed answer."""

Resolution = Literal["hour", "day"]

VIOLATION_COLUMNS = (
    "time",
    "event_id",
    "agent_id",
    "source_id",
    "violation_type",
    "category",
    "track_id",
    "vehicle_class",
    "line_id",
    "zone_id",
    "has_plate",
    "plate_confidence",
    "plate_colour",
    "duration_s",
    "evidence",
    "rule_id",
    "started_at",
    "signal_state",
    "related_track_ids",
    "received_at",
)
CONGESTION_COLUMNS = (
    "time",
    "event_id",
    "agent_id",
    "source_id",
    "zone_id",
    "level",
    "previous_level",
    "window_s",
    "vehicles",
    "queue_length_ratio",
    "occupancy",
    "speed_ratio",
    "received_at",
)
HOTSPOT_COLUMNS = (
    "agent_id",
    "source_id",
    "zone_id",
    "congested_s",
    "heavy_s",
    "jammed_s",
    "observed_s",
    "congested_share",
    "episodes",
)
CONGESTED_LEVELS = ("heavy", "jammed")
DEFAULT_MAX_HOLD = dt.timedelta(minutes=15)
SENSOR_COLUMNS = ("time", "event_id", "agent_id", "source_id", "sensor_kind", "metric", "value", "received_at")
SENSOR_BUCKET_COLUMNS = ("bucket", "agent_id", "source_id", "metric", "avg", "min", "max", "last", "readings")
PROGRESS_COLUMNS = (
    "time",
    "event_id",
    "agent_id",
    "source_id",
    "project_id",
    "package_id",
    "percent_complete",
    "method",
    "confidence",
    "confirmed",
    "note",
    "evidence",
    "raw_percent",
    "frames_used",
    "frames_rejected",
    "quality",
    "received_at",
)
EXPORT_COLUMNS = (
    "time",
    "end_time",
    "agent_id",
    "source_id",
    "line_id",
    "interval_s",
    "vehicle_class",
    "direction",
    "count",
    "expected_s",
    "analysed_s",
    "downtime_s",
    "frames_analysed",
    "frames_dropped",
    "coverage",
    "detector_backend",
    "schema_version",
    "event_id",
)
ROLLUP_COLUMNS = (
    "bucket",
    "agent_id",
    "source_id",
    "line_id",
    "interval_s",
    "vehicle_class",
    "direction",
    "count",
    "intervals",
    "intervals_without_quality",
    "expected_s",
    "analysed_s",
    "downtime_s",
    "frames_analysed",
    "frames_dropped",
    "coverage",
)
RESOLUTION_WIDTH: dict[Resolution, dt.timedelta] = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}


@dataclass(frozen=True)
class ViolationFilters:
    agent_id: str | None = None
    source_id: str | None = None
    category: str | None = None
    violation_type: str | None = None

    def as_params(self) -> dict[str, str]:
        values = {
            "agent_id": self.agent_id,
            "source_id": self.source_id,
            "category": self.category,
            "violation_type": self.violation_type,
        }
        return {column: value for column, value in values.items() if value is not None}


@dataclass(frozen=True)
class CongestionFilters:
    agent_id: str | None = None
    source_id: str | None = None
    zone_id: str | None = None
    level: str | None = None

    def as_params(self) -> dict[str, str]:
        values = {"agent_id": self.agent_id, "source_id": self.source_id, "zone_id": self.zone_id, "level": self.level}
        return {column: value for column, value in values.items() if value is not None}


@dataclass(frozen=True)
class SensorFilters:
    source_id: str
    agent_id: str | None = None
    metric: str | None = None

    def as_params(self) -> dict[str, str]:
        values = {"source_id": self.source_id, "agent_id": self.agent_id, "metric": self.metric}
        return {column: value for column, value in values.items() if value is not None}


@dataclass(frozen=True)
class ProgressFilters:
    project_id: str
    package_id: str | None = None
    """None: every package and the project as a whole (package_id '')."""

    def as_params(self) -> dict[str, str]:
        values = {"project_id": self.project_id, "package_id": self.package_id}
        return {column: value for column, value in values.items() if value is not None}


@dataclass(frozen=True)
class SensorSeriesQuery:
    time_range: TimeRange
    filters: SensorFilters
    bucket: dt.timedelta
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        buckets = (self.time_range.end - self.time_range.start) / self.bucket
        if buckets > MAX_BUCKETS_PER_QUERY:
            raise QueryError(
                f"range/bucket gives {int(buckets)} buckets; at most {MAX_BUCKETS_PER_QUERY}: "
                "use a wider bucket or a shorter range"
            )


def _where(
    alias: str,
    time_column: str,
    equal: dict[str, Any],
    visible: frozenset[Source] | None = None,
    keep_agent: str | None = None,
) -> tuple[sql.Composable, dict[str, Any]]:
    """The range, equality and scope conditions on ``alias``, and the scope's parameters; the rows of
    ``keep_agent`` pass the scope whatever it is (they are no camera's)."""
    time = sql.Identifier(alias, time_column)
    scope_sql, scope_params = visible_condition(visible, alias)
    if visible is not None and keep_agent is not None:
        kept = sql.SQL("{} = %(keep_agent)s").format(sql.Identifier(alias, "agent_id"))
        scope_sql = sql.SQL("({} OR {})").format(kept, scope_sql)
        scope_params = {**scope_params, "keep_agent": keep_agent}
    parts = [sql.SQL("{t} >= %(start)s AND {t} < %(end)s").format(t=time), *equalities(alias, equal), scope_sql]
    return sql.SQL(" AND ").join(parts), scope_params


def _after(cursor: Cursor | None, tiebreak: str | None = None) -> tuple[sql.Composable, dict[str, Any]]:
    """The keyset condition for rows after ``cursor`` in (time, event_id[, tiebreak]) DESC order."""
    if cursor is None:
        return sql.SQL(""), {}
    params: dict[str, Any] = {"after_time": cursor.time, "after_id": cursor.event_id}
    if tiebreak is None:
        return sql.SQL(" AND (x.time, x.event_id) < (%(after_time)s, %(after_id)s)"), params
    params["after_key"] = cursor.tiebreak or ""
    condition = sql.SQL(" AND (x.time, x.event_id, x.{}) < (%(after_time)s, %(after_id)s, %(after_key)s)")
    return condition.format(sql.Identifier(tiebreak)), params


async def _page(
    conn: psycopg.AsyncConnection[Any],
    *,
    select: sql.Composable,
    table: str,
    equal: dict[str, Any],
    time_range: TimeRange,
    limit: int,
    after: Cursor | None,
    tiebreak: str | None = None,
    visible: frozenset[Source] | None = None,
    keep_agent: str | None = None,
) -> Page[dict[str, Any]]:
    after_sql, after_params = _after(after, tiebreak)
    where, scope_params = _where("x", "time", equal, visible, keep_agent)
    order: list[sql.Composable] = [sql.SQL("x.time DESC"), sql.SQL("x.event_id DESC")]
    if tiebreak is not None:
        order.append(sql.SQL("x.{} DESC").format(sql.Identifier(tiebreak)))
    statement = sql.SQL(
        "SELECT {select} FROM {table} AS x WHERE {where}{after} ORDER BY {order} LIMIT %(limit)s"
    ).format(
        select=select,
        table=sql.Identifier(table),
        where=where,
        after=after_sql,
        order=sql.SQL(", ").join(order),
    )
    params = {
        "start": time_range.start,
        "end": time_range.end,
        "limit": limit + 1,
        **equal,
        **after_params,
        **scope_params,
    }
    rows = await fetch_dicts(conn, statement, params)
    return page_of(rows, limit, lambda row: row_cursor(row, tiebreak))


def _select(columns: tuple[str, ...], computed: dict[str, str] | None = None) -> sql.Composable:
    computed = computed or {}
    return sql.SQL(", ").join(
        sql.SQL(computed[name] + " AS {}").format(sql.Identifier(name))
        if name in computed
        else sql.Identifier("x", name)
        for name in columns
    )


async def violations_page(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: ViolationFilters,
    limit: int,
    after: Cursor | None = None,
    *,
    visible: frozenset[Source] | None = None,
) -> Page[dict[str, Any]]:
    """Violations and incidents in the range, newest first."""
    select = _select(VIOLATION_COLUMNS, {"has_plate": "x.plate_ct IS NOT NULL"})
    return await _page(
        conn,
        select=select,
        table="violations",
        equal=filters.as_params(),
        time_range=time_range,
        limit=limit,
        after=after,
        visible=visible,
    )


async def congestion_page(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: CongestionFilters,
    limit: int,
    after: Cursor | None = None,
    *,
    visible: frozenset[Source] | None = None,
) -> Page[dict[str, Any]]:
    """Congestion events (level changes and periodic reports) in the range, newest first."""
    return await _page(
        conn,
        select=_select(CONGESTION_COLUMNS),
        table="congestion",
        equal=filters.as_params(),
        time_range=time_range,
        limit=limit,
        after=after,
        visible=visible,
    )


async def congestion_hotspots(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: CongestionFilters,
    limit: int,
    max_hold: dt.timedelta = DEFAULT_MAX_HOLD,
    *,
    visible: frozenset[Source] | None = None,
) -> list[dict[str, Any]]:
    """Zones ranked by seconds spent heavy or jammed in the range (see the module doc), most congested first.

    ``congested_share`` is congested time over observed time (time covered by the zone's events);
    ``episodes`` counts entries into heavy/jammed from a lighter level (or from no report) in the range.
    A ``level`` filter is ignored here: every level is needed to measure time.
    """
    equal = {k: v for k, v in filters.as_params().items() if k != "level"}
    scope_sql, scope_params = visible_condition(visible, "c")
    where = sql.SQL("").join(sql.SQL(" AND ") + part for part in [*equalities("c", equal), scope_sql])
    statement = sql.SQL(
        "WITH ev AS ("
        " SELECT c.agent_id, c.source_id, c.zone_id, c.time, c.level,"
        " lag(c.level) OVER w AS before, lead(c.time) OVER w AS next_time FROM congestion AS c"
        " WHERE c.time >= %(start)s - %(hold)s AND c.time < %(end)s{where}"
        " WINDOW w AS (PARTITION BY c.agent_id, c.source_id, c.zone_id ORDER BY c.time, c.event_id)"
        "), spans AS ("
        " SELECT agent_id, source_id, zone_id, level, before, time,"
        " greatest(time, %(start)s) AS s, least(coalesce(next_time, %(end)s), time + %(hold)s, %(end)s) AS e FROM ev"
        "), totals AS ("
        " SELECT agent_id, source_id, zone_id,"
        " coalesce(sum(extract(epoch FROM e - s)) FILTER (WHERE level = ANY(%(congested)s)), 0)::float8"
        " AS congested_s,"
        " coalesce(sum(extract(epoch FROM e - s)) FILTER (WHERE level = 'heavy'), 0)::float8 AS heavy_s,"
        " coalesce(sum(extract(epoch FROM e - s)) FILTER (WHERE level = 'jammed'), 0)::float8 AS jammed_s,"
        " sum(extract(epoch FROM e - s))::float8 AS observed_s,"
        " count(*) FILTER (WHERE time >= %(start)s AND level = ANY(%(congested)s)"
        " AND (before IS NULL OR NOT before = ANY(%(congested)s))) AS episodes"
        " FROM spans WHERE e > s GROUP BY agent_id, source_id, zone_id"
        ") SELECT agent_id, source_id, zone_id, congested_s, heavy_s, jammed_s, observed_s,"
        " congested_s / nullif(observed_s, 0) AS congested_share, episodes FROM totals WHERE congested_s > 0"
        " ORDER BY congested_s DESC, agent_id, source_id, zone_id LIMIT %(limit)s"
    ).format(where=where)
    params = {
        "start": time_range.start,
        "end": time_range.end,
        "hold": max_hold,
        "congested": list(CONGESTED_LEVELS),
        "limit": limit,
        **equal,
        **scope_params,
    }
    return await fetch_dicts(conn, statement, params)


async def sensor_readings_page(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: SensorFilters,
    limit: int,
    after: Cursor | None = None,
    *,
    visible: frozenset[Source] | None = None,
) -> Page[dict[str, Any]]:
    """Raw readings (one row per metric) in the range, newest first."""
    return await _page(
        conn,
        select=_select(SENSOR_COLUMNS),
        table="sensor_readings",
        equal=filters.as_params(),
        time_range=time_range,
        limit=limit,
        after=after,
        tiebreak="metric",
        visible=visible,
    )


async def sensor_series(
    conn: psycopg.AsyncConnection[Any], query: SensorSeriesQuery, visible: frozenset[Source] | None = None
) -> list[dict[str, Any]]:
    """avg/min/max/last and the number of readings per bucket, agent and metric, oldest bucket first."""
    where, scope_params = _where("x", "time", query.filters.as_params(), visible)
    statement = sql.SQL(
        "SELECT time_bucket(%(bucket)s::interval, x.time, %(tz)s::text) AS bucket, x.agent_id, x.source_id, x.metric,"
        " avg(x.value) AS avg, min(x.value) AS min, max(x.value) AS max, last(x.value, x.time) AS last,"
        " count(*) AS readings FROM sensor_readings AS x WHERE {where}"
        " GROUP BY 1, x.agent_id, x.source_id, x.metric ORDER BY 1, x.agent_id, x.metric"
    ).format(where=where)
    params = {
        "start": query.time_range.start,
        "end": query.time_range.end,
        "bucket": query.bucket,
        "tz": query.timezone,
        **query.filters.as_params(),
        **scope_params,
    }
    return await fetch_dicts(conn, statement, params)


async def progress_page(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: ProgressFilters,
    limit: int,
    after: Cursor | None = None,
    *,
    visible: frozenset[Source] | None = None,
    pmu_agent: str | None = None,
) -> Page[dict[str, Any]]:
    """Progress reports of a project (or one package) in the range, newest first: of the cameras of ``visible``
    and, when given, of ``pmu_agent`` (figures entered at central, which carry no camera; the caller checks
    that the project is visible)."""
    return await _page(
        conn,
        select=_select(PROGRESS_COLUMNS),
        table="progress",
        equal=filters.as_params(),
        time_range=time_range,
        limit=limit,
        after=after,
        visible=visible,
        keep_agent=pmu_agent,
    )


def _line_choice(
    filters: CountFilters, visible: frozenset[Source] | None = None
) -> tuple[sql.Composable, dict[str, Any]]:
    """The ``chosen`` condition: line filters, the scope and, when set, the interval length."""
    line_params: dict[str, Any] = filters.line_params()
    scope_sql, scope_params = visible_condition(visible, "c")
    where = [*equalities("c", line_params), scope_sql]
    line_params |= scope_params
    if filters.interval_s is not None:
        where.append(sql.SQL("c.interval_s = %(interval_s)s"))
        line_params["interval_s"] = filters.interval_s
    return sql.SQL("").join(sql.SQL(" AND ") + part for part in where), line_params


def _bucket_filters(filters: CountFilters, alias: str) -> tuple[sql.Composable, dict[str, Any]]:
    """Class/direction filters, as extra join conditions on the counts (so a filtered-out interval keeps a row)."""
    params = {k: v for k, v in filters.as_params().items() if k not in LINE_KEYS}
    return sql.SQL("").join(sql.SQL(" AND ") + part for part in equalities(alias, params)), params


def count_export_statement(
    time_range: TimeRange, filters: CountFilters, visible: frozenset[Source] | None = None
) -> tuple[sql.Composed, dict[str, Any]]:
    """One row per stored interval and class/direction bucket, with the interval's quality, oldest first."""
    chosen_where, chosen_params = _line_choice(filters, visible)
    bucket_on, bucket_params = _bucket_filters(filters, "l")
    statement = sql.SQL(
        "WITH chosen AS ("
        " SELECT c.agent_id, c.source_id, c.line_id, min(c.interval_s) AS interval_s FROM count_intervals AS c"
        " WHERE c.time >= %(start)s AND c.time < %(end)s{chosen_where} GROUP BY c.agent_id, c.source_id, c.line_id"
        ") SELECT i.time, i.time + make_interval(secs => i.interval_s) AS end_time, i.agent_id, i.source_id,"
        " i.line_id, i.interval_s, l.vehicle_class, l.direction, coalesce(l.count, 0) AS count, i.expected_s,"
        " i.analysed_s, i.downtime_s, i.frames_analysed, i.frames_dropped, i.coverage, i.detector_backend,"
        " i.schema_version, i.event_id"
        " FROM count_intervals AS i JOIN chosen USING (agent_id, source_id, line_id, interval_s)"
        " LEFT JOIN line_counts AS l ON l.event_id = i.event_id AND l.time = i.time{bucket_on}"
        " WHERE i.time >= %(start)s AND i.time < %(end)s"
        " ORDER BY i.time, i.agent_id, i.source_id, i.line_id, i.event_id, l.vehicle_class, l.direction"
    ).format(chosen_where=chosen_where, bucket_on=bucket_on)
    return statement, {"start": time_range.start, "end": time_range.end, **chosen_params, **bucket_params}


def rollup_statement(
    tables: RollupTables,
    resolution: Resolution,
    time_range: TimeRange,
    filters: CountFilters,
    visible: frozenset[Source] | None = None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """Rollup rows per bucket, line, class and direction, with the line's quality in that bucket."""
    counts, quality = (
        (tables.counts_hourly, tables.quality_hourly)
        if resolution == "hour"
        else (tables.counts_daily, tables.quality_daily)
    )
    chosen_where, chosen_params = _line_choice(filters, visible)
    bucket_on, bucket_params = _bucket_filters(filters, "n")
    statement = sql.SQL(
        "WITH chosen AS ("
        " SELECT c.agent_id, c.source_id, c.line_id, min(c.interval_s) AS interval_s FROM {quality} AS c"
        " WHERE c.bucket >= %(start)s AND c.bucket < %(end)s{chosen_where}"
        " GROUP BY c.agent_id, c.source_id, c.line_id"
        ") SELECT q.bucket, agent_id, source_id, line_id, interval_s, n.vehicle_class, n.direction,"
        " coalesce(n.count, 0)::bigint AS count, q.intervals::bigint AS intervals,"
        " q.intervals_without_quality::bigint AS intervals_without_quality, q.expected_s, q.analysed_s,"
        " q.downtime_s, q.frames_analysed::bigint AS frames_analysed, q.frames_dropped::bigint AS frames_dropped,"
        " q.analysed_s / q.expected_s AS coverage"
        " FROM {quality} AS q JOIN chosen USING (agent_id, source_id, line_id, interval_s)"
        " LEFT JOIN {counts} AS n USING (bucket, agent_id, source_id, line_id, interval_s)"
        " WHERE q.bucket >= %(start)s AND q.bucket < %(end)s"
        " ORDER BY q.bucket, agent_id, source_id, line_id, n.vehicle_class, n.direction"
    )
    # With class/direction filters a bucket without them keeps its row (count 0, with its quality): the
    # filters narrow the joined counts, not the quality rows.
    if bucket_params:
        counts_relation: sql.Composable = sql.SQL("(SELECT * FROM {} AS n WHERE true{})").format(
            sql.Identifier(counts), bucket_on
        )
    else:
        counts_relation = sql.Identifier(counts)
    composed = statement.format(
        quality=sql.Identifier(quality),
        counts=counts_relation,
        chosen_where=chosen_where,
    )
    return composed, {"start": time_range.start, "end": time_range.end, **chosen_params, **bucket_params}


async def stream_rows(
    conn: psycopg.AsyncConnection[Any], statement: sql.Composed, params: dict[str, Any], name: str
) -> AsyncIterator[dict[str, Any]]:
    """Rows of ``statement`` through a server-side cursor, ``STREAM_CHUNK_ROWS`` per round trip."""
    async with conn.transaction(), conn.cursor(name=name, row_factory=dict_row) as cursor:
        cursor.itersize = STREAM_CHUNK_ROWS
        await cursor.execute(statement, params)
        async for row in cursor:
            yield row


def stream_count_export(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: CountFilters,
    visible: frozenset[Source] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    statement, params = count_export_statement(time_range, filters, visible)
    return stream_rows(conn, statement, params, "count_export")


def stream_rollup(
    conn: psycopg.AsyncConnection[Any],
    tables: RollupTables,
    resolution: Resolution,
    time_range: TimeRange,
    filters: CountFilters,
    *,
    visible: frozenset[Source] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    statement, params = rollup_statement(tables, resolution, time_range, filters, visible)
    return stream_rows(conn, statement, params, "count_rollup")
