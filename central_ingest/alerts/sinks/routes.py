"""``GET /api/v1/alerts/stream``: alert notices as server-sent events for the operator pages.

The route subscribes the client to the app's ``SseBroker`` (``app.state.ioc_sse``), streams
``event: alert`` frames as notices arrive and a comment line every ``heartbeat_s`` so proxies and
the browser keep the connection open, and unsubscribes when the client goes away (Starlette
cancels the stream when it sees the disconnect).

Access: the alert readers' roles (``alerts.routes.ALERT_READ_ROLES``). A user scoped to some communes
gets only the notices whose subject is in its area (``alerts.scope.visible_subjects``, computed when the
client subscribes). A stream outlives the request that opened it, so every ``SESSION_RECHECK_S`` it reads
the user again from the request's session token (as a new request would): a session that ended (sign-out,
expiry, the user disabled or given a new password) or a user who no longer holds a reader role ends the
stream (comment ``: session ended`` then the end of the response; the browser's reconnect then gets 401),
and the user's areas as they are now give the visible set (an area change, a camera registered in its
commune meanwhile). A recheck the database cannot answer keeps the previous set (logged and counted in
the broker's ``scope_refresh_failures``); a recheck that ended a stream is counted in ``streams_revoked``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import PoolTimeout

from central_ingest.access.dependencies import session_token
from central_ingest.access.principal import Principal
from central_ingest.access.runtime import AccessRuntime, get_access_runtime
from central_ingest.access.sessions import session_principal
from central_ingest.alerts.notice import Severity
from central_ingest.alerts.routes import ALERT_READ_ROLES, alert_reader, get_alert_service
from central_ingest.alerts.scope import subject_visible, visible_subjects
from central_ingest.alerts.service import AlertService
from central_ingest.alerts.sinks.sse import HEARTBEAT_FRAME, SseBroker, StreamFilter, alert_frame
from central_ingest.state import AppState, get_app_state

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/alerts")

RECONNECT_HINT_MS = 3000
"""Sent as ``retry:`` so a browser's EventSource reconnects after 3 s instead of its default."""
SESSION_RECHECK_S = 60.0
"""How often an open stream re-reads its user (session, roles, areas): the longest a sign-out, a disabled
user or a role or area change goes unnoticed by a stream already open. Each recheck is one indexed UPDATE."""
SESSION_ENDED_FRAME = b": session ended\n\n"

Refresh = Callable[[], Awaitable[frozenset[str] | None]]


class StreamEndedError(Exception):
    """The stream's session is gone or its user may no longer read alerts; ``reason`` says which (for the log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StreamScope:
    """What one subscriber may see: the visible subject keys (None: all) and how to recheck them."""

    subjects: frozenset[str] | None = None
    refresh: Refresh | None = None
    """Re-reads the user and answers its visible subjects now, or raises ``StreamEndedError``; None: nothing to
    recheck (a test's stream without a database)."""


def get_sse_broker(request: Request) -> SseBroker:
    broker = getattr(request.app.state, "ioc_sse", None)
    if not isinstance(broker, SseBroker):  # only before the lifespan ran, i.e. a wiring bug
        raise RuntimeError("app.state.ioc_sse is not an SseBroker: the alert stream is not wired")
    return broker


async def stream_scope(
    request: Request,
    principal: Annotated[Principal, Depends(alert_reader)],
    app: Annotated[AppState, Depends(get_app_state)],
    runtime: Annotated[AccessRuntime, Depends(get_access_runtime)],
    service: Annotated[AlertService, Depends(get_alert_service)],
) -> StreamScope:
    """The signed-in reader's visible subjects now, and the recheck of its session, roles and areas."""
    token = session_token(request)

    async def refresh() -> frozenset[str] | None:
        if token is None:  # cannot happen after alert_reader; fail closed all the same
            raise StreamEndedError("no session token")
        async with app.pool.connection() as conn:
            fresh = await session_principal(conn, token, runtime.settings, runtime.now())
            if fresh is not None and fresh.has_any(*ALERT_READ_ROLES):
                return await visible_subjects(conn, fresh.scope, service.config)
        if fresh is None:
            raise StreamEndedError("session ended (signed out, expired or user disabled)")
        raise StreamEndedError(f"user {fresh.username} no longer holds an alert reader role")

    subjects = None
    if not principal.scope.unrestricted:
        async with app.pool.connection() as conn:
            subjects = await visible_subjects(conn, principal.scope, service.config)
    return StreamScope(subjects, refresh)


async def _refreshed(broker: SseBroker, access: StreamScope, current: frozenset[str] | None) -> frozenset[str] | None:
    """The recomputed subject set, or ``current`` when the database cannot answer now; ``StreamEndedError`` passes."""
    if access.refresh is None:
        return current
    try:
        return await access.refresh()
    except (psycopg.Error, PoolTimeout) as error:
        broker.scope_refresh_failures += 1
        log.warning("alert stream: session recheck failed, keeping the previous area scope: %s", error)
        return current


async def _frames(
    broker: SseBroker, wanted: StreamFilter, access: StreamScope, recheck_every_s: float = SESSION_RECHECK_S
) -> AsyncGenerator[bytes, None]:
    # Subscribed here, not in the handler: a generator that never starts must not leave a subscriber behind.
    subscription = broker.subscribe(wanted)
    loop = asyncio.get_running_loop()
    next_recheck = loop.time() + recheck_every_s
    next_heartbeat = loop.time() + broker.heartbeat_s
    try:
        # The first frame tells the client it is subscribed: nothing published after it is missed.
        yield f"retry: {RECONNECT_HINT_MS}\n: connected\n\n".encode()
        while True:
            wake_at = min(next_heartbeat, next_recheck) if access.refresh is not None else next_heartbeat
            notice = await subscription.next(max(0.0, wake_at - loop.time()))
            if access.refresh is not None and loop.time() >= next_recheck:
                # Before the notice goes out: nothing is sent on a session found ended, or outside the new areas.
                try:
                    subjects = await _refreshed(broker, access, subscription.wanted.subjects)
                except StreamEndedError as ended:
                    broker.streams_revoked += 1
                    log.info("alert stream of client %d ended: %s", subscription.client_id, ended.reason)
                    yield SESSION_ENDED_FRAME
                    return
                subscription.set_filter(dataclasses.replace(subscription.wanted, subjects=subjects))
                next_recheck = loop.time() + recheck_every_s
            if notice is not None and subject_visible(notice.subject, subscription.wanted.subjects):
                yield alert_frame(notice)  # checked again here: it may have been queued before the set shrank
                next_heartbeat = loop.time() + broker.heartbeat_s
            elif loop.time() >= next_heartbeat:
                yield HEARTBEAT_FRAME
                next_heartbeat = loop.time() + broker.heartbeat_s
    finally:
        broker.unsubscribe(subscription)


@router.get(
    "/stream",
    summary="Alert transitions as server-sent events (text/event-stream), of the caller's area",
    description="Frames: `event: alert`, `id: <alert_id>:<changed_at>`, `data: <AlertNotice JSON>`; a comment "
    "line as heartbeat. Live only: what happened before connecting is in the database. A client that reads too "
    "slowly loses its oldest queued notices. Roles: operator, technician, police, project_unit, admin; a user "
    "scoped to some communes gets only their alerts. The stream ends (comment `: session ended`) "
    f"within {SESSION_RECHECK_S:.0f} s of a sign-out, a disabled user or a lost reader role; area changes apply "
    "within that time too.",
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
        _frames(broker, wanted, access, SESSION_RECHECK_S),
        media_type="text/event-stream",
        # no-transform and X-Accel-Buffering keep proxies (nginx) from buffering the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
