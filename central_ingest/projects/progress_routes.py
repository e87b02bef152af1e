"""``/api/v1/projects``: progress against the plan, timelapse, activity hours, cameras, keyframes, confirmations.

Reads need a session of an operator, a project unit (PMU) or an admin; a confirmation needs
``project_unit`` or ``admin`` (cookie sessions also send the CSRF header: ``access.dependencies``).
A user scoped to some communes sees the projects with a camera there (``views.require_visible_project``); any
other project answers 404 like an unknown one. Within a visible project the per-camera answers (cameras,
timelapse, activity, keyframes) hold only the visible cameras' rows, and the PMU's (see ``views``).
Ranges are local days (the service's ``timezone``), both ends included. Keyframes and PMU photos are
served only when a progress row of that project references them (for a scoped user: a PMU's row or one
of a visible camera), decrypted from the evidence store, never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from central_ingest.access.dependencies import client_address, require_role
from central_ingest.access.principal import Principal
from central_ingest.access.roles import Role
from central_ingest.access.scope import AreaScope, Source, visible_sources
from central_ingest.alerts.routes import running_alert_service
from central_ingest.alerts.scope import visible_projects
from central_ingest.plates.evidence_routes import SHA256_PATTERN, sealed_image
from central_ingest.projects.activity import activity_days
from central_ingest.projects.confirm import (
    Confirmer,
    ConfirmError,
    ConfirmIn,
    confirmation_event,
    decode_photo,
    plan_packages,
    row_time,
    store_confirmation,
)
from central_ingest.projects.views import (
    UNKNOWN_PROJECT,
    Conn,
    keyframe_referenced,
    keyframe_url,
    project_cameras,
    project_known,
    project_list,
    project_progress,
    require_visible_project,
    timelapse,
    visible_rows,
)
from central_ingest.state import AppState, get_app_state
from event_contract.models import IDENTIFIER_PATTERN

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/projects", tags=["projects"])

READ_ROLES: tuple[Role, ...] = ("operator", "project_unit", "admin")
CONFIRM_ROLES: tuple[Role, ...] = ("project_unit", "admin")
MAX_PROGRESS_DAYS = 3660
MAX_DAILY_VIEW_DAYS = MAX_PROGRESS_DAYS
"""Timelapse and activity: one row per camera (and zone) and day, so a whole project's life fits."""
DEFAULT_DAILY_VIEW_DAYS = 30
NOT_UPLOADED = (
    "Ảnh chưa được tải lên máy chủ trung tâm. / The image has not been uploaded yet (or retention deleted it)."
)
NOT_REFERENCED = "Dự án này không có ảnh này. / No progress figure of this project references this image."

ProjectId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN, description="The project id.")]
Reader = Annotated[Principal, Depends(require_role(*READ_ROLES))]
PmuWriter = Annotated[Principal, Depends(require_role(*CONFIRM_ROLES))]
App = Annotated[AppState, Depends(get_app_state)]
StartDay = Annotated[dt.date | None, Query(description="First local day (YYYY-MM-DD), included.")]
EndDay = Annotated[dt.date | None, Query(description="Last local day (YYYY-MM-DD), included; default today.")]


def _today(app: AppState) -> dt.date:
    return dt.datetime.now(dt.UTC).astimezone(ZoneInfo(app.settings.timezone)).date()


def _range(start: dt.date | None, end: dt.date | None, today: dt.date, *, default_days: int) -> tuple[dt.date, dt.date]:
    last = end or today
    first = start or last - dt.timedelta(days=default_days - 1)
    _check_range(first, last, MAX_DAILY_VIEW_DAYS)
    return first, last


def _check_range(first: dt.date, last: dt.date, most: int) -> None:
    if first > last:
        raise HTTPException(422, f"start {first.isoformat()} must not be after end {last.isoformat()}")
    if (last - first).days + 1 > most:
        raise HTTPException(422, f"the range is {(last - first).days + 1} days; at most {most}")


async def _require_project(conn: Conn, scope: AreaScope, project_id: str) -> frozenset[Source] | None:
    """The caller's visible cameras (None: all); 404 for an unknown project and for one outside the caller's
    area (the same answer)."""
    if not await project_known(conn, project_id):
        raise HTTPException(404, UNKNOWN_PROJECT)
    return await require_visible_project(conn, scope, project_id)


@router.get("", summary="Projects with today's planned and actual % complete and the gap")
async def get_projects(principal: Reader, app: App, request: Request) -> list[dict[str, Any]]:
    async with app.pool.connection() as conn:
        visible = await visible_projects(conn, await visible_sources(conn, principal.scope))
        projects = await project_list(conn, _today(app), app.settings.timezone, visible)
    return [project | _alert_limits(request, project["project_id"]) for project in projects]


def _alert_limits(request: Request, project_id: str) -> dict[str, float | None]:
    """The threshold and confidence floor of the rule that watches the project, so the page's status and its
    shaded band agree with the alert (None when no progress_behind rule watches it)."""
    service = running_alert_service(request)
    rule = service.config.progress_rule_for(project_id) if service is not None else None
    if rule is None:
        return {"threshold_points": None, "min_confidence": None}
    return {"threshold_points": float(rule.threshold_points), "min_confidence": float(rule.min_confidence)}


@router.get(
    "/{project_id}/progress",
    summary="Plan S-curve against actual progress, per package and for the project",
    description="Planned % per day and the actual series (confidence, confirmed, calibrated, evidence). "
    f"Default range: the plan's first date (else a year back) to the later of today and the plan's end; "
    f"at most {MAX_PROGRESS_DAYS} days.",
)
async def get_progress(
    project_id: ProjectId, principal: Reader, app: App, request: Request, *, start: StartDay = None, end: EndDay = None
) -> dict[str, Any]:
    if start is not None and end is not None:
        _check_range(start, end, MAX_PROGRESS_DAYS)
    async with app.pool.connection() as conn:
        await require_visible_project(conn, principal.scope, project_id)
        found = await project_progress(
            conn, project_id, first=start, last=end, today=_today(app), timezone=app.settings.timezone
        )
    if found is None:
        raise HTTPException(404, UNKNOWN_PROJECT)
    _check_range(dt.date.fromisoformat(found["start"]), dt.date.fromisoformat(found["end"]), MAX_PROGRESS_DAYS)
    return found | _alert_limits(request, project_id)


@router.get(
    "/{project_id}/timelapse",
    summary=f"Daily keyframe per camera (default the last {DEFAULT_DAILY_VIEW_DAYS} days)",
)
async def get_timelapse(
    project_id: ProjectId, principal: Reader, app: App, start: StartDay = None, end: EndDay = None
) -> dict[str, Any]:
    first, last = _range(start, end, _today(app), default_days=DEFAULT_DAILY_VIEW_DAYS)
    async with app.pool.connection() as conn:
        visible = await _require_project(conn, principal.scope, project_id)
        return await timelapse(conn, project_id, first, last, app.settings.timezone, visible=visible)


@router.get(
    "/{project_id}/activity",
    summary=f"Working hours per camera, zone and day (default the last {DEFAULT_DAILY_VIEW_DAYS} days)",
)
async def get_activity(
    project_id: ProjectId, principal: Reader, app: App, start: StartDay = None, end: EndDay = None
) -> dict[str, Any]:
    first, last = _range(start, end, _today(app), default_days=DEFAULT_DAILY_VIEW_DAYS)
    async with app.pool.connection() as conn:
        visible = await _require_project(conn, principal.scope, project_id)
        found = await activity_days(conn, project_id, first, last, app.settings.timezone)
    return found | {"days": visible_rows(found["days"], visible)}


@router.get("/{project_id}/cameras", summary="The project's cameras, with their site registry entry and live view")
async def get_cameras(project_id: ProjectId, principal: Reader, app: App) -> list[dict[str, Any]]:
    async with app.pool.connection() as conn:
        return await project_cameras(conn, project_id, await _require_project(conn, principal.scope, project_id))


@router.get(
    "/{project_id}/keyframes/{sha256}",
    summary="A keyframe or PMU photo referenced by the project's progress figures",
    response_class=Response,
    responses={
        200: {"description": "The image (JPEG or PNG), not to be cached.", "content": {"image/jpeg": {}}},
        404: {"description": "Not referenced by this project, or not uploaded (yet)."},
        503: {"description": "No keyring configured: images are kept sealed."},
    },
)
async def get_keyframe(
    project_id: ProjectId,
    sha256: Annotated[str, Path(pattern=SHA256_PATTERN, description="Lowercase hex SHA-256 of the image.")],
    principal: Reader,
    app: App,
) -> Response:
    if app.plate_vault is None:
        raise HTTPException(503, "images are kept sealed and no keyring is configured (IOC_PLATE_KEYS_FILE)")
    async with app.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
        projects = await visible_projects(conn, visible)
        if projects is not None and project_id not in projects:
            raise HTTPException(404, NOT_REFERENCED)
        if not await keyframe_referenced(conn, project_id, sha256, visible):
            raise HTTPException(404, NOT_REFERENCED)
        return await sealed_image(conn, app.plate_vault, sha256, missing=NOT_UPLOADED)


@router.post(
    "/{project_id}/progress/confirm",
    status_code=201,
    summary="Confirm or correct % complete with a note and optionally a photo (project_unit, admin; audited)",
    responses={
        201: {"description": "Stored: the confirmed figure now wins over the cameras' on its day."},
        403: {"description": "Not a project unit or admin, or (cookie session) a missing CSRF header."},
        422: {"description": "A bad body: future date, unknown package, a photo that is not a JPEG/PNG..."},
        503: {"description": "A photo was sent and no keyring is configured."},
    },
)
async def post_confirm(
    project_id: ProjectId, body: ConfirmIn, request: Request, principal: PmuWriter, app: App
) -> JSONResponse:
    now = dt.datetime.now(dt.UTC)
    who = Confirmer(principal.username, principal.acting_role(*CONFIRM_ROLES), client_address(request))
    try:
        time = row_time(body.date, now, app.settings.timezone)
        if now - time > dt.timedelta(days=app.settings.retention.progress_days):
            raise ConfirmError(f"date {body.date.isoformat()} is older than the progress retention")
        photo = None if body.photo_base64 is None else decode_photo(body.photo_base64)
    except ConfirmError as error:
        raise HTTPException(422, str(error)) from None
    if photo is not None and app.plate_vault is None:
        raise HTTPException(503, "photos are kept sealed and no keyring is configured; send the figure without one")
    event = confirmation_event(project_id, body, who, time=time, now=now, photo=photo)
    async with app.pool.connection() as conn:
        await require_visible_project(conn, principal.scope, project_id)
        packages = await plan_packages(conn, project_id)
        if body.package_id and packages is not None and body.package_id not in packages:
            raise HTTPException(
                422, f"package {body.package_id!r} is not in the project's plan; packages: {', '.join(packages)}"
            )
        await store_confirmation(conn, project_id, event, who, photo=photo, vault=app.plate_vault, now=now)
    alerts = running_alert_service(request)
    if alerts is not None:
        alerts.notify_ingested([event])  # the confirmed figure may open or resolve an alert at once
    return JSONResponse(
        {
            "event_id": str(event.event_id),
            "project_id": project_id,
            "package_id": body.package_id,
            "date": body.date.isoformat(),
            "time": event.time.isoformat(),
            "percent_complete": body.percent_complete,
            "confirmed": True,
            "source_id": event.source_id,
            "photo": None if photo is None else {"sha256": photo.sha256, "url": keyframe_url(project_id, photo.sha256)},
        },
        status_code=201,
    )
