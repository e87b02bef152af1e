"""Read queries over the hypertables: bucketed counts, totals, latest interval.

A count interval is attributed to the bucket holding its start ``time``; the range
is half-open, ``[start, end)``, on that same start time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from central_ingest.query.params import GROUP_KEYS, CountFilters, CountSeriesQuery, TimeRange

TOTAL_KEYS = GROUP_KEYS


def _where(time_range: TimeRange, filters: CountFilters) -> tuple[sql.Composable, dict[str, Any]]:
    params: dict[str, Any] = {"start": time_range.start, "end": time_range.end}
    clauses: list[sql.Composable] = [sql.SQL("time >= %(start)s AND time < %(end)s")]
    for column, value in filters.as_params().items():
        clauses.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)))
        params[column] = value
    return sql.SQL(" AND ").join(clauses), params


def count_series_statement(query: CountSeriesQuery) -> tuple[sql.Composed, dict[str, Any]]:
    where, params = _where(query.time_range, query.filters)
    params |= {"bucket": query.bucket, "tz": query.timezone}
    keys = [sql.Identifier(key) for key in query.group_by]
    key_list = sql.SQL("").join(sql.SQL(", ") + key for key in keys)
    statement = sql.SQL(
        "SELECT time_bucket(%(bucket)s::interval, time, %(tz)s::text) AS bucket{keys}, sum(count)::bigint AS count "
        "FROM line_counts WHERE {where} GROUP BY bucket{keys} ORDER BY bucket{keys}"
    ).format(keys=key_list, where=where)
    return statement, params


async def count_series(conn: psycopg.AsyncConnection[Any], query: CountSeriesQuery) -> list[dict[str, Any]]:
    statement, params = count_series_statement(query)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(statement, params)
        return await cursor.fetchall()


async def count_totals(
    conn: psycopg.AsyncConnection[Any], time_range: TimeRange, filters: CountFilters
) -> list[dict[str, Any]]:
    """Sum per agent, camera, line, class and direction over the range."""
    where, params = _where(time_range, filters)
    keys = sql.SQL(", ").join(sql.Identifier(key) for key in TOTAL_KEYS)
    statement = sql.SQL(
        "SELECT {keys}, sum(count)::bigint AS count FROM line_counts WHERE {where} GROUP BY {keys} ORDER BY {keys}"
    ).format(keys=keys, where=where)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(statement, params)
        return await cursor.fetchall()


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
