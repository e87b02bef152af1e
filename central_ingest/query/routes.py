"""``GET /api/v1/counts`` (bucketed series), ``GET /api/v1/counts/totals`` and ``GET /api/v1/zones``.

Every count row carries the data quality of the intervals behind it (see ``store.queries``):
a UI shows ``coverage`` beside the count, so a quiet road and a dead camera look different.

Access: the traffic reads need a session of an operator, police officer, technician or admin, and
answer only the cameras of the caller's area (``access.scope``); a request naming one camera
outside it gets 404, as if it did not exist. ``scoped_sources`` is shared by every query route.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from psycopg import AsyncConnection

from central_ingest.access.dependencies import require_role
from central_ingest.access.principal import Principal
from central_ingest.access.roles import Role
from central_ingest.access.scope import Source, require_in_visible, visible_sources
from central_ingest.query.export import row_as_json
from central_ingest.query.params import (
    GROUP_KEYS,
    CountFilters,
    CountSeriesQuery,
    QueryError,
    parse_bucket,
    parse_group_by,
    parse_timezone,
    resolve_range,
)
from central_ingest.state import AppState, get_app_state
from central_ingest.store.queries import ZONE_ROW_LIMIT, ZoneFilters, count_series, count_totals, zone_intervals
from event_contract import Direction, VehicleClass
from event_contract.models import IDENTIFIER_PATTERN

router = APIRouter(prefix="/api/v1/counts")
zones_router = APIRouter(prefix="/api/v1/zones")

TRAFFIC_ROLES: tuple[Role, ...] = ("operator", "police", "technician", "admin")
"""Counts, totals, rollup, export, violations, congestion, zones."""
SENSOR_ROLES: tuple[Role, ...] = ("operator", "technician", "admin")
HEALTH_ROLES: tuple[Role, ...] = ("operator", "technician", "admin")
"""Agents' ingest totals and dead letters."""
PROGRESS_ROLES: tuple[Role, ...] = ("operator", "project_unit", "admin")
TrafficReader = Annotated[Principal, Depends(require_role(*TRAFFIC_ROLES))]

IdFilter = Annotated[str | None, Query(pattern=IDENTIFIER_PATTERN)]
IntervalFilter = Annotated[
    int | None,
    Query(
        gt=0,
        le=86_400,
        description="Read only intervals of this length (s). Default: the finest length stored for each line or "
        "zone in the range, so 60 s and 900 s intervals of one line are never added together.",
    ),
]
Start = Annotated[dt.datetime | None, Query(description="Range start (ISO 8601 with zone); default end - 24 h.")]
End = Annotated[dt.datetime | None, Query(description="Range end, exclusive (ISO 8601 with zone); default now.")]


async def scoped_sources(
    conn: AsyncConnection[Any], principal: Principal, agent_id: str | None, source_id: str | None
) -> frozenset[Source] | None:
    """The sources ``principal`` may see (None: all); 404 when the request names one camera outside them."""
    visible = await visible_sources(conn, principal.scope)
    if agent_id is not None and source_id is not None:
        require_in_visible(visible, agent_id, source_id)
    return visible


def count_filters(
    *,
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    line_id: IdFilter = None,
    vehicle_class: VehicleClass | None = None,
    direction: Direction | None = None,
    interval_s: IntervalFilter = None,
) -> CountFilters:
    """The count filters shared by /api/v1/counts, /totals, /export and /rollup."""
    return CountFilters(agent_id, source_id, line_id, vehicle_class, direction, interval_s)


@router.get(
    "",
    summary="Crossings summed per time bucket, optionally per camera/line/class/direction, with data quality",
    description="One row per bucket and group that holds stored intervals. `count` is 0 when nothing crossed "
    "(class and direction are then null when grouped). Quality per row: `intervals`, "
    "`intervals_without_quality` (schema 1.0 agents), `expected_s`, `analysed_s`, `downtime_s`, "
    "`frames_analysed`, `frames_dropped`, `coverage` (= analysed_s / expected_s; null when unknown), "
    "`detector_backends`, `interval_lengths_s`.",
)
async def get_counts(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    filters: Annotated[CountFilters, Depends(count_filters)],
    start: Start = None,
    end: End = None,
    bucket: Annotated[str, Query(description="Bucket width: 1m to 31d, e.g. 15m, 1h, 1d.")] = "1h",
    group_by: Annotated[list[str], Query(description=f"Any of {list(GROUP_KEYS)}; repeat or comma-separate.")] = [],  # noqa: B006 - FastAPI copies defaults, and Query needs a list here
    timezone: Annotated[str, Query(description="IANA zone that day/hour buckets align to.")] = "UTC",
) -> list[dict[str, Any]]:
    try:
        query = CountSeriesQuery(
            time_range=resolve_range(start, end, dt.datetime.now(dt.UTC)),
            bucket=parse_bucket(bucket),
            group_by=parse_group_by(group_by),
            filters=filters,
            timezone=parse_timezone(timezone),
        )
    except QueryError as error:
        raise HTTPException(422, str(error)) from None
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, filters.agent_id, filters.source_id)
        return [row_as_json(row) for row in await count_series(conn, query, visible)]


@router.get(
    "/totals",
    summary="Crossings per agent/camera/line/class/direction over a range, with each line's data quality",
)
async def get_totals(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    filters: Annotated[CountFilters, Depends(count_filters)],
    start: Start = None,
    end: End = None,
) -> list[dict[str, Any]]:
    try:
        time_range = resolve_range(start, end, dt.datetime.now(dt.UTC))
    except QueryError as error:
        raise HTTPException(422, str(error)) from None
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, filters.agent_id, filters.source_id)
        return [row_as_json(row) for row in await count_totals(conn, time_range, filters, visible)]


@zones_router.get(
    "",
    summary="Stored zone intervals: occupancy, entries, exits, dwell and data quality, oldest first",
)
async def get_zones(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    zone_id: IdFilter = None,
    interval_s: IntervalFilter = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=ZONE_ROW_LIMIT, description="Most rows returned.")] = 1000,
) -> list[dict[str, Any]]:
    try:
        time_range = resolve_range(start, end, dt.datetime.now(dt.UTC))
    except QueryError as error:
        raise HTTPException(422, str(error)) from None
    filters = ZoneFilters(agent_id, source_id, zone_id, interval_s)
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, agent_id, source_id)
        return [row_as_json(row) for row in await zone_intervals(conn, time_range, filters, limit, visible)]
