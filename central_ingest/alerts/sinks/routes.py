"""``GET /api/v1/alerts/stream``: alert notices as server-sent events for the operator pages.

The route subscribes the client to the app's ``SseBroker`` (``app.state.ioc_sse``), streams
``event: alert`` frames as notices arrive and a comment line every ``heartbeat_s`` so proxies and
the browser keep the connection open, and unsubscribes when the client goes away (Starlette
cancels the stream when it sees the disconnect).

Access: the alert readers' roles (``alerts.routes.ALERT_READ_ROLES``). A user scoped to some communes
gets only the notices whose subject is in its area: the visible subject set is computed when the client
subscribes (``alerts.scope.visible_subjects``) and refreshed every ``SCOPE_REFRESH_S`` while it stays
connected (checked after each notice or heartbeat), so a camera registered in its commune meanwhile
shows up within about a minute. The user's areas are its session's at subscribe time; a failed refresh
keeps the previous set (logged and counted in the broker's ``scope_refresh_failures``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import PoolTimeout

from central_ingest.access.principal import Principal
from central_ingest.alerts.notice import Severity
from central_ingest.alerts.routes import alert_reader, get_alert_service
from central_ingest.alerts.scope import subject_visible, visible_subjects
from central_ingest.alerts.service import AlertService
from central_ingest.alerts.sinks.sse import HEARTBEAT_FRAME, SseBroker, StreamFilter, alert_frame
from central_ingest.state import AppState, get_app_state

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/alerts")

RECONNECT_HINT_MS = 3000
"""Sent as ``retry:`` so a browser's EventSource reconnects after 3 s instead of its default."""
SCOPE_REFRESH_S = 60.0
"""How often a scoped subscriber's visible subjects are recomputed (new cameras in its area)."""

Refresh = Callable[[], Awaitable[frozenset[str] | None]]


@dataclass(frozen=True)
class StreamScope:
    """What one subscriber may see: the visible subject keys (None: all) and how to recompute them."""

    subjects: frozenset[str] | None = None
    refresh: Refresh | None = None
    """None: nothing to refresh (an unrestricted user)."""


def get_sse_broker(request: Request) -> SseBroker:
    broker = getattr(request.app.state, "ioc_sse", None)
    if not isinstance(broker, SseBroker):  # only before the lifespan ran, i.e. a wiring bug
        raise RuntimeError("app.state.ioc_sse is not an SseBroker: the alert stream is not wired")
    return broker


async def stream_scope(
    principal: Annotated[Principal, Depends(alert_reader)],
    app: Annotated[AppState, Depends(get_app_state)],
    service: Annotated[AlertService, Depends(get_alert_service)],
) -> StreamScope:
    """The signed-in reader's visible subjects now, and the refresh of them."""
    scope = principal.scope
    if scope.unrestricted:
        return StreamScope()

    async def refresh() -> frozenset[str] | None:
        async with app.pool.connection() as conn:
            return await visible_subjects(conn, scope, service.config)

    return StreamScope(await refresh(), refresh)


async def _refreshed(broker: SseBroker, access: StreamScope, current: frozenset[str] | None) -> frozenset[str] | None:
    """The recomputed subject set, or ``current`` when the database cannot answer now."""
    if access.refresh is None:
        return current
    try:
        return await access.refresh()
    except (psycopg.Error, PoolTimeout) as error:
        broker.scope_refresh_failures += 1
        log.warning("alert stream: area scope refresh failed, keeping the previous one: %s", error)
        return current


async def _frames(
    broker: SseBroker, wanted: StreamFilter, access: StreamScope, refresh_every_s: float = SCOPE_REFRESH_S
) -> AsyncIterator[bytes]:
    # Subscribed here, not in the handler: a generator that never starts must not leave a subscriber behind.
    subscription = broker.subscribe(wanted)
    loop = asyncio.get_running_loop()
    next_refresh = loop.time() + refresh_every_s
    try:
        # The first frame tells the client it is subscribed: nothing published after it is missed.
        yield f"retry: {RECONNECT_HINT_MS}\n: connected\n\n".encode()
        while True:
            notice = await subscription.next(broker.heartbeat_s)
            if notice is None:
                yield HEARTBEAT_FRAME
            elif subject_visible(notice.subject, subscription.wanted.subjects):  # queued before a refresh shrank it
                yield alert_frame(notice)
            if access.refresh is not None and loop.time() >= next_refresh:
                next_refresh = loop.time() + refresh_every_s
                subjects = await _refreshed(broker, access, subscription.wanted.subjects)
                subscription.set_filter(dataclasses.replace(subscription.wanted, subjects=subjects))
    finally:
        broker.unsubscribe(subscription)


@router.get(
    "/stream",
    summary="Alert transitions as server-sent events (text/event-stream), of the caller's area",
    description="Frames: `event: alert`, `id: <alert_id>:<changed_at>`, `data: <AlertNotice JSON>`; a comment "
    "line as heartbeat. Live only: what happened before connecting is in the database. A client that reads too "
    "slowly loses its oldest queued notices. Roles: operator, technician, police, project_unit, admin; a user "
    "scoped to some communes gets only their alerts.",
    response_class=StreamingResponse,
)
async def stream_alerts(
    broker: Annotated[SseBroker, Depends(get_sse_broker)],
    access: Annotated[StreamScope, Depends(stream_scope)],
    rule_kind: Annotated[str | None, Query(max_length=64, description="Only notices of this rule kind.")] = None,
    severity: Annotated[Severity | None, Query(description="Only notices of this severity.")] = None,
) -> StreamingResponse:
    wanted = StreamFilter(rule_kind=rule_kind, severity=severity, subjects=access.subjects)
    return StreamingResponse(
        _frames(broker, wanted, access),
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering keep proxies (nginx) from buffering the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
