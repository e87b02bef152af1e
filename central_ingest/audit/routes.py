"""The auditor's API: ``GET /api/v1/audit`` (filtered, paged) and ``GET /api/v1/audit/verify``.

Only the ``auditor`` role may read the log, and every read is itself an audit entry
(``audit_read``, ``audit_verify``) written in the same transaction as the read, so an auditor's
look at the log shows up in the log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from central_ingest.access.dependencies import client_address, require_role
from central_ingest.access.principal import Principal
from central_ingest.audit.entry import ACTION_PATTERN, AuditEntry
from central_ingest.audit.log import AuditFilter, append_audit, list_audit
from central_ingest.audit.verify import verify_chain
from central_ingest.state import AppState, get_app_state

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

MAX_PAGE = 1000


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next_after_seq: int | None
    """Pass as ``after_seq`` for the next page; null on the last page."""


def _entry(
    principal: Principal, request: Request, action: str, target: dict[str, Any], count: int | None
) -> AuditEntry:
    return AuditEntry(principal.username, "auditor", action, target, None, count, client_address(request))


@router.get("", response_model=AuditPage, summary="Audit entries, oldest first (auditor)")
async def read_audit(
    *,
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    state: Annotated[AppState, Depends(get_app_state)],
    since: Annotated[
        dt.datetime | None, Query(description="Entries at or after this time (ISO 8601 with zone).")
    ] = None,
    until: Annotated[dt.datetime | None, Query(description="Entries before this time (exclusive).")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(pattern=ACTION_PATTERN.pattern)] = None,
    after_seq: Annotated[int | None, Query(ge=0, description="Entries after this seq (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    where = AuditFilter(since, until, actor, action, after_seq)
    async with state.pool.connection() as conn:
        records = await list_audit(conn, where, limit)
        target = {**where.as_json(), "limit": limit}
        await append_audit(conn, _entry(principal, request, "audit_read", target, len(records)))
    next_after = records[-1].seq if len(records) == limit else None
    return AuditPage(items=[record.as_json() for record in records], next_after_seq=next_after)


@router.get("/verify", summary="Recompute the hash chain and report the first broken link (auditor)")
async def verify(
    request: Request,
    principal: Annotated[Principal, Depends(require_role("auditor"))],
    state: Annotated[AppState, Depends(get_app_state)],
    since_seq: Annotated[int | None, Query(ge=1, description="Start here, trusting the entry before.")] = None,
) -> dict[str, Any]:
    async with state.pool.connection() as conn:
        report = await verify_chain(conn, since_seq)
        # Committed apart from the walk: the entry must not hold the chain lock during a long walk.
        await conn.commit()
        target = {"since_seq": since_seq, "ok": report.ok, "broken_seq": report.broken_seq}
        await append_audit(conn, _entry(principal, request, "audit_verify", target, report.checked))
    return report.as_json()
