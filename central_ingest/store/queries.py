"""Read queries over the hypertables: bucketed counts with their data quality, totals, zones, latest interval.

A count interval is attributed to the bucket holding its start ``time``; the range
is half-open, ``[start, end)``, on that same start time.

Never double counting: an agent may store several interval lengths of the same line
(``intervals_s: [60, 900]``). For each line (agent, camera, line) the queries read ONE
length: the ``interval_s`` filter when given, else the finest length stored for that line
in the range.

Area scope: every read takes ``visible`` (the caller's visible ``(agent_id, source_id)`` pairs from
``access.scope.visible_sources``; None: unrestricted) and keeps only the lines and zones of those sources.

Quality: every row carries the summed quality of the intervals behind it (its bucket and
its agent/camera/line group): ``intervals`` stored, ``expected_s``, ``analysed_s``,
``downtime_s``, ``frames_analysed``, ``frames_dropped``, the ``detector_backends`` and
interval lengths used, and ``coverage = analysed_s / expected_s``. Intervals of schema 1.0
agents carry no quality: they are counted in ``intervals_without_quality`` and left out of
the sums (``coverage`` is null when no interval has quality). A bucket or line whose
intervals hold no crossing at all still gets a row, with ``count`` 0 (and null class and
direction when those are grouped), so a quiet road (coverage near 1) and a dead camera
(coverage 0, downtime) never both look like a missing row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from central_ingest.access.scope import Source, named_source_condition
from central_ingest.query.params import GROUP_KEYS, LINE_KEYS, CountFilters, CountSeriesQuery, GroupKey, TimeRange

TOTAL_KEYS = GROUP_KEYS
QUALITY_FIELDS = (
    "intervals",
    "intervals_without_quality",
    "expected_s",
    "analysed_s",
    "downtime_s",
    "frames_analysed",
    "frames_dropped",
    "coverage",
    "detector_backends",
    "interval_lengths_s",
)
ZONE_ROW_LIMIT = 10_000

_QUALITY_SUMS = sql.SQL(
    "count(*) AS intervals, "
    "count(*) FILTER (WHERE i.expected_s IS NULL) AS intervals_without_quality, "
    "sum(i.expected_s) AS expected_s, sum(i.analysed_s) AS analysed_s, sum(i.downtime_s) AS downtime_s, "
    "sum(i.frames_analysed)::bigint AS frames_analysed, sum(i.frames_dropped)::bigint AS frames_dropped, "
    "coalesce(array_agg(DISTINCT i.detector_backend ORDER BY i.detector_backend) "
    "FILTER (WHERE i.detector_backend IS NOT NULL), '{}') AS detector_backends, "
    "array_agg(DISTINCT i.interval_s ORDER BY i.interval_s) AS interval_lengths_s"
)
_QUALITY_OUT = sql.SQL(
    "q.intervals, q.intervals_without_quality, q.expected_s, q.analysed_s, q.downtime_s, q.frames_analysed, "
    "q.frames_dropped, q.analysed_s / q.expected_s AS coverage, q.detector_backends, q.interval_lengths_s"
)


def equalities(alias: str, params: dict[str, Any]) -> list[sql.Composable]:
    """``alias.column = %(column)s`` for every parameter."""
    return [
        sql.SQL("{}.{} = {}").format(sql.Identifier(alias), sql.Identifier(column), sql.Placeholder(column))
        for column in params
    ]


def visible_condition(visible: frozenset[Source] | None, alias: str) -> tuple[sql.Composable, dict[str, Any]]:
    """``alias.agent_id, alias.source_id`` among ``visible`` (TRUE when None), with the named parameters these
    statements use throughout."""
    return named_source_condition(visible, f"{alias}.agent_id", f"{alias}.source_id")


def _counts_statement(
    time_range: TimeRange,
    filters: CountFilters,
    group_by: tuple[GroupKey, ...],
    bucket: tuple[dt.timedelta, str] | None,
    visible: frozenset[Source] | None = None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """Counts per (bucket,) group with the quality of each (bucket,) line-level group; see the module doc."""
    params: dict[str, Any] = {"start": time_range.start, "end": time_range.end}
    line_filters = filters.line_params()
    bucket_filters = {k: v for k, v in filters.as_params().items() if k not in LINE_KEYS}
    params |= line_filters | bucket_filters
    scope_sql, scope_params = visible_condition(visible, "c")
    params |= scope_params
    chosen_where = [sql.SQL("c.time >= %(start)s AND c.time < %(end)s"), *equalities("c", line_filters), scope_sql]
    if filters.interval_s is not None:
        chosen_where.append(sql.SQL("c.interval_s = %(interval_s)s"))
        params["interval_s"] = filters.interval_s
    counts_where = [sql.SQL("l.time >= %(start)s AND l.time < %(end)s"), *equalities("l", bucket_filters)]

    line_keys: list[str] = [key for key in group_by if key in LINE_KEYS]
    bucket_keys: list[str] = [key for key in group_by if key not in LINE_KEYS]
    q_head: sql.Composable = sql.SQL("")
    n_head: sql.Composable = sql.SQL("")
    out_head: sql.Composable = sql.SQL("")
    join_on: list[sql.Composable] = []
    order_head: list[str] = []
    if bucket is not None:
        params |= {"bucket": bucket[0], "tz": bucket[1]}
        bucket_expr = sql.SQL("time_bucket(%(bucket)s::interval, {}.time, %(tz)s::text) AS bucket, ")
        q_head, n_head = bucket_expr.format(sql.Identifier("i")), bucket_expr.format(sql.Identifier("l"))
        out_head, join_on, order_head = sql.SQL("q.bucket, "), [sql.SQL("n.bucket = q.bucket")], ["bucket"]

    def keys(names: list[str], alias: str = "") -> sql.Composable:
        prefix = sql.SQL(alias + ".") if alias else sql.SQL("")
        return sql.SQL("").join(prefix + sql.Identifier(name) + sql.SQL(", ") for name in names)

    def group(names: list[str]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(name) for name in names) if names else sql.SQL("()")

    join_on += [sql.SQL("n.{0} = q.{0}").format(sql.Identifier(key)) for key in line_keys]
    statement = sql.SQL(
        "WITH chosen AS ("
        " SELECT c.agent_id, c.source_id, c.line_id, min(c.interval_s) AS interval_s FROM count_intervals AS c"
        " WHERE {chosen_where} GROUP BY c.agent_id, c.source_id, c.line_id"
        "), quality AS ("
        " SELECT {q_head}{q_keys}{sums}"
        " FROM count_intervals AS i JOIN chosen USING (agent_id, source_id, line_id, interval_s)"
        " WHERE i.time >= %(start)s AND i.time < %(end)s GROUP BY {q_group}"
        "), counts AS ("
        " SELECT {n_head}{n_keys}sum(l.count)::bigint AS count"
        " FROM line_counts AS l JOIN chosen USING (agent_id, source_id, line_id, interval_s)"
        " WHERE {counts_where} GROUP BY {n_group}"
        ") SELECT {out_head}{out_line_keys}{out_bucket_keys}coalesce(n.count, 0)::bigint AS count, {quality}"
        " FROM quality AS q LEFT JOIN counts AS n ON {join_on}"
        " ORDER BY {order}"
    ).format(
        chosen_where=sql.SQL(" AND ").join(chosen_where),
        q_head=q_head,
        q_keys=keys(line_keys),
        sums=_QUALITY_SUMS,
        q_group=group(order_head + line_keys),
        n_head=n_head,
        n_keys=keys(line_keys + bucket_keys),
        counts_where=sql.SQL(" AND ").join(counts_where),
        n_group=group(order_head + line_keys + bucket_keys),
        out_head=out_head,
        out_line_keys=keys(line_keys, "q"),
        out_bucket_keys=keys(bucket_keys, "n"),
        quality=_QUALITY_OUT,
        join_on=sql.SQL(" AND ").join(join_on) if join_on else sql.SQL("true"),
        order=sql.SQL(", ").join(sql.Identifier(name) for name in [*order_head, *line_keys, *bucket_keys])
        if order_head or group_by
        else sql.SQL("1"),
    )
    return statement, params


def count_series_statement(
    query: CountSeriesQuery, visible: frozenset[Source] | None = None
) -> tuple[sql.Composed, dict[str, Any]]:
    return _counts_statement(query.time_range, query.filters, query.group_by, (query.bucket, query.timezone), visible)


async def fetch_dicts(
    conn: psycopg.AsyncConnection[Any], statement: sql.Composed, params: dict[str, Any]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(statement, params)
        return await cursor.fetchall()


async def count_series(
    conn: psycopg.AsyncConnection[Any], query: CountSeriesQuery, visible: frozenset[Source] | None = None
) -> list[dict[str, Any]]:
    statement, params = count_series_statement(query, visible)
    return await fetch_dicts(conn, statement, params)


async def count_totals(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: CountFilters,
    visible: frozenset[Source] | None = None,
) -> list[dict[str, Any]]:
    """Sum per agent, camera, line, class and direction over the range, each with its line's quality."""
    statement, params = _counts_statement(time_range, filters, TOTAL_KEYS, None, visible)
    return await fetch_dicts(conn, statement, params)


@dataclass(frozen=True)
class ZoneFilters:
    agent_id: str | None = None
    source_id: str | None = None
    zone_id: str | None = None
    interval_s: int | None = None
    """Only this length; None: the finest length stored for each zone in the range."""

    def as_params(self) -> dict[str, str | int]:
        """The filters that are set, by column name."""
        values: dict[str, str | int | None] = {
            "agent_id": self.agent_id,
            "source_id": self.source_id,
            "zone_id": self.zone_id,
            "interval_s": self.interval_s,
        }
        return {column: value for column, value in values.items() if value is not None}


async def zone_intervals(
    conn: psycopg.AsyncConnection[Any],
    time_range: TimeRange,
    filters: ZoneFilters,
    limit: int = ZONE_ROW_LIMIT,
    visible: frozenset[Source] | None = None,
) -> list[dict[str, Any]]:
    """Stored zone intervals in the range, oldest first, each with its per-class rows; at most ``limit``."""
    params: dict[str, Any] = {"start": time_range.start, "end": time_range.end, "limit": limit}
    equal = filters.as_params()
    scope_sql, scope_params = visible_condition(visible, "c")
    params |= equal | scope_params
    where = [sql.SQL("c.time >= %(start)s AND c.time < %(end)s"), *equalities("c", equal), scope_sql]
    statement = sql.SQL(
        "WITH chosen AS ("
        " SELECT c.agent_id, c.source_id, c.zone_id, min(c.interval_s) AS interval_s FROM zone_intervals AS c"
        " WHERE {where} GROUP BY c.agent_id, c.source_id, c.zone_id"
        ") SELECT z.time, agent_id, source_id, zone_id, interval_s, z.entries, z.exits, z.occupancy_mean,"
        " z.occupancy_max, z.dwell_mean_s, z.dwell_max_s, z.dwell_p95_s, z.dwell_longest_inside_s, z.expected_s,"
        " z.analysed_s, z.downtime_s, z.frames_analysed, z.frames_dropped, z.detector_backend, z.coverage,"
        " (SELECT coalesce(json_agg(json_build_object('vehicle_class', k.vehicle_class, 'entries', k.entries,"
        "   'exits', k.exits, 'occupancy_mean', k.occupancy_mean, 'occupancy_max', k.occupancy_max)"
        "   ORDER BY k.vehicle_class), '[]'::json)"
        "  FROM zone_class_counts AS k WHERE k.event_id = z.event_id AND k.time = z.time) AS classes"
        " FROM zone_intervals AS z JOIN chosen USING (agent_id, source_id, zone_id, interval_s)"
        " WHERE z.time >= %(start)s AND z.time < %(end)s"
        " ORDER BY z.time, agent_id, source_id, zone_id LIMIT %(limit)s"
    ).format(where=sql.SQL(" AND ").join(where))
    return await fetch_dicts(conn, statement, params)


@dataclass(frozen=True)
class LatestInterval:
    agent_id: str
    source_id: str
    line_id: str
    start: dt.datetime
    end: dt.datetime


async def latest_interval(conn: psycopg.AsyncConnection[Any]) -> LatestInterval | None:
    """The most recent stored count interval (by its start time), or None when there is none."""
    cursor = await conn.execute(
        b"SELECT agent_id, source_id, line_id, time, interval_s FROM count_intervals ORDER BY time DESC LIMIT 1"
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    agent_id, source_id, line_id, start, interval_s = row
    return LatestInterval(agent_id, source_id, line_id, start, start + dt.timedelta(seconds=interval_s))
