"""Sign-in, sessions, roles, CSRF and the auditor API on the real database and a small FastAPI app.

The app carries only the access and audit routers and two probe routes; the runtime's clocks are
fixed by the test, so expiry, TOTP steps and lockouts are exact.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any

import psycopg
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from central_ingest.access.admin import Actor, create_user, set_disabled
from central_ingest.access.dependencies import require_role, require_signed_in
from central_ingest.access.principal import Principal
from central_ingest.access.roles import Role
from central_ingest.access.routes import router as access_router
from central_ingest.access.runtime import AccessRuntime
from central_ingest.access.settings import AccessSettings
from central_ingest.access.totp import totp
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from central_ingest.audit.routes import router as audit_router
from central_ingest.state import get_app_state
from central_ingest.store.migrate import apply_migrations
from ioc_common.backoff import BackoffConfig

pytestmark = pytest.mark.integration

PASSWORD = "mật-khẩu-đủ-dài-2025"
T0 = dt.datetime(2025, 6, 2, 8, 0, 10, tzinfo=dt.UTC)
ACCESS = AccessSettings(
    password_kdf_log2_n=10,  # the flow is under test, not the cost
    cookie_secure=False,  # the test client speaks plain HTTP
    session_idle_s=600,
    session_absolute_s=3600,
    login_free_failures=3,
    login_backoff=BackoffConfig(base_s=30.0, ceiling_s=600.0),
)
USERS: dict[str, tuple[Role, ...]] = {
    "officer.an": ("police",),
    "operator.chi": ("operator",),
    "auditor.dung": ("auditor",),
    "admin.em": ("admin",),
}

probe = APIRouter(prefix="/probe")


@probe.get("/police")
async def police_read(principal: Annotated[Principal, Depends(require_role("police"))]) -> dict[str, str]:
    return {"user": principal.username}


@probe.post("/any")
async def any_write(principal: Annotated[Principal, Depends(require_signed_in)]) -> dict[str, str]:
    return {"user": principal.username}


@dataclass
class Clock:
    wall: dt.datetime = T0
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += dt.timedelta(seconds=seconds)
        self.mono += seconds


@dataclass
class World:
    client: TestClient
    clock: Clock
    secrets: dict[str, bytes]
    dsn: str

    def code(self, username: str, offset_steps: int = 0) -> str:
        return totp(self.secrets[username], self.clock.wall.timestamp() + 30 * offset_steps)

    def login(self, username: str, *, keep_cookies: bool = False, **extra: Any) -> Any:
        """Sign in; the client forgets the session cookies unless asked (the tests use bearer tokens)."""
        body: dict[str, Any] = {"username": username, "password": PASSWORD} | extra
        answer = self.client.post("/api/v1/auth/login", json=body)
        if not keep_cookies:
            self.client.cookies.clear()
        return answer

    def audit(self, action: str) -> list[AuditRecord]:
        async def read() -> list[AuditRecord]:
            async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
                return await list_audit(conn, AuditFilter(action=action), 1000)

        return asyncio.run(read())


async def _create_users(dsn: str) -> dict[str, bytes]:
    secrets: dict[str, bytes] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for username, roles in USERS.items():
            change = await create_user(
                conn, Actor("test-setup", "admin"), ACCESS, username=username, password=PASSWORD, roles=frozenset(roles)
            )
            if change.totp_secret is not None:
                secrets[username] = change.totp_secret
    return secrets


@pytest.fixture(scope="module")
def world(pg_dsn: str) -> Iterator[World]:
    apply_migrations(pg_dsn)
    secrets = asyncio.run(_create_users(pg_dsn))
    clock = Clock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False) as pool:
            app.state.only = SimpleNamespace(pool=pool, settings=SimpleNamespace(access=ACCESS))
            app.state.ioc_access = AccessRuntime.create(ACCESS, now=lambda: clock.wall, monotonic=lambda: clock.mono)
            yield

    app = FastAPI(lifespan=lifespan)
    for router in (access_router, audit_router, probe):
        app.include_router(router)
    app.dependency_overrides[get_app_state] = lambda: app.state.only
    with TestClient(app) as client:
        yield World(client, clock, secrets, pg_dsn)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_totp_is_required_for_police_and_admin_and_good_once(world: World) -> None:
    assert set(world.secrets) == {"officer.an", "admin.em"}
    world.clock.advance(60)
    missing = world.login("officer.an")
    wrong = world.login("officer.an", totp="000000" if world.code("officer.an") != "000000" else "111111")
    assert (missing.status_code, wrong.status_code) == (401, 401)
    code = world.code("officer.an")
    ok = world.login("officer.an", totp=code)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["roles"] == ["police"]
    assert dt.datetime.fromisoformat(body["expires_at"]) == world.clock.wall + dt.timedelta(seconds=3600)
    assert ok.headers["cache-control"] == "no-store"
    assert world.client.get("/api/v1/auth/me", headers=bearer(body["token"])).json()["username"] == "officer.an"
    replay = world.login("officer.an", totp=code)
    assert replay.status_code == 401
    reasons = [r.target["reason"] for r in world.audit("login_failed") if r.actor == "officer.an"]
    assert reasons == ["totp_missing", "totp_wrong", "totp_replayed"]
    # The next step's code works (and an operator needs none).
    world.clock.advance(30)
    assert world.login("officer.an", totp=world.code("officer.an")).status_code == 200
    assert world.login("operator.chi").status_code == 200
    logins = world.audit("login")
    assert logins[-1].actor == "operator.chi"
    assert logins[-1].target["session_id"]


def test_no_session_401_wrong_role_403_and_roles_do_not_nest(world: World) -> None:
    world.clock.advance(30)
    assert world.client.get("/probe/police").status_code == 401
    assert world.client.get("/probe/police", headers=bearer("not-a-token")).status_code == 401
    operator = world.login("operator.chi").json()["token"]
    admin = world.login("admin.em", totp=world.code("admin.em")).json()["token"]
    police = world.login("officer.an", totp=world.code("officer.an", 1)).json()["token"]
    assert world.client.get("/probe/police", headers=bearer(operator)).status_code == 403
    assert world.client.get("/probe/police", headers=bearer(admin)).status_code == 403  # admin is not police
    assert world.client.get("/probe/police", headers=bearer(police)).json() == {"user": "officer.an"}
    denied = world.audit("access_denied")
    assert [(r.actor, r.target["path"], r.target["required_roles"]) for r in denied[-2:]] == [
        ("operator.chi", "/probe/police", ["police"]),
        ("admin.em", "/probe/police", ["police"]),
    ]


def test_cookie_sessions_need_the_csrf_header_on_unsafe_methods(world: World) -> None:
    world.clock.advance(30)
    client = world.client
    answer = world.login("operator.chi", keep_cookies=True)
    assert "httponly" in answer.headers["set-cookie"].lower()
    csrf = answer.json()["csrf_token"]
    assert client.cookies.get("ioc_csrf") == csrf
    assert client.get("/api/v1/auth/me").status_code == 200  # safe method: the cookie is enough
    assert client.post("/probe/any").status_code == 403
    assert client.post("/probe/any", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post("/probe/any", headers={"X-CSRF-Token": csrf}).json() == {"user": "operator.chi"}
    # Sign out with the cookie (CSRF header too); the session is then gone for cookie and bearer alike.
    token = answer.json()["token"]
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert not client.cookies.get("ioc_session")
    assert client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    assert world.audit("logout")[-1].actor == "operator.chi"
    client.cookies.clear()


def test_sessions_expire_when_idle_or_old_and_end_when_the_user_is_disabled(world: World) -> None:
    world.clock.advance(30)
    token = world.login("operator.chi").json()["token"]
    me = world.client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    world.clock.advance(500)
    assert world.client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200  # use resets idleness
    world.clock.advance(500)
    assert world.client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    world.clock.advance(601)
    assert world.client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401  # idle

    token = world.login("operator.chi").json()["token"]
    for _ in range(7):  # active all the time (3500 s) ...
        world.clock.advance(500)
        assert world.client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 200
    world.clock.advance(100)  # ... but the absolute limit (3600 s) still ends it
    assert world.client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401

    token = world.login("operator.chi").json()["token"]

    async def disable(flag: bool) -> None:
        async with await psycopg.AsyncConnection.connect(world.dsn, autocommit=True) as conn:
            await set_disabled(conn, Actor("test-admin", "admin"), "operator.chi", flag, world.clock.wall)

    asyncio.run(disable(True))
    assert world.client.get("/api/v1/auth/me", headers=bearer(token)).status_code == 401
    assert world.login("operator.chi").status_code == 401
    asyncio.run(disable(False))
    assert world.login("operator.chi").status_code == 200
    assert [r.target["sessions_ended"] for r in world.audit("user_disabled")] == [1]


def test_failed_sign_ins_are_generic_audited_and_rate_limited(world: World) -> None:
    world.clock.advance(ACCESS.login_forget_s + 1)  # the earlier tests' failures from this address are forgotten
    unknown = world.login("nobody.here", password="x" * 20)
    bad = world.login("auditor.dung", password="x" * 20)
    assert unknown.status_code == bad.status_code == 401
    assert unknown.json() == bad.json()  # nothing tells which usernames exist
    for _ in range(2):
        assert world.login("auditor.dung", password="wrong password!").status_code == 401
    locked = world.login("auditor.dung")  # 3 failures are free; the right password now waits
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "30"
    world.clock.advance(30)
    assert world.login("auditor.dung").status_code == 200
    failed = [r for r in world.audit("login_failed") if r.actor in {"nobody.here", "auditor.dung"}]
    assert [r.target["reason"] for r in failed] == ["unknown_user", "bad_password", "bad_password", "bad_password"]
    assert all(r.client == "testclient" for r in failed)


def test_auditor_reads_and_verifies_the_log_and_each_read_is_audited(world: World) -> None:
    world.clock.advance(3600)
    auditor = bearer(world.login("auditor.dung").json()["token"])
    police = bearer(world.login("officer.an", totp=world.code("officer.an")).json()["token"])
    assert world.client.get("/api/v1/audit", headers=police).status_code == 403
    first = world.client.get("/api/v1/audit", params={"action": "login", "limit": 2}, headers=auditor).json()
    assert [item["action"] for item in first["items"]] == ["login", "login"]
    second = world.client.get(
        "/api/v1/audit", params={"action": "login", "limit": 2, "after_seq": first["next_after_seq"]}, headers=auditor
    ).json()
    assert second["items"][0]["seq"] > first["items"][1]["seq"]
    by_actor = world.client.get("/api/v1/audit", params={"actor": "officer.an"}, headers=auditor).json()["items"]
    assert {item["actor"] for item in by_actor} == {"officer.an"}
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()  # entries carry the database's clock
    assert world.client.get("/api/v1/audit", params={"since": later}, headers=auditor).json()["items"] == []
    reads = world.audit("audit_read")
    assert [(r.actor, r.role, r.target["action"]) for r in reads[:2]] == [
        ("auditor.dung", "auditor", "login"),
        ("auditor.dung", "auditor", "login"),
    ]
    assert reads[0].result_count == 2
    report = world.client.get("/api/v1/audit/verify", headers=auditor).json()
    assert report["ok"] is True
    assert report["checked"] == report["last_seq"]
    assert world.audit("audit_verify")[-1].target["ok"] is True
