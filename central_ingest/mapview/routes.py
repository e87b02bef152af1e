"""The map API: ``/api/v1/map/config``, ``/api/v1/map/boundaries`` and ``/api/v1/map/sites`` (any signed-in role).

Sites are filtered by the caller's area scope (``principal.scope``): a commune-level user gets only the sites
of its communes, and nothing tells it what exists elsewhere. Sensor levels use the alert engine's own rules
(``sensor_threshold``), so the map and the alerts never disagree on where the levels are.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from central_ingest.access.dependencies import require_signed_in
from central_ingest.access.principal import Principal
from central_ingest.access.scope import visible_sources
from central_ingest.alerts.routes import running_alert_service
from central_ingest.alerts.rules import SensorThresholdRule
from central_ingest.mapview.boundaries import BoundariesError, current_boundaries
from central_ingest.mapview.sources import latest_readings, source_rows, station_levels
from central_ingest.mapview.states import CAMERA, SENSOR
from central_ingest.mapview.views import map_site
from central_ingest.state import AppState, get_app_state

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/map", tags=["map"])
REFRESH_S = 15
"""How often the map page asks for the sites again."""
NO_BOUNDARIES = "Chưa cấu hình ranh giới hành chính. / No administrative boundaries are configured."
BAD_BOUNDARIES = "Tệp ranh giới hành chính không hợp lệ. / The administrative boundaries file is invalid"


def threshold_rules(request: Request) -> tuple[SensorThresholdRule, ...]:
    """The enabled sensor threshold rules of the running alert engine (none before it started)."""
    service = running_alert_service(request)
    if service is None:
        return ()
    return tuple(r for r in service.config.rules if isinstance(r, SensorThresholdRule) and r.enabled)


@router.get("/config", summary="Base map, opening view and whether boundaries exist (any signed-in user)")
async def map_config(
    _principal: Annotated[Principal, Depends(require_signed_in)],
    app: Annotated[AppState, Depends(get_app_state)],
) -> dict[str, Any]:
    settings = app.settings
    return {
        "tile_url": settings.map_tile_url,
        "tile_attribution": settings.map_tile_attribution,
        "center": {"lat": settings.map_center_lat, "lon": settings.map_center_lon},
        "zoom": settings.map_zoom,
        "has_boundaries": settings.map_boundaries_path is not None,
        "refresh_s": REFRESH_S,
        "thresholds_s": {
            "camera_live_within": CAMERA.live_within.total_seconds(),
            "camera_down_after": CAMERA.down_after.total_seconds(),
            "sensor_live_within": SENSOR.live_within.total_seconds(),
            "sensor_down_after": SENSOR.down_after.total_seconds(),
        },
    }


@router.get("/boundaries", summary="The administrative boundaries (GeoJSON FeatureCollection)")
async def map_boundaries(
    _principal: Annotated[Principal, Depends(require_signed_in)],
    app: Annotated[AppState, Depends(get_app_state)],
) -> Response:
    path = app.settings.map_boundaries_path
    if path is None:
        raise HTTPException(404, NO_BOUNDARIES)
    try:
        boundaries = current_boundaries(path)
    except BoundariesError as error:  # valid at start, replaced by a bad file since
        log.error("map boundaries: %s", error)
        raise HTTPException(503, f"{BAD_BOUNDARIES}: {error}") from None
    return Response(boundaries.body, media_type="application/geo+json", headers={"Cache-Control": "no-cache"})


@router.get("/sites", summary="Cameras and sensors in the caller's area with their live state and levels")
async def map_sites(
    request: Request,
    principal: Annotated[Principal, Depends(require_signed_in)],
    app: Annotated[AppState, Depends(get_app_state)],
) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    rules = threshold_rules(request)
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        rows = await source_rows(conn, visible, now)
        sensors = [(r["agent_id"], r["source_id"]) for r in rows if r["kind"] == "sensor"]
        readings = await latest_readings(conn, sensors, now)
        levels = await station_levels(conn, sensors) if rules else {}
    return [
        map_site(row, now, rules, readings.get(key), levels.get(key))
        for row in rows
        for key in [(row["agent_id"], row["source_id"])]
    ]
