"""``/api/v1/alerts``: list, one alert, acknowledge, resolve, rule states.

The alert routes read the engine from ``request.app.state.ioc_alerts`` (an ``AlertService``) and
the database pool from the app state; every operator transition is published like the engine's.
The plan routes (``/api/v1/projects/{id}/plan``) are in ``central_ingest.projects.plan_routes``.

Access: reading (list, one, rules, the stream) needs an operator, technician, police, project unit or
admin session; acknowledging and resolving an operator or admin, and the signed-in user is the actor
recorded (a ``by`` in the body is accepted for older clients and ignored). A user scoped to some
communes sees only the alerts whose subject's sources are there (``alerts.scope``); any other alert
answers 404, as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from central_ingest.access.dependencies import require_role
from central_ingest.access.principal import Principal
from central_ingest.access.roles import Role
from central_ingest.alerts.history import AlertFilters, get_alert, list_alerts
from central_ingest.alerts.notice import AlertNotice, Severity
from central_ingest.alerts.scope import scoped_rule, subject_visible, visible_subjects
from central_ingest.alerts.service import AlertService
from central_ingest.alerts.store import AlertNotFoundError, TransitionNotAllowedError
from central_ingest.query.params import QueryError
from central_ingest.state import AppState, get_app_state

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
MAX_PAGE = 1000
ALERT_READ_ROLES: tuple[Role, ...] = ("operator", "technician", "police", "project_unit", "admin")
ALERT_ACT_ROLES: tuple[Role, ...] = ("operator", "admin")
"""Who may acknowledge and resolve."""
alert_reader = require_role(*ALERT_READ_ROLES)
alert_actor = require_role(*ALERT_ACT_ROLES)
Reader = Annotated[Principal, Depends(alert_reader)]
Actor = Annotated[Principal, Depends(alert_actor)]


def running_alert_service(request: Request) -> AlertService | None:
    """The app's alert engine, or None before the lifespan started it (routes that only notify it go on)."""
    service = getattr(request.app.state, "ioc_alerts", None)
    return service if isinstance(service, AlertService) else None


def get_alert_service(request: Request) -> AlertService:
    service = running_alert_service(request)
    if service is None:  # only before the lifespan ran, i.e. a wiring bug
        raise RuntimeError("the alert engine was used before the app's lifespan started it")
    return service


def no_such_alert(alert_id: UUID) -> HTTPException:
    return HTTPException(404, f"Không có cảnh báo {alert_id}. / No alert {alert_id}.")


class OperatorAction(BaseModel):
    """Why an alert is acknowledged or resolved; who does it is the signed-in user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comment: str = Field(default="", max_length=2000, description="Free text kept in the alert's history.")
    by: str | None = Field(
        default=None,
        max_length=200,
        description="Ignored, accepted for older clients: the signed-in user is recorded as the actor.",
    )


async def _visible(app: AppState, service: AlertService, principal: Principal) -> frozenset[str] | None:
    async with app.pool.connection() as conn:
        return await visible_subjects(conn, principal.scope, service.config)


async def _visible_alert(app: AppState, service: AlertService, principal: Principal, alert_id: UUID) -> dict[str, Any]:
    """The alert with its transitions; 404 when there is none or the caller's area does not hold its subject."""
    async with app.pool.connection() as conn:
        alert = await get_alert(conn, alert_id)
        visible = None if alert is None else await visible_subjects(conn, principal.scope, service.config)
    if alert is None or not subject_visible(str(alert["subject"]), visible):
        raise no_such_alert(alert_id)
    return alert


@router.get("", summary="Alerts, newest first, with keyset pagination")
async def get_alerts(
    *,
    principal: Reader,
    app: Annotated[AppState, Depends(get_app_state)],
    service: Annotated[AlertService, Depends(get_alert_service)],
    status: Literal["open", "acknowledged", "resolved"] | None = None,
    rule_kind: str | None = None,
    rule_id: str | None = None,
    subject: str | None = None,
    severity: Severity | None = None,
    since: Annotated[dt.datetime | None, Query(description="Opened at or after (ISO 8601 with zone).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Opened before (ISO 8601 with zone).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a time zone (e.g. 2025-05-01T00:00:00+07:00)")
    filters = AlertFilters(status, rule_kind, rule_id, subject, since, until, severity)
    try:
        async with app.pool.connection() as conn:
            visible = await visible_subjects(conn, principal.scope, service.config)
            items, next_cursor = await list_alerts(conn, filters, limit, cursor, visible)
    except QueryError as error:
        raise HTTPException(422, str(error)) from None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/rules", summary="The configured rules and each subject's last evaluation status")
async def get_rules(
    principal: Reader,
    app: Annotated[AppState, Depends(get_app_state)],
    service: Annotated[AlertService, Depends(get_alert_service)],
) -> list[dict[str, Any]]:
    """Every rule, with only the subjects (and listed sources) the caller may see."""
    visible = await _visible(app, service, principal)
    return [scoped_rule(rule, visible) for rule in await service.rules_status()]


@router.get("/{alert_id:uuid}", summary="One alert with its transitions")
async def get_one(
    alert_id: UUID,
    principal: Reader,
    app: Annotated[AppState, Depends(get_app_state)],
    service: Annotated[AlertService, Depends(get_alert_service)],
) -> dict[str, Any]:
    return await _visible_alert(app, service, principal, alert_id)


async def _operator(
    app: AppState, service: AlertService, principal: Principal, alert_id: UUID, *, action: OperatorAction, what: str
) -> AlertNotice:
    await _visible_alert(app, service, principal, alert_id)
    try:
        if what == "acknowledge":
            return await service.acknowledge(alert_id, principal.username, action.comment)
        return await service.resolve(alert_id, principal.username, action.comment)
    except AlertNotFoundError:
        raise no_such_alert(alert_id) from None
    except TransitionNotAllowedError as error:
        raise HTTPException(409, str(error)) from None


@router.post("/{alert_id:uuid}/acknowledge", summary="Acknowledge an open alert (409 unless open; operator, admin)")
async def acknowledge(
    alert_id: UUID,
    action: OperatorAction,
    principal: Actor,
    app: Annotated[AppState, Depends(get_app_state)],
    service: Annotated[AlertService, Depends(get_alert_service)],
) -> AlertNotice:
    return await _operator(app, service, principal, alert_id, action=action, what="acknowledge")


@router.post("/{alert_id:uuid}/resolve", summary="Resolve an open or acknowledged alert (409 when resolved)")
async def resolve(
    alert_id: UUID,
    action: OperatorAction,
    principal: Actor,
    app: Annotated[AppState, Depends(get_app_state)],
    service: Annotated[AlertService, Depends(get_alert_service)],
) -> AlertNotice:
    return await _operator(app, service, principal, alert_id, action=action, what="resolve")
