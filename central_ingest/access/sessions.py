"""Sign-in sessions: a random token held by the client, only its SHA-256 kept here.

A session ends at the first of: its absolute expiry (``session_absolute_s`` after sign-in), the
idle expiry (no request for ``session_idle_s``), sign-out, the user being disabled or given a new
password. Every authenticated request moves ``last_seen_at``. The token has 256 bits of entropy,
so SHA-256 (not a slow KDF) is the right way to store it (as for agent tokens).

The CSRF token of a session is derived from its token (``csrf_for``): the page reads it from a
non-HttpOnly cookie and echoes it in ``X-CSRF-Token``; another site can neither read the cookie
nor compute the value, and it cannot be planted from a sibling domain because it is bound to
the session.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from central_ingest.access.principal import Principal
from central_ingest.access.roles import ROLES
from central_ingest.access.settings import AccessSettings
from central_ingest.auth_tokens import generate_token, hash_token

SESSION_ID_BYTES = 12


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """A new session as the client receives it (the token is shown once, never stored)."""

    session_id: str
    token: str
    csrf_token: str
    expires_at: dt.datetime
    """Absolute expiry; idleness may end the session earlier."""

    def __repr__(self) -> str:
        return f"SessionGrant(session_id={self.session_id!r}, expires_at={self.expires_at.isoformat()})"


def csrf_for(token: str) -> str:
    """The session's CSRF token: a one-way function of its token (reveals nothing about it)."""
    digest = hashlib.sha256(b"ioc-csrf\x00" + token.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


async def open_session(
    conn: AsyncConnection[Any], user_id: int, settings: AccessSettings, now: dt.datetime, client: str | None
) -> SessionGrant:
    """Start a session; drops the user's ended sessions and ends the oldest beyond the per-user cap."""
    await conn.execute(
        b"DELETE FROM user_sessions WHERE user_id = %s AND (revoked_at IS NOT NULL OR expires_at <= %s"
        b" OR last_seen_at <= %s)",
        (user_id, now, now - dt.timedelta(seconds=settings.session_idle_s)),
    )
    # Keep room for the new one: revoke all but the newest (cap - 1) still open.
    await conn.execute(
        b"UPDATE user_sessions SET revoked_at = %s WHERE session_id IN (SELECT session_id FROM user_sessions"
        b" WHERE user_id = %s AND revoked_at IS NULL ORDER BY created_at DESC OFFSET %s)",
        (now, user_id, settings.max_sessions_per_user - 1),
    )
    token = generate_token()
    session_id = secrets.token_hex(SESSION_ID_BYTES)
    expires_at = now + dt.timedelta(seconds=settings.session_absolute_s)
    await conn.execute(
        b"INSERT INTO user_sessions (session_id, token_sha256, user_id, created_at, last_seen_at, expires_at, client)"
        b" VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (session_id, hash_token(token), user_id, now, now, expires_at, client),
    )
    return SessionGrant(session_id, token, csrf_for(token), expires_at)


async def session_principal(
    conn: AsyncConnection[Any], token: str, settings: AccessSettings, now: dt.datetime
) -> Principal | None:
    """The principal of a live session holding ``token`` (and mark it used), or None."""
    cursor = await conn.execute(
        b"UPDATE user_sessions AS s SET last_seen_at = %(now)s FROM users AS u"
        b" WHERE s.token_sha256 = %(digest)s AND u.user_id = s.user_id AND NOT u.disabled"
        b" AND s.revoked_at IS NULL AND s.expires_at > %(now)s AND s.last_seen_at > %(idle_since)s"
        b" RETURNING s.session_id, u.user_id, u.username, u.roles, u.areas",
        {
            "now": now,
            "digest": hash_token(token),
            "idle_since": now - dt.timedelta(seconds=settings.session_idle_s),
        },
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    session_id, user_id, username, roles, areas = row
    return Principal(
        int(user_id),
        str(username),
        frozenset(r for r in ROLES if r in roles),
        str(session_id),
        None if areas is None else tuple(str(area) for area in areas),
    )


async def revoke_session(conn: AsyncConnection[Any], session_id: str, now: dt.datetime) -> bool:
    cursor = await conn.execute(
        b"UPDATE user_sessions SET revoked_at = %s WHERE session_id = %s AND revoked_at IS NULL", (now, session_id)
    )
    return cursor.rowcount == 1


async def revoke_user_sessions(conn: AsyncConnection[Any], user_id: int, now: dt.datetime) -> int:
    """End every open session of a user (disabled, new password); returns how many."""
    cursor = await conn.execute(
        b"UPDATE user_sessions SET revoked_at = %s WHERE user_id = %s AND revoked_at IS NULL", (now, user_id)
    )
    return cursor.rowcount
