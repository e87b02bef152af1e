"""Live view API: the cameras a user may watch, the proxy's counters, and the viewer WebSocket.

The hub is made on first use on the serving event loop and kept in ``app.state.ioc_live_hub``;
``close_live_hub(app)`` (called from the app's lifespan on shutdown) closes every agent connection.

A viewer socket outlives the handshake that checked it, so every ``SESSION_RECHECK_S`` it re-reads the user
from its session token, as a new request would: a session gone (sign-out, expiry, user disabled) closes it
with 4401, a user who lost every live role or whose areas no longer hold the camera with 4403. A recheck the
database cannot answer keeps the view (logged, counted in the stats' ``recheck_failures``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket
from psycopg_pool import PoolTimeout
from starlette.websockets import WebSocketDisconnect, WebSocketState

from central_ingest.access.dependencies import require_role, session_token
from central_ingest.access.principal import Principal
from central_ingest.access.runtime import AccessRuntime, access_runtime
from central_ingest.access.scope import visible_sources
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.live.access import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHENTICATED,
    LIVE_ROLES,
    STATS_ROLES,
    close_reason,
    origin_allowed,
    site_visible,
    websocket_principal,
)
from central_ingest.live.hub import CameraChannel, LiveCapacityError, LiveHub, Viewer
from central_ingest.live.settings import LiveSettings, live_settings
from central_ingest.live.upstream import upstream_url
from central_ingest.sites.store import get_site, list_sites
from central_ingest.state import AppState, get_app_state

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

SESSION_RECHECK_S = 60.0
"""How often an open viewer's session, roles and area are checked again: the longest a sign-out, a disabled
user or a role or area change goes unnoticed by a view already open (4401 / 4403 then)."""

NOT_SIGNED_IN = "Chưa đăng nhập / not signed in"
FORBIDDEN = "Không có quyền xem camera này / not allowed to view this camera"
NO_CAMERA = "Không có camera này / no such camera"
NO_LIVE_URL = "Chưa có địa chỉ xem trực tiếp / no live address for this camera"
CLOSE_REASONS = {CLOSE_UNAUTHENTICATED: NOT_SIGNED_IN, CLOSE_FORBIDDEN: FORBIDDEN, CLOSE_NOT_FOUND: NO_CAMERA}
REVOKED_AS = {CLOSE_UNAUTHENTICATED: "unauthenticated", CLOSE_FORBIDDEN: "forbidden", CLOSE_NOT_FOUND: "not_found"}
"""The ``LiveHub.revoked`` reason of a view closed by a recheck."""


def live_hub(app: FastAPI) -> LiveHub:
    """The app's hub, made on first use (on the serving loop) from ``app.state.ioc_live_settings`` or settings."""
    state = app.state
    hub = getattr(state, "ioc_live_hub", None)
    if not isinstance(hub, LiveHub):
        settings = getattr(state, "ioc_live_settings", None)
        if not isinstance(settings, LiveSettings):
            service = getattr(state, "ioc", None)
            settings = live_settings(service.settings if isinstance(service, AppState) else None)
        hub = LiveHub(settings)
        state.ioc_live_hub = hub
    return hub


async def close_live_hub(app: FastAPI) -> None:
    """Close every agent connection of the app's hub (lifespan shutdown); a no-op when none was made."""
    hub = getattr(app.state, "ioc_live_hub", None)
    if isinstance(hub, LiveHub):
        app.state.ioc_live_hub = None
        await hub.aclose()


@router.get("/api/v1/live/cameras", summary="Cameras the caller may watch live (their area only)")
async def live_cameras(
    principal: Annotated[Principal, Depends(require_role(*LIVE_ROLES))],
    state: Annotated[AppState, Depends(get_app_state)],
) -> list[dict[str, Any]]:
    async with state.pool.connection() as conn:
        sites = await list_sites(conn, principal.scope)
    return [
        {
            "agent_id": site["agent_id"],
            "camera_id": site["id"],
            "name": site["name"],
            "area_path": site["area_path"],
            "province": site["province"],
            "district": site["district"],
            "commune": site["commune"],
            "live": upstream_url(site) is not None,
        }
        for site in sites
        if site["kind"] == "camera"
    ]


@router.get(
    "/api/v1/live/stats",
    summary="Live proxy counters per camera (the caller's area only): viewers, frames relayed, drops",
    description="The totals (upstreams, viewers, refused, revoked, recheck_failures) are the whole proxy's: its "
    "bounds are shared by every area. The cameras are those in the caller's area.",
)
async def live_stats(
    principal: Annotated[Principal, Depends(require_role(*STATS_ROLES))],
    state: Annotated[AppState, Depends(get_app_state)],
    request: Request,
) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        visible = await visible_sources(conn, principal.scope)
    return live_hub(request.app).stats_document(visible)


@router.websocket("/api/v1/live/{agent_id}/{camera_id}/ws")
async def live_socket(websocket: WebSocket, agent_id: str, camera_id: str) -> None:
    """One viewer of one camera: status messages (text JSON) and the agent's records (binary), until it leaves."""
    hub = live_hub(websocket.app)
    if not origin_allowed(websocket, hub.settings.extra_origins):
        hub.refused["origin"] += 1
        log.warning("live: refused a WebSocket from origin %r", websocket.headers.get("origin"))
        await websocket.close(code=CLOSE_FORBIDDEN)  # before accept: the handshake is answered 403
        return
    state: AppState = websocket.app.state.ioc
    runtime = access_runtime(websocket, state)
    await websocket.accept()
    token = session_token(websocket)
    principal = await websocket_principal(token, state, runtime)
    if principal is None:
        hub.refused["unauthenticated"] += 1
        await _close(websocket, CLOSE_UNAUTHENTICATED, NOT_SIGNED_IN)
        return
    if not principal.has_any(*LIVE_ROLES):
        hub.refused["forbidden"] += 1
        runtime.stats.forbidden += 1
        await _audit_denied(websocket, state, principal)
        await _close(websocket, CLOSE_FORBIDDEN, FORBIDDEN)
        return
    async with state.pool.connection() as conn:
        site = await get_site(conn, agent_id, camera_id)
    if not site_visible(site, principal):
        # A scoped user learns nothing about cameras outside its area: no such camera reads "not allowed" too.
        missing = site is None and principal.scope.unrestricted
        hub.refused["not_found" if missing else "forbidden"] += 1
        await _close(websocket, CLOSE_NOT_FOUND if missing else CLOSE_FORBIDDEN, NO_CAMERA if missing else FORBIDDEN)
        return
    assert site is not None  # site_visible said so
    url = upstream_url(site)
    if url is None:
        hub.refused["not_found"] += 1
        await _close(websocket, CLOSE_NOT_FOUND, NO_LIVE_URL)
        return
    try:
        channel, viewer = hub.join((agent_id, camera_id), url)
    except LiveCapacityError as error:
        await _close(websocket, CLOSE_TRY_LATER, error.message)
        return
    try:
        code = await _serve(websocket, channel, viewer, token, state)
    finally:
        hub.leave(channel, viewer)
    await _close(websocket, code, CLOSE_REASONS.get(code, ""))


async def _serve(
    websocket: WebSocket, channel: CameraChannel, viewer: Viewer, token: str | None, state: AppState
) -> int:
    """Relay until the viewer leaves (1000) or a recheck ends the view (4401, 4403, 4404); returns the close code."""
    hub_settings = live_hub(websocket.app).settings
    recheck = asyncio.create_task(_session_loop(websocket, token, state, channel.key))
    tasks = {
        asyncio.create_task(_send_loop(websocket, channel, viewer, hub_settings.status_every_s)),
        asyncio.create_task(_receive_loop(websocket)),
        recheck,
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if recheck.done() and not recheck.cancelled() and recheck.exception() is None:
        return recheck.result()
    return 1000


async def _send_loop(websocket: WebSocket, channel: CameraChannel, viewer: Viewer, status_every_s: float) -> int:
    try:
        while True:
            message = await viewer.get(status_every_s)
            if message is None:
                message = channel.status_text()  # nothing for a while: the page still hears from central
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_text(message)
    except (WebSocketDisconnect, RuntimeError, OSError) as error:
        log.debug("live: viewer of %s/%s went away (%s)", *channel.key, type(error).__name__)
        return 1000


async def _receive_loop(websocket: WebSocket) -> int:
    """Read (and ignore) what the page sends, to notice when it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return 1000


async def _session_loop(websocket: WebSocket, token: str | None, state: AppState, key: tuple[str, str]) -> int:
    """Every ``SESSION_RECHECK_S``: the close code that ends the view, once the user may no longer watch."""
    runtime = access_runtime(websocket, state)
    hub = live_hub(websocket.app)
    while True:
        await asyncio.sleep(SESSION_RECHECK_S)
        try:
            code = await _recheck(token, state, runtime, key)
        except (psycopg.Error, PoolTimeout) as error:
            hub.recheck_failures += 1
            log.warning("live: session recheck of a viewer of %s/%s failed, keeping the view: %s", *key, error)
            continue
        if code is not None:
            hub.revoked[REVOKED_AS[code]] += 1
            log.info("live: viewer of %s/%s closed by the session recheck (%d)", *key, code)
            return code


async def _recheck(token: str | None, state: AppState, runtime: AccessRuntime, key: tuple[str, str]) -> int | None:
    """None while the session's user may still watch camera ``key``; else the close code, as at the handshake."""
    principal = await websocket_principal(token, state, runtime)
    if principal is None:
        return CLOSE_UNAUTHENTICATED
    if not principal.has_any(*LIVE_ROLES):
        return CLOSE_FORBIDDEN
    async with state.pool.connection() as conn:
        site = await get_site(conn, *key)
    if not site_visible(site, principal):
        return CLOSE_NOT_FOUND if site is None and principal.scope.unrestricted else CLOSE_FORBIDDEN
    return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED and websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(code=code, reason=close_reason(reason))


async def _audit_denied(websocket: WebSocket, state: AppState, principal: Principal) -> None:
    """A wrong-role attempt is audited like ``require_role`` does for HTTP routes."""
    client = websocket.client.host if websocket.client is not None else None
    entry = AuditEntry(
        actor=principal.username,
        role=principal.acting_role(),
        action="access_denied",
        target={"method": "WEBSOCKET", "path": websocket.url.path, "required_roles": sorted(LIVE_ROLES)},
        reason=None,
        result_count=None,
        client=client,
    )
    async with state.pool.connection() as conn:
        await append_audit(conn, entry)
