"""Evidence on demand: an officer asks for a keyframe its agent kept at the edge; the agent's next ack carries it.

Edge boxes sit behind NAT or 4G, so central cannot call them. A request is therefore kept in
``evidence_requests`` (one row per image digest: repeated requests are deduplicated) and handed to the
agent in the ``evidence_wanted`` field of the ``BatchAck`` that answers its next batch, when the agent
announced the feature (``X-IOC-Ack-Features: evidence_wanted``). The agent marks the keyframe for upload
and its uploader PUTs it with its usual backoff; the upload route then marks the request fulfilled.

Bounds, all stated in ``EvidenceRequestSettings``: a request expires after ``expire_hours`` (by then the
officer's search no longer opens images anyway); an agent has at most ``max_open_per_agent`` open
requests (a new one beyond that is refused, never silently pushed out: policy ``refuse_new``); a
request rides on at most one ack per ``resend_after_s`` (an ack lost on the way is made good by a later
one; the agent's marking is idempotent); closed rows go ``keep_closed_days`` after they closed.

Who asked for what and why is written to the audit log by the route (``evidence_request``), not here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from event_contract.batch import MAX_EVIDENCE_WANTED

EVIDENCE_WANTED_FEATURE = "evidence_wanted"
"""The token an agent puts in ``X-IOC-Ack-Features`` to receive ``BatchAck.evidence_wanted``."""
ACK_FEATURES_HEADER = "X-IOC-Ack-Features"

RequestState = Literal["requested", "already_requested", "uploaded"]


class EvidenceRequestSettings(BaseModel):
    """How officers' requests for edge-held evidence are kept and sent (``police.evidence_requests``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expire_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="A request not fulfilled this long after it was made is dropped (the agent may have deleted "
        "the keyframe, or be offline); request again from a new search.",
    )
    max_open_per_agent: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Most open requests per agent; a request beyond it is refused with 429 (policy refuse_new).",
    )
    resend_after_s: float = Field(
        default=120.0,
        ge=1,
        le=86_400,
        description="An open request rides on at most one ack per this many seconds (a lost ack is made good "
        "by a later one).",
    )
    keep_closed_days: float = Field(
        default=7.0,
        ge=0,
        le=400,
        description="Fulfilled or expired requests are deleted this long after they closed.",
    )


class TooManyRequestsError(Exception):
    """The agent already has ``max_open_per_agent`` open requests; the new one is not kept."""


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    state: RequestState
    """requested: kept, the agent's next ack carries it; already_requested: an open request existed (its
    expiry moved on); uploaded: central already holds the image, nothing to ask."""
    sha256: str
    agent_id: str
    expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class EvidenceRequestStats:
    """What the table holds now (closed rows are kept ``keep_closed_days``)."""

    open: int
    """Not fulfilled, not expired."""
    waiting: int
    """Open and not yet carried by any ack (the agent has sent no batch since)."""
    fulfilled: int
    expired: int
    """Expired unfulfilled: the agent did not upload in time (offline, keyframe gone, upload refused)."""
    sends: int
    """Acks that carried a request, summed over the rows kept."""


_BLOB_STORED = b"SELECT EXISTS (SELECT 1 FROM evidence_blobs WHERE sha256 = %s)"
_PRUNE_AGENT = b"""
DELETE FROM evidence_requests
WHERE agent_id = %(agent)s AND (fulfilled_at < %(before)s OR (fulfilled_at IS NULL AND expires_at < %(before)s))
"""
_LOCK_AGENT = b"SELECT pg_advisory_xact_lock(hashtext('ioc.evidence_requests'), hashtext(%s))"
_EXISTING = b"SELECT fulfilled_at IS NULL AND expires_at > %(now)s FROM evidence_requests WHERE sha256 = %(sha)s"
_OPEN_OF_AGENT = b"""
SELECT count(*) FROM evidence_requests WHERE agent_id = %(agent)s AND fulfilled_at IS NULL AND expires_at > %(now)s
"""
_RENEW = b"""
UPDATE evidence_requests SET requested_at = %(now)s, requests = requests + 1,
       expires_at = greatest(expires_at, %(expires)s)
WHERE sha256 = %(sha)s RETURNING expires_at
"""
_OPEN = b"""
INSERT INTO evidence_requests (sha256, agent_id, requested_at, expires_at)
VALUES (%(sha)s, %(agent)s, %(now)s, %(expires)s)
ON CONFLICT (sha256) DO UPDATE SET agent_id = excluded.agent_id, requested_at = excluded.requested_at,
    requests = evidence_requests.requests + 1, expires_at = excluded.expires_at, last_sent_at = NULL, sends = 0,
    fulfilled_at = NULL
RETURNING expires_at
"""
_TAKE = b"""
UPDATE evidence_requests SET last_sent_at = %(now)s, sends = sends + 1
WHERE sha256 IN (
    SELECT sha256 FROM evidence_requests
    WHERE agent_id = %(agent)s AND fulfilled_at IS NULL AND expires_at > %(now)s
      AND (last_sent_at IS NULL OR last_sent_at <= %(resend_before)s)
    ORDER BY requested_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING sha256, requested_at
"""
_FULFIL = b"UPDATE evidence_requests SET fulfilled_at = %s WHERE sha256 = %s AND fulfilled_at IS NULL"
_STATS = b"""
SELECT count(*) FILTER (WHERE fulfilled_at IS NULL AND expires_at > %(now)s),
       count(*) FILTER (WHERE fulfilled_at IS NULL AND expires_at > %(now)s AND last_sent_at IS NULL),
       count(*) FILTER (WHERE fulfilled_at IS NOT NULL),
       count(*) FILTER (WHERE fulfilled_at IS NULL AND expires_at <= %(now)s),
       coalesce(sum(sends), 0)
FROM evidence_requests
"""


async def request_evidence(
    conn: AsyncConnection[Any],
    *,
    sha256: str,
    agent_id: str,
    now: dt.datetime,
    settings: EvidenceRequestSettings,
) -> RequestOutcome:
    """Keep (or renew) a request for ``sha256`` from ``agent_id``; run it inside the caller's transaction.

    ``TooManyRequestsError`` when the agent's open requests are at ``max_open_per_agent``. Requests of one
    agent are serialised by a transaction-scoped advisory lock, so the bound holds under concurrency.
    """
    cursor = await conn.execute(_BLOB_STORED, (sha256,))
    row = await cursor.fetchone()
    if row is not None and row[0]:
        await conn.execute(_FULFIL, (now, sha256))
        return RequestOutcome("uploaded", sha256, agent_id, None)
    await conn.execute(_LOCK_AGENT, (agent_id,))
    before = now - dt.timedelta(days=settings.keep_closed_days)
    await conn.execute(_PRUNE_AGENT, {"agent": agent_id, "before": before})
    expires = now + dt.timedelta(hours=settings.expire_hours)
    params = {"sha": sha256, "agent": agent_id, "now": now, "expires": expires}
    cursor = await conn.execute(_EXISTING, params)
    existing = await cursor.fetchone()
    if existing is not None and existing[0]:
        cursor = await conn.execute(_RENEW, params)
        renewed = await cursor.fetchone()
        return RequestOutcome("already_requested", sha256, agent_id, None if renewed is None else renewed[0])
    cursor = await conn.execute(_OPEN_OF_AGENT, params)
    counted = await cursor.fetchone()
    if counted is not None and int(counted[0]) >= settings.max_open_per_agent:
        raise TooManyRequestsError(
            f"agent {agent_id} already has {counted[0]} open evidence requests (at most "
            f"{settings.max_open_per_agent}); wait for it to upload them or for older ones to expire"
        )
    cursor = await conn.execute(_OPEN, params)
    opened = await cursor.fetchone()
    return RequestOutcome("requested", sha256, agent_id, None if opened is None else opened[0])


async def take_wanted(
    conn: AsyncConnection[Any],
    agent_id: str,
    *,
    now: dt.datetime,
    settings: EvidenceRequestSettings,
    limit: int = MAX_EVIDENCE_WANTED,
) -> tuple[str, ...]:
    """The open requests of ``agent_id`` due to ride on its ack now (oldest first), marked as sent."""
    params = {
        "agent": agent_id,
        "now": now,
        "resend_before": now - dt.timedelta(seconds=settings.resend_after_s),
        "limit": max(0, min(limit, MAX_EVIDENCE_WANTED)),
    }
    cursor = await conn.execute(_TAKE, params)
    rows = await cursor.fetchall()
    return tuple(str(sha) for sha, _ in sorted(rows, key=lambda row: row[1]))


async def fulfil_request(conn: AsyncConnection[Any], sha256: str, now: dt.datetime) -> bool:
    """The image arrived: close its open request; False when none was open."""
    cursor = await conn.execute(_FULFIL, (now, sha256))
    return cursor.rowcount == 1


async def request_stats(conn: AsyncConnection[Any], now: dt.datetime) -> EvidenceRequestStats:
    cursor = await conn.execute(_STATS, {"now": now})
    row = await cursor.fetchone()
    values = tuple(int(value) for value in row) if row is not None else (0, 0, 0, 0, 0)
    return EvidenceRequestStats(*values)
