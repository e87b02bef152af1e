"""``/api/v1/alerts``: list, one alert, acknowledge, resolve, rule states.

The alert routes read the engine from ``request.app.state.ioc_alerts`` (an ``AlertService``) and
the database pool from the app state; every operator transition is published like the engine's.
The plan routes (``/api/v1/projects/{id}/plan``) are in ``central_ingest.projects.plan_routes``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from central_ingest.alerts.history import AlertFilters, get_alert, list_alerts
from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.service import AlertService
from central_ingest.alerts.store import AlertNotFoundError, TransitionNotAllowedError
from central_ingest.query.params import QueryError
from central_ingest.state import AppState, get_app_state

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
MAX_PAGE = 1000


def running_alert_service(request: Request) -> AlertService | None:
    """The app's alert engine, or None before the lifespan started it (routes that only notify it go on)."""
    service = getattr(request.app.state, "ioc_alerts", None)
    return service if isinstance(service, AlertService) else None


def get_alert_service(request: Request) -> AlertService:
    service = running_alert_service(request)
    if service is None:  # only before the lifespan ran, i.e. a wiring bug
        raise RuntimeError("the alert engine was used before the app's lifespan started it")
    return service


class OperatorAction(BaseModel):
    """Who acknowledges or resolves an alert, and why."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200, description="Operator name or id.")
    comment: str = Field(default="", max_length=2000, description="Free text kept in the alert's history.")


@router.get("", summary="Alerts, newest first, with keyset pagination")
async def get_alerts(
    *,
    app: Annotated[AppState, Depends(get_app_state)],
    status: Literal["open", "acknowledged", "resolved"] | None = None,
    rule_kind: str | None = None,
    rule_id: str | None = None,
    subject: str | None = None,
    since: Annotated[dt.datetime | None, Query(description="Opened at or after (ISO 8601 with zone).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Opened before (ISO 8601 with zone).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a time zone (e.g. 2025-05-01T00:00:00+07:00)")
    filters = AlertFilters(status, rule_kind, rule_id, subject, since, until)
    try:
        async with app.pool.connection() as conn:
            items, next_cursor = await list_alerts(conn, filters, limit, cursor)
    except QueryError as error:
        raise HTTPException(422, str(error)) from None
    return {"items": items, "next_cursor": next_cursor}


@router.get("/rules", summary="The configured rules and each subject's last evaluation status")
async def get_rules(service: Annotated[AlertService, Depends(get_alert_service)]) -> list[dict[str, Any]]:
    return await service.rules_status()


@router.get("/{alert_id:uuid}", summary="One alert with its transitions")
async def get_one(alert_id: UUID, app: Annotated[AppState, Depends(get_app_state)]) -> dict[str, Any]:
    async with app.pool.connection() as conn:
        alert = await get_alert(conn, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return alert


async def _operator(service: AlertService, alert_id: UUID, action: OperatorAction, what: str) -> AlertNotice:
    try:
        if what == "acknowledge":
            return await service.acknowledge(alert_id, action.by, action.comment)
        return await service.resolve(alert_id, action.by, action.comment)
    except AlertNotFoundError:
        raise HTTPException(404, f"no alert {alert_id}") from None
    except TransitionNotAllowedError as error:
        raise HTTPException(409, str(error)) from None


@router.post("/{alert_id:uuid}/acknowledge", summary="Acknowledge an open alert (409 unless open)")
async def acknowledge(
    alert_id: UUID, action: OperatorAction, service: Annotated[AlertService, Depends(get_alert_service)]
) -> AlertNotice:
    return await _operator(service, alert_id, action, "acknowledge")


@router.post("/{alert_id:uuid}/resolve", summary="Resolve an open or acknowledged alert (409 when resolved)")
async def resolve(
    alert_id: UUID, action: OperatorAction, service: Annotated[AlertService, Depends(get_alert_service)]
) -> AlertNotice:
    return await _operator(service, alert_id, action, "resolve")
