"""The ``users`` table: people who sign in, their roles, password hash and TOTP secret.

Plain storage, no policy and no audit: ``admin`` combines these with the audit log, and the
sign-in reads ``find_credentials``. Usernames are stored lower-case. ``areas`` is the user's area
scope (``access.scope``): area paths, or NULL for the whole province.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from central_ingest.access.roles import ROLES, Role

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MAX_DISPLAY_NAME_CHARS = 200
_USER_COLUMNS = (
    b"user_id, username, display_name, roles, disabled, totp_secret IS NOT NULL, created_at, updated_at, areas"
)


class UserError(ValueError):
    """A user command that cannot be done as asked (unknown user, name taken, bad name)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: int
    username: str
    display_name: str
    roles: frozenset[Role]
    disabled: bool
    has_totp: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    areas: tuple[str, ...] | None = None
    """Area paths the user may see; None: the whole province."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a sign-in checks; never leaves the sign-in code (no repr of the secret)."""

    user: UserRecord
    password_hash: str
    totp_secret: bytes | None
    totp_last_step: int | None

    def __repr__(self) -> str:
        return f"Credentials(user={self.user.username!r}, <secrets hidden>)"


def normalise_username(name: str) -> str:
    """The stored form of a username; ``UserError`` when it is not a valid one."""
    normal = name.strip().lower()
    if USERNAME_PATTERN.fullmatch(normal) is None:
        raise UserError(f"username {name[:64]!r} must match {USERNAME_PATTERN.pattern} (lower-case)")
    return normal


def _roles(values: list[str]) -> frozenset[Role]:
    return frozenset(role for role in ROLES if role in values)


def _user(row: tuple[Any, ...]) -> UserRecord:
    user_id, username, display_name, roles, disabled, has_totp, created_at, updated_at, areas = row
    return UserRecord(
        int(user_id),
        str(username),
        str(display_name),
        _roles(roles),
        bool(disabled),
        bool(has_totp),
        created_at,
        updated_at,
        None if areas is None else tuple(str(area) for area in areas),
    )


async def insert_user(
    conn: AsyncConnection[Any],
    username: str,
    display_name: str,
    password_hash: str,
    *,
    roles: frozenset[Role],
    totp_secret: bytes | None,
    areas: tuple[str, ...] | None = None,
) -> UserRecord:
    if len(display_name) > MAX_DISPLAY_NAME_CHARS:
        raise UserError(f"display name must have at most {MAX_DISPLAY_NAME_CHARS} characters")
    cursor = await conn.execute(
        b"INSERT INTO users (username, display_name, password_hash, roles, totp_secret, areas)"
        b" VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING " + _USER_COLUMNS,
        (
            normalise_username(username),
            display_name,
            password_hash,
            sorted(roles),
            totp_secret,
            None if areas is None else list(areas),
        ),
    )
    row = await cursor.fetchone()
    if row is None:
        raise UserError(f"user {username!r} already exists")
    return _user(row)


async def get_user(conn: AsyncConnection[Any], username: str) -> UserRecord | None:
    cursor = await conn.execute(b"SELECT " + _USER_COLUMNS + b" FROM users WHERE username = %s", (username,))
    row = await cursor.fetchone()
    return None if row is None else _user(row)


async def require_user(conn: AsyncConnection[Any], username: str) -> UserRecord:
    user = await get_user(conn, normalise_username(username))
    if user is None:
        raise UserError(f"user {username!r} does not exist")
    return user


async def list_users(conn: AsyncConnection[Any]) -> list[UserRecord]:
    cursor = await conn.execute(b"SELECT " + _USER_COLUMNS + b" FROM users ORDER BY username")
    return [_user(row) for row in await cursor.fetchall()]


async def find_credentials(conn: AsyncConnection[Any], username: str) -> Credentials | None:
    """The sign-in data of ``username`` (any case), or None when there is no such (valid) user."""
    try:
        normal = normalise_username(username)
    except UserError:
        return None
    cursor = await conn.execute(
        b"SELECT " + _USER_COLUMNS + b", password_hash, totp_secret, totp_last_step FROM users WHERE username = %s",
        (normal,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    password_hash, secret, last_step = row[-3:]
    return Credentials(_user(row[:-3]), str(password_hash), None if secret is None else bytes(secret), last_step)


async def update_user(conn: AsyncConnection[Any], user_id: int, **columns: Any) -> UserRecord:
    """Set the given columns (``disabled``, ``roles``, ``password_hash``, ``totp_secret``, ``areas`` as a list or
    None, ...) and ``updated_at``."""
    allowed = {"disabled", "roles", "password_hash", "totp_secret", "totp_last_step", "display_name", "areas"}
    if not columns or not set(columns) <= allowed:
        raise ValueError(f"update_user sets some of {sorted(allowed)}, got {sorted(columns)}")
    assignments = b", ".join(name.encode() + b" = %s" for name in columns)
    cursor = await conn.execute(
        b"UPDATE users SET " + assignments + b", updated_at = now() WHERE user_id = %s RETURNING " + _USER_COLUMNS,
        (*columns.values(), user_id),
    )
    row = await cursor.fetchone()
    if row is None:
        raise UserError(f"user id {user_id} does not exist")
    return _user(row)


async def consume_totp_step(conn: AsyncConnection[Any], user_id: int, step: int) -> bool:
    """Record ``step`` as used; False when it (or a later one) was used already (a replay, or a race)."""
    cursor = await conn.execute(
        b"UPDATE users SET totp_last_step = %s WHERE user_id = %s AND (totp_last_step IS NULL OR totp_last_step < %s)",
        (step, user_id, step),
    )
    return cursor.rowcount == 1
