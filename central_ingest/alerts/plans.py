"""Approved construction plans: versioned planned-% curves per project and work package.

Saving a plan never edits an older one: it becomes version N+1 (the versions of one project are
numbered under a transaction-level advisory lock on the project, so two approvals at once get
two versions), and the latest version is the one the progress_behind rule compares with. The
construction issue builds plan editing on top; this module stores and reads them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from central_ingest.alerts.evaluate import PlanPoint, frac
from event_contract.models import IDENTIFIER_PATTERN

Conn = psycopg.AsyncConnection[Any]
MAX_PLAN_POINTS = 10_000


class PlanPointIn(BaseModel):
    """The planned % complete of a work package (or of the project, package_id '') on a date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package_id: Annotated[str, Field(pattern=f"({IDENTIFIER_PATTERN})|^$")] = Field(
        default="", description="Work package id; '' (the default) is the project as a whole."
    )
    date: dt.date = Field(description="The date (local) the planned figure applies to.")
    planned_pct: float = Field(ge=0, le=100, allow_inf_nan=False, description="Planned % complete on that date.")


class PlanIn(BaseModel):
    """An approved plan, as PUT to ``/api/v1/projects/{project_id}/plan``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: tuple[PlanPointIn, ...] = Field(min_length=1, max_length=MAX_PLAN_POINTS, description="Plan points.")
    note: str = Field(default="", max_length=2000, description="e.g. the approval decision's number.")
    approved_at: dt.datetime | None = Field(default=None, description="When it was approved; default: now.")

    @model_validator(mode="after")
    def _one_figure_per_day(self) -> PlanIn:
        keys = [(p.package_id, p.date) for p in self.points]
        if len(set(keys)) != len(keys):
            raise ValueError("each (package_id, date) may appear once")
        return self


@dataclass(frozen=True)
class StoredPlan:
    project_id: str
    plan_version: int
    approved_at: dt.datetime
    note: str
    points: tuple[PlanPointIn, ...]

    def curve(self, package_id: str = "") -> list[PlanPoint]:
        """The package's points (project as a whole for ''), as exact values for ``evaluate.planned_at``."""
        return [PlanPoint(p.date, frac(p.planned_pct)) for p in self.points if p.package_id == package_id]

    def as_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "plan_version": self.plan_version,
            "approved_at": self.approved_at.isoformat(),
            "note": self.note,
            "points": [p.model_dump(mode="json") for p in self.points],
        }


async def save_plan(conn: Conn, project_id: str, plan: PlanIn, now: dt.datetime) -> StoredPlan:
    """Store ``plan`` as the project's next version (in one transaction) and return it."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (f"plan:{project_id}",))
        cur = await conn.execute(
            "SELECT coalesce(max(plan_version), 0) + 1 FROM project_plans WHERE project_id = %s", (project_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        version = int(row[0])
        approved_at = plan.approved_at or now
        await conn.execute(
            "INSERT INTO project_plans (project_id, plan_version, approved_at, note) VALUES (%s, %s, %s, %s)",
            (project_id, version, approved_at, plan.note),
        )
        async with conn.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO project_plan_points (project_id, plan_version, package_id, date, planned_pct) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(project_id, version, p.package_id, p.date, p.planned_pct) for p in plan.points],
            )
    return StoredPlan(project_id, version, approved_at, plan.note, _sorted(plan.points))


def _sorted(points: Sequence[PlanPointIn]) -> tuple[PlanPointIn, ...]:
    return tuple(sorted(points, key=lambda p: (p.package_id, p.date)))


async def load_plan(conn: Conn, project_id: str, version: int | None = None) -> StoredPlan | None:
    """The latest version (or ``version``), or None when the project has no such plan."""
    cur = await conn.execute(
        "SELECT plan_version, approved_at, note FROM project_plans WHERE project_id = %s "
        "AND (%s::integer IS NULL OR plan_version = %s) ORDER BY plan_version DESC LIMIT 1",
        (project_id, version, version),
    )
    header = await cur.fetchone()
    if header is None:
        return None
    plan_version, approved_at, note = header
    cur = await conn.execute(
        "SELECT package_id, date, planned_pct FROM project_plan_points WHERE project_id = %s AND plan_version = %s "
        "ORDER BY package_id, date",
        (project_id, plan_version),
    )
    points = tuple(
        PlanPointIn(package_id=package, date=date, planned_pct=pct) for package, date, pct in await cur.fetchall()
    )
    return StoredPlan(project_id, plan_version, approved_at, note, points)


async def planned_projects(conn: Conn) -> list[str]:
    cur = await conn.execute("SELECT DISTINCT project_id FROM project_plans ORDER BY 1")
    return [project_id for (project_id,) in await cur.fetchall()]
