"""``POST /api/v1/auth/login``, ``POST /api/v1/auth/logout``, ``GET /api/v1/auth/me``.

Sign-in answers the session token in the body (for API clients: ``Authorization: Bearer``) and
sets two cookies for the pages: ``ioc_session`` (HttpOnly, the token) and ``ioc_csrf`` (readable
by the page's script, echoed in ``X-CSRF-Token``). Both are SameSite=Strict and, unless
``access.cookie_secure`` is off, Secure.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from central_ingest.access.dependencies import CSRF_COOKIE, SESSION_COOKIE, client_address, require_signed_in
from central_ingest.access.login import LoginLocked, LoginRefused, sign_in
from central_ingest.access.principal import Principal
from central_ingest.access.runtime import AccessRuntime, KdfBusyError, get_access_runtime
from central_ingest.access.sessions import revoke_session
from central_ingest.access.users import get_user
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.state import AppState, get_app_state

router = APIRouter(prefix="/api/v1/auth", tags=["access"])

SIGN_IN_FAILED = "Sai tên đăng nhập, mật khẩu hoặc mã xác thực. / Wrong username, password or authentication code."


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(
        default=None, max_length=16, description="The 6-digit code of the authenticator app (police, admin)."
    )


class LoginResponse(BaseModel):
    token: str
    expires_at: dt.datetime
    roles: list[str]
    csrf_token: str


class Me(BaseModel):
    user_id: int
    username: str
    display_name: str
    roles: list[str]
    areas: list[str] | None = Field(description="Area paths the user may see; null: the whole province.")
    session_id: str


def _set_cookies(response: Response, token: str, csrf: str, max_age: int, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
    )
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, httponly=False, secure=secure, samesite="strict", path="/")


@router.post(
    "/login",
    response_model=LoginResponse,
    summary="Sign in with username, password and (police, admin) a TOTP code",
    responses={
        401: {"description": "Wrong username, password or code (one message for all, on purpose)."},
        429: {"description": "Too many failures for this username or address; Retry-After says when to retry."},
        503: {"description": "Too many sign-ins at once; retry shortly."},
    },
)
async def login(
    body: LoginRequest,
    request: Request,
    state: Annotated[AppState, Depends(get_app_state)],
    runtime: Annotated[AccessRuntime, Depends(get_access_runtime)],
) -> JSONResponse:
    client = client_address(request)
    try:
        result = await sign_in(state.pool, runtime, body.username, body.password, code=body.totp, client=client)
    except KdfBusyError:
        return JSONResponse({"detail": "Hệ thống bận, thử lại sau. / Busy, retry shortly."}, 503, {"Retry-After": "2"})
    if isinstance(result, LoginLocked):
        wait = max(1, math.ceil(result.retry_after_s))
        detail = f"Đăng nhập sai quá nhiều lần, thử lại sau {wait} giây. / Too many failed sign-ins, retry in {wait} s."
        return JSONResponse({"detail": detail}, 429, {"Retry-After": str(wait)})
    if isinstance(result, LoginRefused):
        return JSONResponse({"detail": SIGN_IN_FAILED}, 401)
    grant = result.grant
    answer = LoginResponse(
        token=grant.token, expires_at=grant.expires_at, roles=list(result.roles), csrf_token=grant.csrf_token
    )
    response = JSONResponse(answer.model_dump(mode="json"), headers={"Cache-Control": "no-store"})
    max_age = int(runtime.settings.session_absolute_s)
    _set_cookies(response, grant.token, grant.csrf_token, max_age, runtime.settings.cookie_secure)
    return response


@router.post("/logout", summary="End this session (cookie sign-ins must send X-CSRF-Token)")
async def logout(
    request: Request,
    principal: Annotated[Principal, Depends(require_signed_in)],
    state: Annotated[AppState, Depends(get_app_state)],
    runtime: Annotated[AccessRuntime, Depends(get_access_runtime)],
) -> JSONResponse:
    async with state.pool.connection() as conn:
        await revoke_session(conn, principal.session_id, runtime.now())
        entry = AuditEntry(
            principal.username,
            principal.acting_role(),
            "logout",
            {"session_id": principal.session_id},
            None,
            None,
            client_address(request),
        )
        await append_audit(conn, entry)
    response = JSONResponse({"status": "signed out"})
    secure = runtime.settings.cookie_secure
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=http_only, samesite="strict")
    return response


@router.get("/me", response_model=Me, summary="The signed-in user: name, roles and area scope")
async def me(
    principal: Annotated[Principal, Depends(require_signed_in)],
    state: Annotated[AppState, Depends(get_app_state)],
) -> Me:
    async with state.pool.connection() as conn:
        user = await get_user(conn, principal.username)
    return Me(
        user_id=principal.user_id,
        username=principal.username,
        display_name="" if user is None else user.display_name,
        roles=sorted(principal.roles),
        areas=None if principal.areas is None else list(principal.areas),
        session_id=principal.session_id,
    )
