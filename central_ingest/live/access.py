"""Who may open a live WebSocket: the session, the Origin, the role and the camera's area.

A browser sends the ``ioc_session`` cookie with a WebSocket handshake from any site, and cannot add a CSRF
header to it, so a cookie is only trusted together with an ``Origin`` equal to this service's own
(scheme + host of the handshake) or one of ``LiveSettings.extra_origins``: that refuses cross-site WebSocket
hijacking. A handshake with a foreign Origin is rejected before it is accepted (HTTP 403, nothing sent).
API clients may send ``Authorization: Bearer <session token>`` instead, which a browser never adds by itself.

The other refusals need the handshake accepted so the page can read the close code (a rejected handshake
reaches JavaScript as a bare 1006): 4401 not signed in, 4403 wrong role or camera outside the user's
area, 4404 no such camera (or no live address known for it), 1013 too many streams.
"""

from __future__ import annotations

from typing import Any

from fastapi import WebSocket

from central_ingest.access.principal import Principal
from central_ingest.access.roles import Role
from central_ingest.access.runtime import AccessRuntime
from central_ingest.access.sessions import session_principal
from central_ingest.auth_tokens import bearer_token
from central_ingest.state import AppState

LIVE_ROLES: tuple[Role, ...] = ("operator", "technician", "project_unit", "admin")
STATS_ROLES: tuple[Role, ...] = ("admin", "technician")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TRY_LATER = 1013
"""The standard "try again later" code: a bound of the proxy is reached."""

MAX_REASON_BYTES = 123
"""A WebSocket close reason must fit in a control frame."""


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry, on a UTF-8 character boundary."""
    return text.encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")


def own_origin(websocket: WebSocket) -> str | None:
    """``scheme://host[:port]`` of the handshake as the browser addressed it (its Host header)."""
    host = websocket.headers.get("host")
    if not host:
        return None
    scheme = "https" if websocket.url.scheme in ("wss", "https") else "http"
    return f"{scheme}://{host}".lower()


def origin_allowed(websocket: WebSocket, extra_origins: tuple[str, ...]) -> bool:
    """Whether the handshake may go on: a present Origin must be ours (or listed); a cookie needs one."""
    origin = websocket.headers.get("origin")
    if origin is None:
        # Only a non-browser client omits Origin; it must prove itself with a bearer token, not a cookie.
        return bearer_token(websocket.headers.get("authorization")) is not None
    allowed = {own_origin(websocket), *(o.rstrip("/").lower() for o in extra_origins)}
    return origin.rstrip("/").lower() in allowed


async def websocket_principal(token: str | None, state: AppState, runtime: AccessRuntime) -> Principal | None:
    """The principal of a live session holding ``token``, or None (counted as unauthenticated)."""
    principal = None
    if token is not None:
        async with state.pool.connection() as conn:
            principal = await session_principal(conn, token, runtime.settings, runtime.now())
    if principal is None:
        runtime.stats.unauthenticated += 1
    return principal


def site_visible(site: dict[str, Any] | None, principal: Principal) -> bool:
    return site is not None and principal.scope.allows(site.get("area_path"))
