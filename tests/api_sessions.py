"""Signed-in API clients for the tests: a user with roles (and an area scope) and a bearer session of it.

The query, alert and health APIs need a session (issue 9): a test that calls them creates a user here
and sends ``Authorization: Bearer <token>``. Users are made directly in the database (a cheap password
hash, no TOTP sign-in round trip) through the same ``access.admin`` calls the CLI uses; a second call
for the same name reuses the user and opens another session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from central_ingest.access.admin import Actor, create_user
from central_ingest.access.roles import Role
from central_ingest.access.sessions import open_session
from central_ingest.access.settings import AccessSettings
from central_ingest.access.users import get_user, normalise_username

API_PASSWORD = "mat-khau-that-dai-2025"
"""The password of every user made here."""
READER = "api.reader"
"""The default user: an operator of the whole province, who may read every API touched by these tests."""
SETUP_ACTOR = Actor("test-setup", "admin")
CHEAP_KDF = AccessSettings(password_kdf_log2_n=10)
"""A cheap password hash: these tests are about access, not the KDF's cost."""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_api_session(
    conn: psycopg.AsyncConnection[Any],
    username: str = READER,
    roles: Iterable[Role] = ("operator",),
    *,
    areas: Iterable[str] = (),
) -> str:
    """A new session token of ``username``, created with ``roles`` and ``areas`` (none: whole province) if new."""
    user = await get_user(conn, normalise_username(username))
    if user is None:
        change = await create_user(
            conn,
            SETUP_ACTOR,
            CHEAP_KDF,
            username=username,
            password=API_PASSWORD,
            roles=frozenset(roles),
            areas=tuple(areas),
        )
        user = change.user
    grant = await open_session(conn, user.user_id, CHEAP_KDF, dt.datetime.now(dt.UTC), "test")
    return grant.token


async def open_users(
    conn: psycopg.AsyncConnection[Any], users: Mapping[str, tuple[Role, Iterable[str] | None]]
) -> dict[str, str]:
    """``open_api_session`` for each ``username -> (role, areas)`` (areas None or empty: the whole province);
    username -> session token. Their password is ``API_PASSWORD``, so page tests sign in with it."""
    return {
        username: await open_api_session(conn, username, (role,), areas=tuple(areas or ()))
        for username, (role, areas) in users.items()
    }


def api_headers(
    dsn: str, username: str = READER, roles: Iterable[Role] = ("operator",), *, areas: Iterable[str] = ()
) -> dict[str, str]:
    """``open_api_session`` from synchronous code (no event loop running): the bearer header to send."""

    async def run() -> str:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await open_api_session(conn, username, tuple(roles), areas=tuple(areas))

    return bearer(asyncio.run(run()))
