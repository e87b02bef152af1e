"""Sign-in: rate limit, password, TOTP, session; every failure counted and audited.

Order: the rate limit first (a locked username or address is refused before any hashing), then
the password (an unknown username is checked against a dummy hash, so timing does not tell
which names exist), then the account state and the TOTP code. The caller sees one generic
failure whatever went wrong; the audit entry (``login_failed``) records the real reason for the
auditor. A success forgets the username's failures, re-hashes a password made with older KDF
parameters, opens a session and audits ``login`` in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central_ingest.access.passwords import hash_password, needs_rehash, verify_password
from central_ingest.access.runtime import AccessRuntime
from central_ingest.access.sessions import SessionGrant, open_session
from central_ingest.access.totp import verify_totp
from central_ingest.access.users import Credentials, consume_totp_step, find_credentials, update_user
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.audit.entry import MAX_ACTOR_CHARS

FailureReason = Literal[
    "unknown_user", "bad_password", "disabled", "totp_missing", "totp_not_enrolled", "totp_wrong", "totp_replayed"
]


@dataclass(frozen=True, slots=True)
class LoginSuccess:
    grant: SessionGrant
    username: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoginRefused:
    reason: FailureReason


@dataclass(frozen=True, slots=True)
class LoginLocked:
    retry_after_s: float


LoginResult = LoginSuccess | LoginRefused | LoginLocked


def _keys(username: str, client: str | None) -> tuple[str, ...]:
    user_key = "user:" + username.strip().lower()[:MAX_ACTOR_CHARS]
    return (user_key,) if client is None else (user_key, "addr:" + client)


async def _second_factor(
    conn: AsyncConnection[Any], runtime: AccessRuntime, creds: Credentials, code: str | None, now: dt.datetime
) -> FailureReason | None:
    needed = not creds.user.roles.isdisjoint(runtime.settings.totp_roles) or creds.totp_secret is not None
    if not needed:
        return None
    if creds.totp_secret is None:
        return "totp_not_enrolled"
    if not code:
        return "totp_missing"
    step = verify_totp(creds.totp_secret, code, now.timestamp(), creds.totp_last_step)
    if step is None:
        # Tell the auditor a replayed code (valid now, but its step was used) from a wrong one.
        replayed = verify_totp(creds.totp_secret, code, now.timestamp(), None) is not None
        return "totp_replayed" if replayed else "totp_wrong"
    # Conditional: of two sign-ins racing with one code, only one moves the step.
    return None if await consume_totp_step(conn, creds.user.user_id, step) else "totp_replayed"


async def _password(
    pool: AsyncConnectionPool[AsyncConnection[Any]], runtime: AccessRuntime, username: str, password: str
) -> Credentials | FailureReason:
    # No connection is held while hashing: waiting sign-ins must not drain the pool.
    async with pool.connection() as conn:
        creds = await find_credentials(conn, username)
    stored = creds.password_hash if creds is not None else await runtime.dummy_hash()
    password_ok = await runtime.kdf.run(verify_password, password, stored)
    if creds is None:
        return "unknown_user"
    if not password_ok:
        return "bad_password"
    if creds.user.disabled:
        return "disabled"
    return creds


async def sign_in(
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    runtime: AccessRuntime,
    username: str,
    password: str,
    *,
    code: str | None,
    client: str | None,
) -> LoginResult:
    """Try a sign-in. Raises ``KdfBusyError`` when too many hashes are in flight (nothing counted)."""
    keys = _keys(username, client)
    wait = runtime.limiter.retry_after(keys, runtime.monotonic())
    if wait > 0:
        return LoginLocked(wait)
    outcome = await _password(pool, runtime, username, password)
    async with pool.connection() as conn:
        if isinstance(outcome, Credentials):
            failure = await _second_factor(conn, runtime, outcome, code, runtime.now())
            outcome = outcome if failure is None else failure
        if not isinstance(outcome, Credentials):
            runtime.limiter.failed(keys, runtime.monotonic())
            runtime.stats.login_failures += 1
            actor = username.strip().lower()[:MAX_ACTOR_CHARS] or "?"
            entry = AuditEntry(actor, "", "login_failed", {"reason": outcome}, None, None, client)
            await append_audit(conn, entry)
            return LoginRefused(outcome)
        runtime.limiter.succeeded(keys[0])
        user = outcome.user
        if needs_rehash(outcome.password_hash, runtime.kdf_params):
            new_hash = await runtime.kdf.run(hash_password, password, runtime.kdf_params)
            await update_user(conn, user.user_id, password_hash=new_hash)
        async with conn.transaction():
            grant = await open_session(conn, user.user_id, runtime.settings, runtime.now(), client)
            roles = tuple(sorted(user.roles))
            target = {"session_id": grant.session_id, "expires_at": grant.expires_at.isoformat()}
            await append_audit(conn, AuditEntry(user.username, ",".join(roles), "login", target, None, None, client))
        runtime.stats.logins += 1
        return LoginSuccess(grant, user.username, roles)
