"""Reads of what ingest keeps beside the events: per-agent totals and the dead letters (without payloads).

Area scope: both take ``agents``, the agents the caller may see (None: all). An agent is visible when one
of its registered sites is (``visible_agents``); a dead letter without an agent id (a payload too broken to
name its sender) is shown only to unrestricted users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from central_ingest.access.scope import Source

AGENT_TOTALS = b"""
SELECT a.agent_id, a.revoked_at IS NOT NULL AS revoked, coalesce(s.batches, 0) AS batches,
       coalesce(s.events_stored, 0) AS events_stored, coalesce(s.events_duplicate, 0) AS events_duplicate,
       coalesce(s.events_rejected, 0) AS events_rejected, s.last_batch_at, s.last_rejected_at
FROM agents AS a FULL JOIN agent_ingest_stats AS s USING (agent_id)
WHERE %(agents)s::text[] IS NULL OR agent_id = ANY(%(agents)s::text[])
ORDER BY 1
"""

# The raw payload is left out on purpose: it may hold personal data (plates), which needs the audited
# access of the operator pages; its size says how much there is.
DEAD_LETTERS = b"""
SELECT id, received_at, channel, agent_id, position, event_id, reason, octet_length(payload) AS payload_bytes
FROM dead_letters
WHERE (%(agent_id)s::text IS NULL OR agent_id = %(agent_id)s)
  AND (%(channel)s::text IS NULL OR channel = %(channel)s)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
  AND (%(agents)s::text[] IS NULL OR agent_id = ANY(%(agents)s::text[]))
ORDER BY id DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class DeadLetterFilters:
    agent_id: str | None = None
    channel: str | None = None
    before_id: int | None = None


def visible_agents(visible: frozenset[Source] | None) -> frozenset[str] | None:
    """The agents of the visible sources (None: every agent)."""
    return None if visible is None else frozenset(agent for agent, _ in visible)


async def agent_totals(
    conn: psycopg.AsyncConnection[Any], agents: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Every agent (also one that never sent, or one whose record is gone) with its ingest totals; only
    ``agents`` when given."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(AGENT_TOTALS, {"agents": None if agents is None else sorted(agents)})
        return await cursor.fetchall()


async def dead_letters(
    conn: psycopg.AsyncConnection[Any], filters: DeadLetterFilters, limit: int, agents: frozenset[str] | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """The newest dead letters first and the ``before_id`` of the next page (None on the last page); only
    those of ``agents`` when given."""
    params = {
        "agent_id": filters.agent_id,
        "channel": filters.channel,
        "before_id": filters.before_id,
        "agents": None if agents is None else sorted(agents),
    }
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(DEAD_LETTERS, {**params, "limit": limit + 1})
        rows = await cursor.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (int(rows[-1]["id"]) if more and rows else None)
