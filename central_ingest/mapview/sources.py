"""Database reads behind the map and the agent health page: each source with what was last heard from it.

One query gives every source the caller may see (``access.scope.source_condition``) with its registry entry,
the newest event time of any family but health (``source_last_seen``) and its newest health event. Health
events are looked up within ``HEALTH_LOOKBACK`` only: each lookup is then one index probe in the newest
chunks, and a source silent for longer is ``down`` whatever its last health event said (its last event time
still shows when it was last heard).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from central_ingest.access.scope import Source, source_condition

HEALTH_LOOKBACK = dt.timedelta(days=1)
READING_LOOKBACK = dt.timedelta(days=1)
"""Sensor values older than this are not shown (the sensor is long ``down`` by then)."""

_SOURCES = """
WITH src AS (
    SELECT agent_id, id AS source_id FROM camera_sites
    {unregistered}
)
SELECT src.agent_id, src.source_id, cs.kind, cs.name, cs.lat, cs.lon, cs.area, cs.province, cs.district,
       cs.commune, seen.last_event_time, seen.last_received_at, seen.families,
       h.time AS health_time, h.state AS health_state, h.reason AS health_reason, h.fps, h.uptime_s,
       h.frames_dropped, h.frames_decoded
FROM src
LEFT JOIN camera_sites AS cs ON cs.agent_id = src.agent_id AND cs.id = src.source_id
LEFT JOIN LATERAL (
    SELECT max(l.last_event_time) AS last_event_time, max(l.last_received_at) AS last_received_at,
           array_agg(l.family ORDER BY l.family) AS families
    FROM source_last_seen AS l
    WHERE l.agent_id = src.agent_id AND l.source_id = src.source_id AND l.family <> 'health'
) AS seen ON TRUE
LEFT JOIN LATERAL (
    SELECT x.time, x.state, x.reason, x.fps, x.uptime_s, x.frames_dropped, x.frames_decoded
    FROM health AS x
    WHERE x.agent_id = src.agent_id AND x.source_id = src.source_id AND x.time > %s
    ORDER BY x.time DESC LIMIT 1
) AS h ON TRUE
WHERE {condition}
ORDER BY src.agent_id, src.source_id
"""
_UNREGISTERED = """
    UNION
    SELECT agent_id, source_id FROM source_last_seen WHERE source_id <> agent_id
"""
"""Sources heard from (any family, health included) that are not the agent itself."""


async def source_rows(
    conn: AsyncConnection[Any],
    visible: frozenset[Source] | None,
    now: dt.datetime,
    *,
    include_unregistered: bool = False,
) -> list[dict[str, Any]]:
    """Every registered source in ``visible`` (None: all), with its last news; ``include_unregistered`` adds the
    sources heard from but not in the registry (their registry columns are null; the map cannot place them)."""
    condition, condition_params = source_condition(visible, "src.agent_id", "src.source_id")
    since = now - HEALTH_LOOKBACK
    query = sql.SQL(_SOURCES).format(
        unregistered=sql.SQL(_UNREGISTERED if include_unregistered else ""),
        condition=condition,
    )
    params: tuple[Any, ...] = (since, *condition_params)
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall()


async def latest_readings(
    conn: AsyncConnection[Any], sensors: Iterable[Source], now: dt.datetime
) -> dict[Source, dict[str, Any]]:
    """Per sensor: ``sensor_kind``, ``time`` (newest) and ``values`` {metric: (value, time)} of the last day."""
    wanted = sorted(set(sensors))
    if not wanted:
        return {}
    async with conn.cursor() as cursor:
        await cursor.execute(
            b"SELECT DISTINCT ON (agent_id, source_id, metric) agent_id, source_id, sensor_kind, metric, value, time "
            b"FROM sensor_readings "
            b"WHERE (agent_id, source_id) IN (SELECT * FROM unnest(%s::text[], %s::text[])) AND time > %s "
            b"ORDER BY agent_id, source_id, metric, time DESC",
            ([a for a, _ in wanted], [s for _, s in wanted], now - READING_LOOKBACK),
        )
        rows = await cursor.fetchall()
    found: dict[Source, dict[str, Any]] = {}
    for agent_id, source_id, kind, metric, value, time in rows:
        entry = found.setdefault((agent_id, source_id), {"sensor_kind": kind, "time": time, "values": {}})
        entry["values"][metric] = (float(value), time)
        if time > entry["time"]:
            entry["time"], entry["sensor_kind"] = time, kind
    return found


async def station_levels(conn: AsyncConnection[Any], sensors: Iterable[Source]) -> dict[Source, tuple[float, ...]]:
    """The alert levels (báo động 1/2/3, m) each water-level station last reported (``sensor_stations``)."""
    wanted = sorted(set(sensors))
    if not wanted:
        return {}
    cursor = await conn.execute(
        b"SELECT agent_id, source_id, alert_levels_m FROM sensor_stations "
        b"WHERE (agent_id, source_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([a for a, _ in wanted], [s for _, s in wanted]),
    )
    return {(a, s): tuple(float(v) for v in levels) for a, s, levels in await cursor.fetchall()}


_AGENTS = b"""
SELECT a.agent_id, a.revoked_at IS NOT NULL AS revoked, st.events_stored, st.events_rejected, st.last_batch_at,
       st.last_rejected_at, h.time AS health_time, h.state AS health_state, h.reason AS health_reason,
       h.uptime_s, h.delivery
FROM (SELECT agent_id, revoked_at FROM agents
      UNION SELECT agent_id, NULL FROM agent_ingest_stats WHERE agent_id NOT IN (SELECT agent_id FROM agents)) AS a
LEFT JOIN agent_ingest_stats AS st ON st.agent_id = a.agent_id
LEFT JOIN LATERAL (
    SELECT x.time, x.state, x.reason, x.uptime_s, x.delivery FROM health AS x
    WHERE x.agent_id = a.agent_id AND x.source_id = a.agent_id AND x.time > %s
    ORDER BY x.time DESC LIMIT 1
) AS h ON TRUE
WHERE %s::text[] IS NULL OR a.agent_id = ANY(%s::text[])
ORDER BY a.agent_id
"""


async def agent_rows(
    conn: AsyncConnection[Any], agents: Iterable[str] | None, now: dt.datetime
) -> list[dict[str, Any]]:
    """Every known agent (or those named) with its ingest totals and its own newest health event (delivery)."""
    names = None if agents is None else sorted(set(agents))
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(_AGENTS, (now - HEALTH_LOOKBACK, names, names))
        return await cursor.fetchall()
