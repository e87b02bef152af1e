"""Agent records: issue, rotate, revoke and list tokens; find the agent behind a token.

The CLI manages agents with a plain connection; the HTTP app only looks tokens up,
through its async pool.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from central_ingest.auth_tokens import generate_token, hash_token, token_matches
from event_contract.models import IDENTIFIER_PATTERN


class AgentError(RuntimeError):
    """An agent command cannot be done as asked (unknown id, already exists, ...)."""


@dataclass(frozen=True)
class AgentRecord:
    agent_id: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


def _check_agent_id(agent_id: str) -> None:
    if re.fullmatch(IDENTIFIER_PATTERN, agent_id) is None:
        raise AgentError(f"agent id {agent_id!r} must match {IDENTIFIER_PATTERN} (the event contract's identifiers)")


def add_agent(conn: psycopg.Connection[Any], agent_id: str, *, rotate: bool = False) -> str:
    """Create an agent (or, with ``rotate``, replace its token and un-revoke it); return the new token."""
    _check_agent_id(agent_id)
    token = generate_token()
    digest = hash_token(token)
    with conn.transaction():
        if rotate:
            updated = conn.execute(
                b"UPDATE agents SET token_sha256 = %s, revoked_at = NULL WHERE agent_id = %s", (digest, agent_id)
            )
            if updated.rowcount != 1:
                raise AgentError(f"agent {agent_id!r} does not exist; add it without --rotate")
        else:
            inserted = conn.execute(
                b"INSERT INTO agents (agent_id, token_sha256) VALUES (%s, %s) ON CONFLICT (agent_id) DO NOTHING",
                (agent_id, digest),
            )
            if inserted.rowcount != 1:
                raise AgentError(f"agent {agent_id!r} already exists; use --rotate to issue it a new token")
    return token


def revoke_agent(conn: psycopg.Connection[Any], agent_id: str) -> None:
    """Revoke an agent's token; its stored events stay."""
    with conn.transaction():
        updated = conn.execute(
            b"UPDATE agents SET revoked_at = coalesce(revoked_at, now()) WHERE agent_id = %s", (agent_id,)
        )
        if updated.rowcount != 1:
            raise AgentError(f"agent {agent_id!r} does not exist")


def list_agents(conn: psycopg.Connection[Any]) -> list[AgentRecord]:
    rows = conn.execute(b"SELECT agent_id, created_at, revoked_at FROM agents ORDER BY agent_id").fetchall()
    return [AgentRecord(agent_id, created_at, revoked_at) for agent_id, created_at, revoked_at in rows]


async def find_active_agent(conn: psycopg.AsyncConnection[Any], token: str) -> str | None:
    """The id of the non-revoked agent holding ``token``, or None."""
    cursor = await conn.execute(
        b"SELECT agent_id, token_sha256 FROM agents WHERE token_sha256 = %s AND revoked_at IS NULL",
        (hash_token(token),),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    agent_id, stored = row
    # The lookup already matched; the constant-time check guards against a future change of the query.
    return str(agent_id) if token_matches(token, bytes(stored)) else None
