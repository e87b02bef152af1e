"""Approved construction plans: storing and reading the versions of a project's plan.

Saving a plan never edits an older one: it becomes version N+1 (the versions of one project are
numbered under a transaction-level advisory lock on the project, so two approvals at once get
two versions), and the latest version is the one the progress_behind rule compares with. A version
keeps its work packages (``project_plan_packages``, in plan order), its points, who approved it and
the file it came from; the project's names live in ``projects`` (kept when a later approval gives none).
The models are in ``central_ingest.projects.plan_model`` and are re-exported here for older callers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from central_ingest.projects.plan_model import MAX_PLAN_POINTS, PackageIn, PlanIn, PlanPointIn, StoredPlan

__all__ = [
    "MAX_PLAN_POINTS",
    "PackageIn",
    "PlanIn",
    "PlanPointIn",
    "PlanSource",
    "PlanVersion",
    "StoredPlan",
    "list_versions",
    "load_plan",
    "planned_projects",
    "save_plan",
]

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class PlanSource:
    """The file a version was imported from: its name (for people) and SHA-256 (to prove which file)."""

    name: str
    sha256: str


@dataclass(frozen=True, slots=True)
class PlanVersion:
    """One line of a project's plan history."""

    plan_version: int
    approved_at: dt.datetime
    approved_by: str
    note: str
    packages: int
    points: int
    source_name: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "plan_version": self.plan_version,
            "approved_at": self.approved_at.isoformat(),
            "approved_by": self.approved_by,
            "note": self.note,
            "packages": self.packages,
            "points": self.points,
            "source_name": self.source_name,
        }


async def save_plan(
    conn: Conn,
    project_id: str,
    plan: PlanIn,
    now: dt.datetime,
    *,
    approved_by: str = "",
    source: PlanSource | None = None,
) -> StoredPlan:
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
            "INSERT INTO projects (project_id, name_vi, name_en, updated_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (project_id) DO UPDATE SET "
            "name_vi = CASE WHEN EXCLUDED.name_vi <> '' THEN EXCLUDED.name_vi ELSE projects.name_vi END, "
            "name_en = CASE WHEN EXCLUDED.name_en <> '' THEN EXCLUDED.name_en ELSE projects.name_en END, "
            "updated_at = EXCLUDED.updated_at",
            (project_id, plan.project_name_vi, plan.project_name_en, now),
        )
        await conn.execute(
            "INSERT INTO project_plans (project_id, plan_version, approved_at, note, approved_by, source_name, "
            "source_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                project_id,
                version,
                approved_at,
                plan.note,
                approved_by,
                None if source is None else source.name,
                None if source is None else source.sha256,
            ),
        )
        async with conn.cursor() as cursor:
            if plan.packages:
                await cursor.executemany(
                    "INSERT INTO project_plan_packages (project_id, plan_version, package_id, position, name, "
                    "weight, planned_start, planned_finish, critical) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (project_id, version, p.id, index, p.name, p.weight, p.planned_start, p.planned_finish,
                         p.critical)
                        for index, p in enumerate(plan.packages)
                    ],
                )  # fmt: skip
            if plan.points:
                await cursor.executemany(
                    "INSERT INTO project_plan_points (project_id, plan_version, package_id, date, planned_pct) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    [(project_id, version, p.package_id, p.date, p.planned_pct) for p in plan.points],
                )
        names = await conn.execute("SELECT name_vi, name_en FROM projects WHERE project_id = %s", (project_id,))
        name_row = await names.fetchone()
    name_vi, name_en = name_row if name_row is not None else ("", "")
    return StoredPlan(
        project_id,
        version,
        approved_at,
        plan.note,
        tuple(sorted(plan.points, key=lambda p: (p.package_id, p.date))),
        packages=tuple(plan.packages),
        approved_by=approved_by,
        project_name_vi=name_vi,
        project_name_en=name_en,
        source_name=None if source is None else source.name,
        source_sha256=None if source is None else source.sha256,
    )


async def load_plan(conn: Conn, project_id: str, version: int | None = None) -> StoredPlan | None:
    """The latest version (or ``version``), or None when the project has no such plan."""
    cur = await conn.execute(
        "SELECT p.plan_version, p.approved_at, p.note, p.approved_by, p.source_name, p.source_sha256, "
        "coalesce(j.name_vi, ''), coalesce(j.name_en, '') "
        "FROM project_plans p LEFT JOIN projects j ON j.project_id = p.project_id WHERE p.project_id = %s "
        "AND (%s::integer IS NULL OR p.plan_version = %s) ORDER BY p.plan_version DESC LIMIT 1",
        (project_id, version, version),
    )
    header = await cur.fetchone()
    if header is None:
        return None
    plan_version, approved_at, note, approved_by, source_name, source_sha256, name_vi, name_en = header
    cur = await conn.execute(
        "SELECT package_id, date, planned_pct FROM project_plan_points WHERE project_id = %s AND plan_version = %s "
        "ORDER BY package_id, date",
        (project_id, plan_version),
    )
    points = tuple(
        PlanPointIn(package_id=package, date=date, planned_pct=pct) for package, date, pct in await cur.fetchall()
    )
    cur = await conn.execute(
        "SELECT package_id, name, weight, planned_start, planned_finish, critical FROM project_plan_packages "
        "WHERE project_id = %s AND plan_version = %s ORDER BY position",
        (project_id, plan_version),
    )
    packages = tuple(
        PackageIn(id=package, name=name, weight=weight, planned_start=start, planned_finish=finish, critical=critical)
        for package, name, weight, start, finish, critical in await cur.fetchall()
    )
    return StoredPlan(
        project_id,
        plan_version,
        approved_at,
        note,
        points,
        packages=packages,
        approved_by=approved_by,
        project_name_vi=name_vi,
        project_name_en=name_en,
        source_name=source_name,
        source_sha256=source_sha256,
    )


async def list_versions(conn: Conn, project_id: str) -> list[PlanVersion]:
    """Every approved version of the project, newest first, with its package and point counts."""
    cur = await conn.execute(
        "SELECT p.plan_version, p.approved_at, p.approved_by, p.note, "
        "(SELECT count(*) FROM project_plan_packages k WHERE k.project_id = p.project_id "
        " AND k.plan_version = p.plan_version), "
        "(SELECT count(*) FROM project_plan_points t WHERE t.project_id = p.project_id "
        " AND t.plan_version = p.plan_version), p.source_name "
        "FROM project_plans p WHERE p.project_id = %s ORDER BY p.plan_version DESC",
        (project_id,),
    )
    return [
        PlanVersion(version, approved_at, approved_by, note, int(packages), int(points), source_name)
        for version, approved_at, approved_by, note, packages, points, source_name in await cur.fetchall()
    ]


async def planned_projects(conn: Conn) -> list[str]:
    cur = await conn.execute("SELECT DISTINCT project_id FROM project_plans ORDER BY 1")
    return [project_id for (project_id,) in await cur.fetchall()]
