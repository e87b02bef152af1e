"""Crossings per hour of the local day over a range: when a junction is busiest.

An interval belongs to the hour holding its start time (like every count query), so intervals of an hour or
less land in the right hour; per line ONE interval length is read (the finest stored in the range), so 60 s and
900 s intervals of one line are never added together. ``days`` is how many local days had stored intervals at
that hour, so ``mean`` (count / days) is the average of the days the cameras were really counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from central_ingest.access.scope import Source, source_condition
from central_ingest.query.params import TimeRange

Conn = psycopg.AsyncConnection[Any]
HOURS = 24


@dataclass(frozen=True)
class PeakFilters:
    """Which crossings: ``sources`` None = every camera the caller sees (``visible``), else these cameras."""

    visible: frozenset[Source] | None
    sources: tuple[Source, ...] | None = None
    vehicle_class: str | None = None
    direction: str | None = None


def _lines_where(filters: PeakFilters) -> tuple[sql.Composable, list[Any]]:
    scope, scope_params = source_condition(filters.visible, "c.agent_id", "c.source_id")
    parts: list[sql.Composable] = [scope]
    params: list[Any] = list(scope_params)
    if filters.sources is not None:
        picked, picked_params = source_condition(frozenset(filters.sources), "c.agent_id", "c.source_id")
        parts.append(picked)
        params += picked_params
    return sql.SQL(" AND ").join(parts), params


async def peak_hours(conn: Conn, time_range: TimeRange, filters: PeakFilters, timezone: str) -> list[dict[str, Any]]:
    """24 rows, hour 0..23 local: ``count`` (sum over the range), ``days`` with data at that hour, ``mean``."""
    lines_where, lines_params = _lines_where(filters)
    count_where: list[sql.Composable] = []
    count_params: list[Any] = []
    for column, value in (("vehicle_class", filters.vehicle_class), ("direction", filters.direction)):
        if value is not None:
            count_where.append(sql.SQL(" AND l.{} = %s").format(sql.Identifier(column)))
            count_params.append(value)
    statement = sql.SQL(
        "WITH chosen AS ("
        " SELECT c.agent_id, c.source_id, c.line_id, min(c.interval_s) AS interval_s FROM count_intervals AS c"
        " WHERE c.time >= %s AND c.time < %s AND {lines_where} GROUP BY 1, 2, 3"
        "), hours AS ("
        " SELECT extract(hour FROM i.time AT TIME ZONE %s)::int AS hour,"
        " count(DISTINCT (i.time AT TIME ZONE %s)::date) AS days"
        " FROM count_intervals AS i JOIN chosen USING (agent_id, source_id, line_id, interval_s)"
        " WHERE i.time >= %s AND i.time < %s GROUP BY 1"
        "), counts AS ("
        " SELECT extract(hour FROM l.time AT TIME ZONE %s)::int AS hour, sum(l.count)::bigint AS count"
        " FROM line_counts AS l JOIN chosen USING (agent_id, source_id, line_id, interval_s)"
        " WHERE l.time >= %s AND l.time < %s{count_where} GROUP BY 1"
        ") SELECT h.hour, h.days, coalesce(n.count, 0) FROM hours AS h LEFT JOIN counts AS n USING (hour)"
    ).format(lines_where=lines_where, count_where=sql.SQL("").join(count_where))
    start, end = time_range.start, time_range.end
    params = [start, end, *lines_params, timezone, timezone, start, end, timezone, start, end, *count_params]
    cursor = await conn.execute(statement, params)
    found = {int(hour): (int(days), int(count)) for hour, days, count in await cursor.fetchall()}
    return [_row(hour, *found.get(hour, (0, 0))) for hour in range(HOURS)]


def _row(hour: int, days: int, count: int) -> dict[str, Any]:
    return {"hour": hour, "count": count, "days": days, "mean": count / days if days else None}


def busiest(rows: Sequence[dict[str, Any]]) -> int | None:
    """The hour with the most crossings (the earliest on a tie); None when nothing crossed."""
    best = max(rows, key=lambda row: (row["count"], -row["hour"]), default=None)
    return None if best is None or best["count"] == 0 else int(best["hour"])
