"""Account administration, each action and its audit entry in one transaction.

Used by the CLI (``central-ingest user ...``) and meant for a later admin page. Audit actions:
``user_created``, ``user_roles_changed``, ``user_areas_changed``, ``user_disabled``, ``user_enabled``,
``user_password_set``, ``user_totp_reset``. The audit target names the user, the roles and the area
scope; it never holds a password, hash or TOTP secret.

Area scope: a user's ``areas`` are area paths (``access.scope.parse_area_path``); none at all is the whole
province. A change of roles or areas, disabling a user or ending its sessions, takes effect at the user's next
request (sessions read the user every time); streams already open (the alert event stream, live view
WebSockets) pick it up within their recheck interval (``alerts.sinks.routes.SESSION_RECHECK_S``,
``live.routes.SESSION_RECHECK_S``: 60 s), and end when the session or the role is gone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from psycopg import AsyncConnection

from central_ingest.access.passwords import KdfParams, check_password_policy, hash_password
from central_ingest.access.roles import Role
from central_ingest.access.scope import parse_area_path
from central_ingest.access.sessions import revoke_user_sessions
from central_ingest.access.settings import AccessSettings
from central_ingest.access.totp import generate_secret
from central_ingest.access.users import UserRecord, insert_user, normalise_username, require_user, update_user
from central_ingest.audit import AuditEntry, append_audit


@dataclass(frozen=True, slots=True)
class Actor:
    """Who administers: a signed-in admin, or ``cli:<os user>`` for the command line."""

    name: str
    role: str
    client: str | None = None


@dataclass(frozen=True, slots=True)
class UserChange:
    user: UserRecord
    totp_secret: bytes | None = None
    """A TOTP secret made by this change (to show once), else None."""

    def __repr__(self) -> str:
        return f"UserChange(user={self.user.username!r}, new_totp={self.totp_secret is not None})"


def normalise_areas(areas: Iterable[str]) -> tuple[str, ...] | None:
    """The stored form of an area scope: normalised paths without repeats, or None (whole province) for none.

    ``AreaError`` (a ValueError) for a malformed path.
    """
    paths = tuple(dict.fromkeys(parse_area_path(area) for area in areas))
    return paths or None


def needs_totp(roles: frozenset[Role], settings: AccessSettings) -> bool:
    return not roles.isdisjoint(settings.totp_roles)


async def _hash(password: str, settings: AccessSettings) -> str:
    check_password_policy(password, settings.password_min_chars)
    return await anyio.to_thread.run_sync(hash_password, password, KdfParams(settings.password_kdf_log2_n))


async def _audit(conn: AsyncConnection[Any], actor: Actor, action: str, user: UserRecord, **extra: Any) -> None:
    target = {
        "username": user.username,
        "user_id": user.user_id,
        "roles": sorted(user.roles),
        "areas": None if user.areas is None else list(user.areas),
        **extra,
    }
    await append_audit(conn, AuditEntry(actor.name, actor.role, action, target, None, None, actor.client))


async def create_user(
    conn: AsyncConnection[Any],
    actor: Actor,
    settings: AccessSettings,
    *,
    username: str,
    password: str,
    roles: frozenset[Role],
    display_name: str = "",
    areas: Iterable[str] = (),
) -> UserChange:
    """Add a user (``areas``: its area paths; none: the whole province); a TOTP secret is made when a role needs
    one (return it to show once)."""
    normal = normalise_username(username)
    scope = normalise_areas(areas)
    password_hash = await _hash(password, settings)
    secret = generate_secret() if needs_totp(roles, settings) else None
    async with conn.transaction():
        user = await insert_user(
            conn, normal, display_name, password_hash, roles=roles, totp_secret=secret, areas=scope
        )
        await _audit(conn, actor, "user_created", user, display_name=display_name, totp=secret is not None)
    return UserChange(user, secret)


async def set_roles(
    conn: AsyncConnection[Any], actor: Actor, settings: AccessSettings, username: str, roles: frozenset[Role]
) -> UserChange:
    """Replace a user's roles; makes a TOTP secret when the new roles need one and there is none."""
    async with conn.transaction():
        before = await require_user(conn, username)
        secret = generate_secret() if needs_totp(roles, settings) and not before.has_totp else None
        columns: dict[str, Any] = {"roles": sorted(roles)}
        if secret is not None:
            columns |= {"totp_secret": secret, "totp_last_step": None}
        user = await update_user(conn, before.user_id, **columns)
        await _audit(conn, actor, "user_roles_changed", user, previous_roles=sorted(before.roles))
    return UserChange(user, secret)


async def set_areas(conn: AsyncConnection[Any], actor: Actor, username: str, areas: Iterable[str]) -> UserChange:
    """Replace a user's area scope (none: the whole province)."""
    scope = normalise_areas(areas)
    async with conn.transaction():
        before = await require_user(conn, username)
        user = await update_user(conn, before.user_id, areas=None if scope is None else list(scope))
        previous = None if before.areas is None else list(before.areas)
        await _audit(conn, actor, "user_areas_changed", user, previous_areas=previous)
    return UserChange(user)


async def set_disabled(
    conn: AsyncConnection[Any], actor: Actor, username: str, disabled: bool, now: dt.datetime
) -> UserChange:
    """Disable (ending every session) or enable a user."""
    async with conn.transaction():
        user = await update_user(conn, (await require_user(conn, username)).user_id, disabled=disabled)
        ended = await revoke_user_sessions(conn, user.user_id, now) if disabled else 0
        await _audit(conn, actor, "user_disabled" if disabled else "user_enabled", user, sessions_ended=ended)
    return UserChange(user)


async def set_password(
    conn: AsyncConnection[Any],
    actor: Actor,
    settings: AccessSettings,
    *,
    username: str,
    password: str,
    now: dt.datetime,
) -> UserChange:
    """Give a user a new password, ending their sessions."""
    password_hash = await _hash(password, settings)
    async with conn.transaction():
        user = await update_user(conn, (await require_user(conn, username)).user_id, password_hash=password_hash)
        ended = await revoke_user_sessions(conn, user.user_id, now)
        await _audit(conn, actor, "user_password_set", user, sessions_ended=ended)
    return UserChange(user)


async def reset_totp(
    conn: AsyncConnection[Any], actor: Actor, settings: AccessSettings, username: str, now: dt.datetime
) -> UserChange:
    """A new TOTP secret (lost phone), or none when no role needs one; ends the user's sessions."""
    async with conn.transaction():
        before = await require_user(conn, username)
        secret = generate_secret() if needs_totp(before.roles, settings) else None
        user = await update_user(conn, before.user_id, totp_secret=secret, totp_last_step=None)
        ended = await revoke_user_sessions(conn, user.user_id, now)
        await _audit(conn, actor, "user_totp_reset", user, totp=secret is not None, sessions_ended=ended)
    return UserChange(user, secret)
