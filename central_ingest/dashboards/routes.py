"""``/api/v1/dashboards/...``: the traffic dashboard's junctions and peak hours, the sensors page's stations.

Roles as the plain query API (issue 9's table): traffic for operator, police, technician and admin; sensors for
operator, technician and admin. Scope: a camera or station is visible when the caller's area allows its site
(``access.scope``); a junction only when every one of its cameras is, since its numbers add them all up and a
commune user must not read violations of cameras outside its area. Asking for something out of scope answers
404, like asking for something that does not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from central_ingest.access.dependencies import require_role
from central_ingest.access.principal import Principal
from central_ingest.access.scope import NOT_IN_AREA, Source, require_in_visible, visible_sources
from central_ingest.alerts.routes import running_alert_service
from central_ingest.alerts.rules import AlertRulesConfig
from central_ingest.alerts.scope import junction_visible
from central_ingest.dashboards.junctions import MAX_PERIODS_SHOWN, junction_json, junction_periods, watching_rule
from central_ingest.dashboards.peak_hours import PeakFilters, busiest, peak_hours
from central_ingest.dashboards.stations import list_stations
from central_ingest.query.params import QueryError, TimeRange, resolve_range
from central_ingest.query.routes import SENSOR_ROLES, TRAFFIC_ROLES, IdFilter
from central_ingest.state import AppState, get_app_state
from event_contract import Direction, VehicleClass

router = APIRouter(prefix="/api/v1/dashboards", tags=["dashboards"])

PEAK_DEFAULT_RANGE = dt.timedelta(days=7)
PEAK_MAX_RANGE = dt.timedelta(days=400)
STATIONS_DEFAULT_ACTIVE_DAYS = 30
NO_JUNCTION = "Không có nút giao này trong khu vực của bạn. / No such junction in your area."

TrafficUser = Annotated[Principal, Depends(require_role(*TRAFFIC_ROLES))]
SensorUser = Annotated[Principal, Depends(require_role(*SENSOR_ROLES))]


def rules_config(request: Request) -> AlertRulesConfig:
    """The rules file the alert engine runs; an empty one before the engine started (no junctions, no levels)."""
    service = running_alert_service(request)
    return service.config if service is not None else AlertRulesConfig()


RulesConfig = Annotated[AlertRulesConfig, Depends(rules_config)]


@router.get(
    "/traffic/junctions",
    summary="Per junction: violations per period against the trailing average and the +X% line of its rule",
    description="One item per junction of the rules file that the caller may see (every camera in its area), "
    "with the first enabled violation_increase rule watching it (`rule`, null when none) and the last `periods` "
    "periods of that rule up to the one holding `end` (default now), oldest first. Each period: start, end, "
    "count, coverage, baseline (the mean of the good periods of its window; null when too few), threshold "
    "(baseline x (1 + threshold_pct/100)), good_periods, above_threshold (count > threshold), state and status "
    "of the rule's finding (breach = the rule fires for that period). Computed by the alert engine's own code.",
)
async def get_junctions(
    *,
    principal: TrafficUser,
    app: Annotated[AppState, Depends(get_app_state)],
    config: RulesConfig,
    junction_id: IdFilter = None,
    periods: Annotated[int, Query(ge=1, le=MAX_PERIODS_SHOWN, description="How many periods to show.")] = 30,
    end: Annotated[dt.datetime | None, Query(description="Judge as of this time (ISO 8601 with zone).")] = None,
) -> dict[str, Any]:
    if end is not None and end.utcoffset() is None:
        raise HTTPException(422, "end must carry a timezone, e.g. 2025-05-01T00:00:00+07:00")
    now = (end or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    timezone = app.settings.timezone
    items = []
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        shown = [j for j in config.junctions if junction_visible(j, visible)]
        if junction_id is not None:
            shown = [j for j in shown if j.id == junction_id]
            if not shown:
                raise HTTPException(404, NO_JUNCTION)
        for junction in shown:
            rule = watching_rule(config, junction.id)
            views = (
                []
                if rule is None
                else await junction_periods(conn, rule, junction, now=now, timezone=timezone, shown=periods)
            )
            items.append(junction_json(junction, rule, views))
    return {"timezone": timezone, "as_of": now.isoformat(), "items": items}


def _picked_sources(
    config: AlertRulesConfig, visible: frozenset[Source] | None, agent_id: str | None, source_id: str | None,
    junction_id: str | None,
) -> tuple[Source, ...] | None:  # fmt: skip
    """The cameras asked for (None: every visible one); QueryError for a half-named camera."""
    if (agent_id is None) != (source_id is None):
        raise QueryError("give both agent_id and source_id (a camera), or neither")
    if junction_id is not None:
        junction = next((j for j in config.junctions if j.id == junction_id), None)
        if junction is None or not junction_visible(junction, visible):
            raise HTTPException(404, NO_JUNCTION)
        return tuple((c.agent_id, c.source_id) for c in junction.cameras)
    if agent_id is not None and source_id is not None:
        return ((agent_id, source_id),)
    return None


@router.get(
    "/traffic/peak-hours",
    summary="Crossings per hour of the local day over a range (the busiest hours)",
    description="24 items (hour 0..23 in the service timezone): count (sum over the range), days (local days with "
    "stored intervals at that hour) and mean (count / days). Cameras: one (agent_id + source_id), a junction's "
    "(junction_id), or every camera in the caller's area. Default range: the last 7 days; at most 400 days.",
)
async def get_peak_hours(
    *,
    principal: TrafficUser,
    app: Annotated[AppState, Depends(get_app_state)],
    config: RulesConfig,
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    junction_id: IdFilter = None,
    vehicle_class: VehicleClass | None = None,
    direction: Direction | None = None,
    start: Annotated[dt.datetime | None, Query(description="Range start (ISO 8601 with zone).")] = None,
    end: Annotated[dt.datetime | None, Query(description="Range end, exclusive; default now.")] = None,
) -> dict[str, Any]:
    timezone = app.settings.timezone
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        try:
            resolved = resolve_range(start, end, dt.datetime.now(dt.UTC))
            time_range = resolved if start is not None else TimeRange(resolved.end - PEAK_DEFAULT_RANGE, resolved.end)
            if time_range.end - time_range.start > PEAK_MAX_RANGE:
                raise QueryError(f"range is longer than {PEAK_MAX_RANGE.days} days")
            sources = _picked_sources(config, visible, agent_id, source_id, junction_id)
        except QueryError as error:
            raise HTTPException(422, str(error)) from None
        if agent_id is not None and source_id is not None:
            require_in_visible(visible, agent_id, source_id)
        filters = PeakFilters(visible, sources, vehicle_class, direction)
        rows = await peak_hours(conn, time_range, filters, timezone)
    return {
        "timezone": timezone,
        "start": time_range.start.isoformat(),
        "end": time_range.end.isoformat(),
        "busiest_hour": busiest(rows),
        "items": rows,
    }


@router.get(
    "/sensors/stations",
    summary="Sensor stations in the caller's area with each metric's unit, latest value and alert levels",
    description="Stations that reported within `active_days` or are registered as sensor sites. Per station: "
    "agent_id, source_id, sensor_kind, name, province, district, commune, metrics[]; per metric: metric, name_vi, "
    "name_en, unit, last_value, last_time and thresholds[] (each enabled sensor_threshold rule watching it: "
    "direction, hysteresis, min_duration_s, levels[{name, value, severity, label_vi, label_en}] as the rule "
    "judges this station, and level: the most severe level the latest value is at or past; sensor_rate rules: "
    "rise and window_s).",
)
async def get_stations(
    *,
    principal: SensorUser,
    app: Annotated[AppState, Depends(get_app_state)],
    config: RulesConfig,
    agent_id: IdFilter = None,
    source_id: IdFilter = None,
    active_days: Annotated[int, Query(ge=1, le=400, description="Stations heard within this many days.")] = (
        STATIONS_DEFAULT_ACTIVE_DAYS
    ),
) -> dict[str, Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=active_days)
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        stations = await list_stations(conn, config, visible, since)
    if agent_id is not None or source_id is not None:
        stations = [s for s in stations if agent_id in (None, s["agent_id"]) and source_id in (None, s["source_id"])]
        if agent_id is not None and source_id is not None and not stations:
            raise HTTPException(404, NOT_IN_AREA)
    return {"items": stations}
