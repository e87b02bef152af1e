"""Approving a plan: store it as the project's next version and write the ``plan_approve`` audit entry.

The version and its audit entry commit together (the entry is appended last, inside the same
transaction), so a plan is never approved without a record of who approved it, and from which file.
The HTTP routes and the CLI both come through here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from central_ingest.alerts.plans import PlanSource, save_plan
from central_ingest.audit import AuditEntry, append_audit
from central_ingest.projects.plan_model import PlanIn, StoredPlan

PLAN_APPROVE = "plan_approve"


@dataclass(frozen=True, slots=True)
class Approver:
    """Who stores the version (audit actor and role) and whose approval it records (``approved_by``)."""

    actor: str
    role: str
    client: str | None
    approved_by: str
    """The name kept on the version: the signed-in user, or the PMU officer the CLI operator names."""


async def approve_plan(
    conn: psycopg.AsyncConnection[Any],
    project_id: str,
    plan: PlanIn,
    now: dt.datetime,
    approver: Approver,
    *,
    source: PlanSource | None = None,
) -> StoredPlan:
    """Store ``plan`` as the next version of ``project_id`` and audit it, in one transaction."""
    async with conn.transaction():
        stored = await save_plan(conn, project_id, plan, now, approved_by=approver.approved_by, source=source)
        target: dict[str, Any] = {
            "project_id": project_id,
            "plan_version": stored.plan_version,
            "note": plan.note,
            "approved_by": approver.approved_by,
            "packages": len(plan.packages),
            "points": len(plan.points),
            "source": None if source is None else {"name": source.name, "sha256": source.sha256},
        }
        entry = AuditEntry(approver.actor, approver.role, PLAN_APPROVE, target, None, None, approver.client)
        await append_audit(conn, entry)
    return stored
