"""Query API of the event families: violations, sensor readings, progress, count export and rollups.

- ``GET /api/v1/violations``, ``GET /api/v1/sensors/readings`` (raw), ``GET /api/v1/progress``:
  newest first, keyset-paginated: ``{"items": [...], "next_cursor": str | null}``; pass
  ``next_cursor`` back as ``cursor`` for the next page (see ``query.pagination``).
- ``GET /api/v1/congestion``: congestion events (zone level changes and reports), same paging;
  ``GET /api/v1/congestion/hotspots``: zones ranked by time spent heavy or jammed over a range.
- ``GET /api/v1/sensors/readings?bucket=5m``: avg/min/max/last per bucket and metric instead.
- ``GET /api/v1/counts/export?format=csv|json``: every stored interval and class/direction bucket
  with the interval's quality, streamed as a download.
- ``GET /api/v1/counts/rollup?resolution=hour|day``: the hourly/daily rollups, with coverage,
  streamed as JSON (default) or CSV: the way to read months and years of counts.

Every invalid parameter answers 422 with a message that names it.

Access (``query.routes``): violations, congestion, counts export and rollup need an operator, police,
technician or admin session; sensor readings an operator, technician or admin; progress an operator,
project unit or admin. Every answer holds only the sources of the caller's area; a named camera or
project outside it answers 404. A visible project's progress lists its visible cameras' figures and the
PMU's (agent ``central``, entered at central for the project), not those of its cameras in other communes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from central_ingest.access.dependencies import require_role
from central_ingest.access.principal import Principal
from central_ingest.access.scope import visible_sources
from central_ingest.alerts.scope import PMU_AGENT
from central_ingest.projects.views import require_visible_project
from central_ingest.query.export import ExportFormat, export_response, filename_stem, row_as_json
from central_ingest.query.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor, Page, decode_cursor
from central_ingest.query.params import (
    MAX_BUCKETS_PER_QUERY,
    CountFilters,
    QueryError,
    TimeRange,
    parse_bucket,
    parse_timezone,
    resolve_range,
)
from central_ingest.query.routes import (
    PROGRESS_ROLES,
    SENSOR_ROLES,
    End,
    IdFilter,
    Start,
    TrafficReader,
    count_filters,
    scoped_sources,
)
from central_ingest.state import AppState, get_app_state
from central_ingest.store.family_queries import (
    DEFAULT_MAX_HOLD,
    EXPORT_COLUMNS,
    HOTSPOT_COLUMNS,
    RESOLUTION_WIDTH,
    ROLLUP_COLUMNS,
    CongestionFilters,
    ProgressFilters,
    Resolution,
    SensorFilters,
    SensorSeriesQuery,
    ViolationFilters,
    congestion_hotspots,
    congestion_page,
    progress_page,
    sensor_readings_page,
    sensor_series,
    stream_count_export,
    stream_rollup,
    violations_page,
)
from central_ingest.store.rollups import rollup_tables
from event_contract import SensorMetric, ViolationCategory, ViolationType
from event_contract.traffic import CongestionLevel

router = APIRouter()
SensorReader = Annotated[Principal, Depends(require_role(*SENSOR_ROLES))]
ProgressReader = Annotated[Principal, Depends(require_role(*PROGRESS_ROLES))]

PROGRESS_DEFAULT_RANGE = dt.timedelta(days=365)
HOTSPOTS_DEFAULT_RANGE = dt.timedelta(days=7)
HOTSPOTS_MAX_RANGE = dt.timedelta(days=400)
ROLLUP_DEFAULT_RANGE: dict[Resolution, dt.timedelta] = {"hour": dt.timedelta(days=7), "day": dt.timedelta(days=90)}

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Most items per page (1..{MAX_LIMIT}).")]
CursorParam = Annotated[
    str | None, Query(max_length=512, description="The `next_cursor` of the previous page, unchanged.")
]
PAGE_DESCRIPTION = (
    'Newest first. Answer: `{"items": [...], "next_cursor": str | null}`; pass `next_cursor` as `cursor` '
    "(with the same filters) for the next page; null means this was the last page. Range `[start, end)`."
)


def _unprocessable(error: QueryError) -> HTTPException:
    return HTTPException(422, str(error))


def _range(start: dt.datetime | None, end: dt.datetime | None, default_span: dt.timedelta | None = None) -> TimeRange:
    """``resolve_range``, with another default span than 24 h when given."""
    resolved = resolve_range(start, end, dt.datetime.now(dt.UTC))
    if start is None and default_span is not None:
        return TimeRange(resolved.end - default_span, resolved.end)
    return resolved


def _cursor(text: str | None) -> Cursor | None:
    return None if text is None else decode_cursor(text)


def _page_json(page: Page[dict[str, Any]]) -> dict[str, Any]:
    return {"items": [row_as_json(row) for row in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/api/v1/violations",
    summary="Violations and incidents, newest first, keyset-paginated",
    description=PAGE_DESCRIPTION
    + " Each item: time, event_id, agent_id, source_id, violation_type, category, track_id, vehicle_class, "
    "line_id, zone_id, has_plate, plate_confidence, plate_colour, duration_s, evidence, rule_id, started_at, "
    "signal_state, related_track_ids, received_at. The plate text is not listed here: plate search is a "
    "separate, audited feature.",
)
async def get_violations(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    category: ViolationCategory | None = None,
    violation_type: ViolationType | None = None,
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    try:
        time_range, after = _range(start, end), _cursor(cursor)
    except QueryError as error:
        raise _unprocessable(error) from None
    filters = ViolationFilters(agent_id, source_id, category, violation_type)
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, agent_id, source_id)
        return _page_json(await violations_page(conn, time_range, filters, limit, after, visible=visible))


@router.get(
    "/api/v1/congestion",
    summary="Congestion events of zones (level changes and periodic reports), newest first, keyset-paginated",
    description=PAGE_DESCRIPTION
    + " Each item: time (end of the window), event_id, agent_id, source_id, zone_id, level (free, light, "
    "moderate, heavy, jammed), previous_level (set on a change), window_s, vehicles, queue_length_ratio, "
    "occupancy, speed_ratio, received_at.",
)
async def get_congestion(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    zone_id: IdFilter = None,
    level: CongestionLevel | None = None,
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    try:
        time_range, after = _range(start, end), _cursor(cursor)
    except QueryError as error:
        raise _unprocessable(error) from None
    filters = CongestionFilters(agent_id, source_id, zone_id, level)
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, agent_id, source_id)
        return _page_json(await congestion_page(conn, time_range, filters, limit, after, visible=visible))


@router.get(
    "/api/v1/congestion/hotspots",
    summary="Congestion hotspots: zones ranked by time spent heavy or jammed over a range",
    description="One item per zone (agent_id, source_id, zone_id) that was heavy or jammed in `[start, end)`, most "
    f"congested first: {', '.join(HOTSPOT_COLUMNS)} (seconds; share = congested / observed). A zone's level holds "
    "from each of its events until its next one, at most `max_gap_s` (a silent camera does not stay jammed). "
    f"Default range: the last {HOTSPOTS_DEFAULT_RANGE.days} days; at most {HOTSPOTS_MAX_RANGE.days}.",
)
async def get_congestion_hotspots(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    start: Start = None,
    end: End = None,
    max_gap_s: Annotated[
        int, Query(ge=10, le=86_400, description="Longest time one event's level is assumed to hold (s).")
    ] = int(DEFAULT_MAX_HOLD.total_seconds()),
    limit: Annotated[int, Query(ge=1, le=1000, description="Most zones listed.")] = 50,
) -> dict[str, Any]:
    try:
        time_range = _range(start, end, HOTSPOTS_DEFAULT_RANGE)
        if time_range.end - time_range.start > HOTSPOTS_MAX_RANGE:
            raise QueryError(f"range is longer than {HOTSPOTS_MAX_RANGE.days} days")
    except QueryError as error:
        raise _unprocessable(error) from None
    filters = CongestionFilters(agent_id, source_id)
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, agent_id, source_id)
        rows = await congestion_hotspots(
            conn, time_range, filters, limit, dt.timedelta(seconds=max_gap_s), visible=visible
        )
    return {
        "start": time_range.start.isoformat(),
        "end": time_range.end.isoformat(),
        "items": [row_as_json(row) for row in rows],
    }


@router.get(
    "/api/v1/sensors/readings",
    summary="Sensor readings of one station: raw (paginated) or avg/min/max/last per time bucket",
    description="Without `bucket`: raw readings, one item per metric of a reading (time, event_id, agent_id, "
    "source_id, sensor_kind, metric, value, received_at). "
    + PAGE_DESCRIPTION
    + " With `bucket` (1m..31d, e.g. 5m, 1h): one item per bucket, agent and metric with avg, min, max, last "
    "(the latest reading in the bucket) and readings (how many), oldest bucket first; `next_cursor` is null.",
)
async def get_sensor_readings(
    *,
    principal: SensorReader,
    app: Annotated[AppState, Depends(get_app_state)],
    source_id: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="Station id.")],
    agent_id: IdFilter = None,
    metric: SensorMetric | None = None,
    start: Start = None,
    end: End = None,
    bucket: Annotated[str | None, Query(description="Aggregate per bucket of this width, e.g. 5m, 1h.")] = None,
    timezone: Annotated[str, Query(description="IANA zone that day/hour buckets align to.")] = "UTC",
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    filters = SensorFilters(source_id, agent_id, metric)
    try:
        time_range = _range(start, end)
        if bucket is not None:
            if cursor is not None:
                raise QueryError("cursor pages raw readings; it cannot be combined with bucket")
            query = SensorSeriesQuery(time_range, filters, parse_bucket(bucket), parse_timezone(timezone))
        else:
            after = _cursor(cursor)
    except QueryError as error:
        raise _unprocessable(error) from None
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, agent_id, source_id)
        if bucket is not None:
            rows = await sensor_series(conn, query, visible)
            return {"items": [row_as_json(row) for row in rows], "next_cursor": None}
        return _page_json(await sensor_readings_page(conn, time_range, filters, limit, after, visible=visible))


@router.get(
    "/api/v1/progress",
    summary="Progress reports of a construction project (or one package), newest first, keyset-paginated",
    description=PAGE_DESCRIPTION
    + " Default range: the last 365 days. Each item: time, event_id, agent_id, source_id, project_id, "
    "package_id ('' = the project as a whole), percent_complete, method (camera_visual, activity, manual, "
    "survey), confidence (0..1), confirmed (checked by a person), note, evidence, received_at.",
)
async def get_progress(
    *,
    principal: ProgressReader,
    app: Annotated[AppState, Depends(get_app_state)],
    project_id: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="Project id.")],
    package_id: Annotated[
        str | None, Query(max_length=64, description="One package; '' = the project as a whole; omit for all.")
    ] = None,
    start: Start = None,
    end: End = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    try:
        time_range, after = _range(start, end, PROGRESS_DEFAULT_RANGE), _cursor(cursor)
    except QueryError as error:
        raise _unprocessable(error) from None
    async with app.pool.connection() as conn:
        # Another area's project answers 404; a visible one lists its visible cameras' rows and the PMU's.
        await require_visible_project(conn, principal.scope, project_id)
        visible = await visible_sources(conn, principal.scope)
        filters = ProgressFilters(project_id, package_id)
        page = await progress_page(conn, time_range, filters, limit, after, visible=visible, pmu_agent=PMU_AGENT)
        return _page_json(page)


@router.get(
    "/api/v1/counts/export",
    summary="Download the stored interval counts as CSV or JSON, with each interval's data quality",
    description="One row per stored interval and class/direction bucket, oldest first, streamed: "
    f"{', '.join(EXPORT_COLUMNS)}. An interval with no (matching) crossing gives one row with count 0 and empty "
    "class and direction, so its coverage is kept. Filters as `/api/v1/counts`; per line ONE interval length is "
    "exported (`interval_s`, else the finest stored in the range), so the rows of a line can be summed. CSV has a "
    "header row; JSON is an array of objects.",
    response_description="A file download (Content-Disposition: attachment).",
)
async def get_counts_export(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    filters: Annotated[CountFilters, Depends(count_filters)],
    start: Start = None,
    end: End = None,
    export_format: Annotated[ExportFormat, Query(alias="format", description="csv or json.")] = "csv",
) -> Any:
    try:
        time_range = _range(start, end)
    except QueryError as error:
        raise _unprocessable(error) from None
    async with app.pool.connection() as conn:  # before the response starts, so a refusal is a plain 404
        visible = await scoped_sources(conn, principal, filters.agent_id, filters.source_id)

    async def rows() -> AsyncIterator[dict[str, Any]]:
        async with app.pool.connection() as conn:
            async for row in stream_count_export(conn, time_range, filters, visible):
                yield row

    stem = filename_stem("counts", time_range.start, time_range.end)
    return export_response(export_format, EXPORT_COLUMNS, rows, stem)


@router.get(
    "/api/v1/counts/rollup",
    summary="Counts per hour or per local day from the rollups, with coverage: for long ranges",
    description="One row per bucket, line (agent, camera, line, interval_s), class and direction, oldest first: "
    f"{', '.join(ROLLUP_COLUMNS)}. Hour buckets start on the UTC hour; day buckets at local midnight of the "
    "service timezone (Settings.timezone). A bucket belongs to the range when its start is in `[start, end)`. "
    "Per line ONE interval length is read (`interval_s`, else the finest in the range). A bucket with no matching "
    "crossing gives count 0 with empty class and direction. Default range: 7 days (hour) or 90 days (day); at most "
    f"{MAX_BUCKETS_PER_QUERY} buckets. Rollups trail the raw counts by up to one maintenance period.",
)
async def get_counts_rollup(
    *,
    principal: TrafficReader,
    app: Annotated[AppState, Depends(get_app_state)],
    filters: Annotated[CountFilters, Depends(count_filters)],
    resolution: Annotated[Resolution, Query(description="hour or day.")] = "hour",
    start: Start = None,
    end: End = None,
    export_format: Annotated[ExportFormat, Query(alias="format", description="json (default) or csv.")] = "json",
) -> Any:
    try:
        time_range = _range(start, end, ROLLUP_DEFAULT_RANGE[resolution])
        buckets = (time_range.end - time_range.start) / RESOLUTION_WIDTH[resolution]
        if buckets > MAX_BUCKETS_PER_QUERY:
            raise QueryError(
                f"range gives {int(buckets)} {resolution} buckets; at most {MAX_BUCKETS_PER_QUERY}: "
                "use resolution=day or a shorter range"
            )
    except QueryError as error:
        raise _unprocessable(error) from None
    async with app.pool.connection() as conn:
        visible = await scoped_sources(conn, principal, filters.agent_id, filters.source_id)

    async def rows() -> AsyncIterator[dict[str, Any]]:
        async with app.pool.connection() as conn:
            tables = await rollup_tables(conn)
            async for row in stream_rollup(conn, tables, resolution, time_range, filters, visible=visible):
                yield row

    stem = filename_stem(f"counts_{resolution}", time_range.start, time_range.end)
    return export_response(export_format, ROLLUP_COLUMNS, rows, stem)
