"""Authentication of requests and the role check: ``require_role("police")`` as a FastAPI dependency.

A request proves a session in one of two ways:

- ``Authorization: Bearer <session token>`` (API clients, tests): nothing else needed, since a
  browser never adds that header by itself, so it cannot be forged cross-site;
- the ``ioc_session`` cookie (the pages): then every unsafe method (POST, PUT, PATCH, DELETE) must
  also send ``X-CSRF-Token`` equal to the ``ioc_csrf`` cookie and to the session's CSRF token
  (double submit, bound to the session).

No valid session: 401. A session without one of the roles asked for: 403, and the refusal is
audited (``access_denied``), because a wrong-role attempt on personal data is worth an auditor's
eye. Roles do not imply each other.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from central_ingest.access.principal import Principal
from central_ingest.access.roles import ROLES, Role, parse_role
from central_ingest.access.runtime import AccessRuntime, get_access_runtime
from central_ingest.access.sessions import csrf_for, session_principal
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.auth_tokens import bearer_token
from central_ingest.state import AppState, get_app_state

SESSION_COOKIE = "ioc_session"
CSRF_COOKIE = "ioc_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_COOKIE_TOKEN_CHARS = 256

UNAUTHENTICATED = "Chưa đăng nhập hoặc phiên đã hết hạn. / Not signed in, or the session has expired."
CSRF_REFUSED = (
    "Thiếu hoặc sai mã chống giả mạo (X-CSRF-Token). / Missing or wrong CSRF token: send the ioc_csrf cookie's "
    "value in the X-CSRF-Token header."
)
FORBIDDEN = "Tài khoản không có quyền này. / Your account does not have the role this needs."


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def cookie_session_token(connection: HTTPConnection) -> str | None:
    """The ``ioc_session`` cookie's token when present and not oversized."""
    token = connection.cookies.get(SESSION_COOKIE)
    return token if token and len(token) <= MAX_COOKIE_TOKEN_CHARS else None


def session_token(connection: HTTPConnection) -> str | None:
    """The session token a request or WebSocket presents: ``Authorization: Bearer`` first, else the cookie.

    For a re-check of a connection already authenticated (streams); ``authenticate`` also checks the CSRF
    header of a cookie on unsafe methods."""
    return bearer_token(connection.headers.get("authorization")) or cookie_session_token(connection)


def _unauthenticated(runtime: AccessRuntime) -> HTTPException:
    runtime.stats.unauthenticated += 1
    return HTTPException(401, UNAUTHENTICATED, headers={"WWW-Authenticate": 'Bearer realm="ioc-central"'})


def _check_csrf(request: Request, token: str, runtime: AccessRuntime) -> None:
    if request.method in SAFE_METHODS:
        return
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    expected = csrf_for(token)
    if not (
        header
        and hmac.compare_digest(header.encode(), cookie.encode())
        and hmac.compare_digest(header.encode(), expected.encode())
    ):
        runtime.stats.csrf_refused += 1
        raise HTTPException(403, CSRF_REFUSED)


async def authenticate(request: Request, state: AppState, runtime: AccessRuntime) -> Principal:
    """The principal of the request's session; HTTPException 401 (no session) or 403 (CSRF)."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        token = cookie_session_token(request)
        if token is None:
            raise _unauthenticated(runtime)
        _check_csrf(request, token, runtime)
    async with state.pool.connection() as conn:
        principal = await session_principal(conn, token, runtime.settings, runtime.now())
    if principal is None:
        raise _unauthenticated(runtime)
    return principal


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency giving the signed-in principal when it holds at least one of ``roles``.

    ``principal: Annotated[Principal, Depends(require_role("police"))]``; 401 without a valid
    session, 403 (audited) with one that lacks every role named.
    """
    if not roles:
        raise ValueError("require_role needs at least one role; use require_signed_in for any role")
    wanted = frozenset(parse_role(role) for role in roles)

    async def dependency(
        request: Request,
        state: Annotated[AppState, Depends(get_app_state)],
        runtime: Annotated[AccessRuntime, Depends(get_access_runtime)],
    ) -> Principal:
        principal = await authenticate(request, state, runtime)
        if principal.roles.isdisjoint(wanted):
            runtime.stats.forbidden += 1
            entry = AuditEntry(
                actor=principal.username,
                role=principal.acting_role(),
                action="access_denied",
                target={"method": request.method, "path": request.url.path, "required_roles": sorted(wanted)},
                reason=None,
                result_count=None,
                client=client_address(request),
            )
            async with state.pool.connection() as conn:
                await append_audit(conn, entry)
            raise HTTPException(403, FORBIDDEN)
        return principal

    return dependency


require_signed_in = require_role(*ROLES)
"""Any signed-in user, whatever their role (``GET /api/v1/auth/me``, sign-out)."""
