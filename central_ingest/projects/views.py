"""What the projects page reads: the project list with today's gap, the plan S-curve against the actual
series per package, the daily timelapse keyframes per camera, the project's cameras. Database reads and
the assembly of their JSON; the HTTP layer is ``progress_routes``, the arithmetic ``actual``.

The actual figures are exactly the alert's (``actual.actual_on`` and the same row selection), so the
page never shows a project on track while the engine says it is behind, or the reverse.

Area scope: a project is visible when one of its cameras is (``alerts.scope.visible_projects``), or the
scope is unrestricted; another project answers 404 exactly like an unknown one. A project may have cameras
in several communes, so within a visible project the per-camera answers hold only the visible cameras' rows:
the camera list, the timelapse, the activity hours (``visible_rows``) and the keyframes served
(``keyframe_referenced``); the figures entered at central (agent ``central``, a PMU's confirmations) belong
to the project and stay. The plan S-curve and the project's actual % are the project's figures (those the
alert uses) and are shown whole.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import HTTPException
from psycopg import sql

from central_ingest.access.scope import AreaScope, Source, source_condition, visible_sources
from central_ingest.alerts import inputs
from central_ingest.alerts.evaluate import ProgressRow, planned_at
from central_ingest.alerts.plans import StoredPlan, load_plan
from central_ingest.alerts.scope import PMU_AGENT, visible_projects
from central_ingest.live.upstream import upstream_url
from central_ingest.projects.actual import (
    ActualPoint,
    PlanShape,
    actual_on,
    choose_project,
    package_actuals,
    plan_shape,
    project_actual,
)
from central_ingest.sites.store import project_sites, sites_by_key

Conn = psycopg.AsyncConnection[Any]
UNKNOWN_PROJECT = "Không có dự án này. / No such project (no plan, progress or site activity)."


async def require_visible_project(conn: Conn, scope: AreaScope, project_id: str) -> frozenset[Source] | None:
    """The cameras ``scope`` may see (None: all), once it may see the project (always, when unrestricted);
    HTTP 404 (the unknown project's answer) otherwise. Routes use the set for their per-camera rows."""
    visible = await visible_sources(conn, scope)
    projects = await visible_projects(conn, visible)
    if projects is not None and project_id not in projects:
        raise HTTPException(404, UNKNOWN_PROJECT)
    return visible


def visible_rows(rows: Iterable[dict[str, Any]], visible: frozenset[Source] | None) -> list[dict[str, Any]]:
    """The rows (with ``agent_id`` and ``source_id``) of the cameras of ``visible`` or entered at central (all
    when None): a shared project's per-camera answers keep to the caller's area."""
    return [
        row
        for row in rows
        if visible is None or row["agent_id"] == PMU_AGENT or (row["agent_id"], row["source_id"]) in visible
    ]


def day_bounds(first: dt.date, last: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """``[start of first, end of last)`` local days of ``timezone``, as aware datetimes."""
    zone = ZoneInfo(timezone)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), zone)
    return dt.datetime.combine(first, dt.time(0), zone), end


def keyframe_url(project_id: str, sha256: str) -> str:
    return f"/api/v1/projects/{project_id}/keyframes/{sha256}"


def _pct(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _days(first: dt.date, last: dt.date) -> Iterable[dt.date]:
    for offset in range((last - first).days + 1):
        yield first + dt.timedelta(days=offset)


async def uploaded_digests(conn: Conn, digests: Iterable[str]) -> set[str]:
    """The digests among ``digests`` whose image central holds."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    cur = await conn.execute("SELECT sha256 FROM evidence_blobs WHERE sha256 = ANY(%s)", (wanted,))
    return {sha for (sha,) in await cur.fetchall()}


def _point_json(project_id: str, point: ActualPoint, uploaded: set[str], *, project: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "date": point.day.isoformat(),
        "time": point.time.isoformat(),
        "percent": _pct(point.percent),
        "confidence": round(float(point.confidence), 3),
        "confirmed": point.confirmed,
        "calibrated": point.calibrated,
        "basis": point.basis,
        "estimate": _pct(point.estimate),
        "method": point.method,
        "note": point.note,
        "evidence": [
            {"sha256": sha, "url": keyframe_url(project_id, sha), "uploaded": sha in uploaded}
            for sha in point.keyframes
        ],
    }
    if project:
        body |= {"coverage": round(float(point.coverage), 3), "packages": list(point.parts)}
    return body


def _planned_series(plan: StoredPlan | None, package_id: str, first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    curve = plan.curve(package_id) if plan is not None else []
    if not curve:
        return []
    return [{"date": day.isoformat(), "planned_pct": _pct(planned_at(curve, day))} for day in _days(first, last)]


def project_series(
    rows: Mapping[str, Sequence[ProgressRow]], shape: PlanShape, first: dt.date, last: dt.date
) -> dict[str, list[ActualPoint]]:
    """Actual points per package and for the project ('') on the days in ``[first, last]`` that have any."""
    calibrate = shape.has_packages
    series = {package: package_actuals(found, calibrate=calibrate) for package, found in rows.items() if package}
    project_points = package_actuals(rows.get("", ()), calibrate=calibrate)
    result = {package: [p for p in points if first <= p.day <= last] for package, points in series.items()}
    if not shape.has_packages:
        result[""] = [p for p in project_points if first <= p.day <= last]
        return result
    days = sorted({p.day for points in [*result.values(), project_points] for p in points if first <= p.day <= last})
    planned_series = {package: series.get(package, []) for package in shape.weights}
    project: list[ActualPoint] = []
    for day in days:
        chosen = choose_project(project_points, project_actual(planned_series, shape.weights, day), day)
        if chosen is not None and (not project or project[-1] != chosen):
            project.append(chosen)
    result[""] = project
    return result


async def _project_ids(conn: Conn) -> list[tuple[str, str, str]]:
    """(id, name_vi, name_en) of every project with a plan or a progress row."""
    cur = await conn.execute(
        "SELECT ids.project_id, coalesce(j.name_vi, ''), coalesce(j.name_en, '') FROM "
        "(SELECT project_id FROM project_plans UNION SELECT DISTINCT project_id FROM progress) AS ids "
        "LEFT JOIN projects j ON j.project_id = ids.project_id ORDER BY 1"
    )
    return [(project, vi, en) for project, vi, en in await cur.fetchall()]


async def project_list(
    conn: Conn, today: dt.date, timezone: str, visible: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Every project (of ``visible`` when given) with today's planned and actual % (the alert's figures), the gap."""
    _, end = day_bounds(today, today, timezone)
    answer = []
    for project, name_vi, name_en in await _project_ids(conn):
        if visible is not None and project not in visible:
            continue
        plan = await load_plan(conn, project)
        shape = plan_shape(plan)
        wanted = [*shape.weights, ""]
        rows = await inputs.project_rows(conn, project, wanted, since=end, before=end, timezone=timezone)
        actual = actual_on(rows, shape, "", today)
        curve = plan.curve("") if plan is not None else []
        planned = planned_at(curve, today) if curve else None
        gap = planned - actual.percent if planned is not None and actual is not None else None
        answer.append(
            {
                "project_id": project,
                "name_vi": name_vi,
                "name_en": name_en,
                "plan_version": None if plan is None else plan.plan_version,
                "packages": len(shape.weights),
                "critical_packages": list(shape.critical),
                "date": today.isoformat(),
                "planned_pct": _pct(planned),
                "actual_pct": None if actual is None else _pct(actual.percent),
                "gap_points": _pct(gap),
                "actual_date": None if actual is None else actual.day.isoformat(),
                "confidence": None if actual is None else round(float(actual.confidence), 3),
                "basis": None if actual is None else actual.basis,
                "coverage": None if actual is None else round(float(actual.coverage), 3),
            }
        )
    return answer


async def project_progress(
    conn: Conn, project_id: str, *, first: dt.date | None, last: dt.date | None, today: dt.date, timezone: str
) -> dict[str, Any] | None:
    """Plan vs actual per package and for the project over ``[first, last]`` (local days); None: unknown project.

    Defaults: from the plan's first date (else a year before today) to the later of today and the plan's end.
    """
    plan = await load_plan(conn, project_id)
    shape = plan_shape(plan)
    curves = plan.curves() if plan is not None else {}
    dates = [p.date for curve in curves.values() for p in curve]
    first = first or (min(dates) if dates else today - dt.timedelta(days=364))
    last = last or max([today, *dates])
    since, before = day_bounds(first, last, timezone)
    seen = await _packages_seen(conn, project_id, before)
    if plan is None and not seen:
        return None
    packages = list(dict.fromkeys([*shape.weights, *(p for p in curves if p), *sorted(seen - {""})]))
    rows = await inputs.project_rows(conn, project_id, [*packages, ""], since=since, before=before, timezone=timezone)
    series = project_series(rows, shape, first, last)
    uploaded = await uploaded_digests(conn, (sha for points in series.values() for p in points for sha in p.keyframes))
    weights = plan.weights() if plan is not None else {}
    return {
        "project_id": project_id,
        "name_vi": shape.project_name_vi,
        "name_en": shape.project_name_en,
        "plan_version": None if plan is None else plan.plan_version,
        "timezone": timezone,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "project": {
            "planned": _planned_series(plan, "", first, last),
            "actual": [_point_json(project_id, p, uploaded, project=True) for p in series.get("", [])],
        },
        "packages": [
            {
                "package_id": package,
                "name": shape.names.get(package, ""),
                "weight": None if package not in weights else round(weights[package], 6),
                "critical": package in shape.critical,
                "planned": _planned_series(plan, package, first, last),
                "actual": [_point_json(project_id, p, uploaded, project=False) for p in series.get(package, [])],
            }
            for package in packages
        ],
    }


async def _packages_seen(conn: Conn, project_id: str, before: dt.datetime) -> set[str]:
    cur = await conn.execute(
        "SELECT DISTINCT package_id FROM progress WHERE project_id = %s AND time < %s", (project_id, before)
    )
    return {package for (package,) in await cur.fetchall()}


_TIMELAPSE = """
SELECT DISTINCT ON (p.agent_id, p.source_id, day) p.agent_id, p.source_id, (p.time AT TIME ZONE %(tz)s)::date AS day,
       e->>'sha256', e->>'time'
FROM progress p, jsonb_array_elements(p.evidence) AS e
WHERE p.project_id = %(project)s AND p.time >= %(start)s AND p.time < %(end)s AND NOT p.confirmed
  AND p.method = 'camera_visual' AND e->>'sha256' IS NOT NULL
ORDER BY p.agent_id, p.source_id, day, p.time DESC
"""


async def timelapse(
    conn: Conn,
    project_id: str,
    first: dt.date,
    last: dt.date,
    timezone: str,
    *,
    visible: frozenset[Source] | None = None,
) -> dict[str, Any]:
    """Per camera of the project (of ``visible`` when given), the daily keyframe its progress figures carry (one
    per local day)."""
    start, end = day_bounds(first, last, timezone)
    cur = await conn.execute(_TIMELAPSE, {"tz": timezone, "project": project_id, "start": start, "end": end})
    found = [row for row in await cur.fetchall() if visible is None or (row[0], row[1]) in visible]
    uploaded = await uploaded_digests(conn, (sha for *_, sha, _ in found))
    sites = await sites_by_key(conn, ((agent, source) for agent, source, *_ in found))
    cameras: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for agent, source, day, sha, taken in found:
        cameras.setdefault((agent, source), []).append(
            {
                "date": day.isoformat(),
                "sha256": sha,
                "time": taken,
                "uploaded": sha in uploaded,
                "url": keyframe_url(project_id, sha),
            }
        )
    return {
        "project_id": project_id,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "cameras": [
            {
                "agent_id": agent,
                "source_id": source,
                "name": (sites.get((agent, source)) or {}).get("name"),
                "days": days,
            }
            for (agent, source), days in cameras.items()
        ],
    }


async def project_cameras(
    conn: Conn, project_id: str, visible: frozenset[Source] | None = None
) -> list[dict[str, Any]]:
    """The cameras that sent progress estimates or site activity for the project, then those the site registry
    says watch it and have sent nothing yet (``last_seen`` null), with their registry entry; only those of
    ``visible`` when given."""
    cur = await conn.execute(
        "SELECT agent_id, source_id, max(time) FROM ("
        "  SELECT agent_id, source_id, time FROM progress WHERE project_id = %(p)s AND agent_id <> %(pmu)s"
        "  UNION ALL SELECT agent_id, source_id, time FROM site_activity WHERE project_id = %(p)s"
        ") AS seen GROUP BY 1, 2 ORDER BY 1, 2",
        {"p": project_id, "pmu": PMU_AGENT},
    )
    seen: list[tuple[str, str, dt.datetime | None]] = list(await cur.fetchall())
    registered = {(row["agent_id"], row["id"]): row for row in await project_sites(conn, project_id)}
    seen_keys = {(agent, source) for agent, source, _ in seen}
    seen += [(agent, source, None) for agent, source in sorted(registered) if (agent, source) not in seen_keys]
    sites = {**await sites_by_key(conn, seen_keys), **registered}
    answer = []
    for agent, source, last in seen:
        if visible is not None and (agent, source) not in visible:
            continue
        site = sites.get((agent, source))
        answer.append(
            {
                "agent_id": agent,
                "source_id": source,
                "last_seen": None if last is None else last.isoformat(),
                "registered": site is not None,
                "name": None if site is None else site["name"],
                "lat": None if site is None else site["lat"],
                "lon": None if site is None else site["lon"],
                "area": None if site is None else site["area"],
                # Whether central can relay the camera's live view. The agent's own addresses (preview_url,
                # live_url) are not handed out: browsers never reach agents, the live view goes through central.
                "live": site is not None and upstream_url(site) is not None,
            }
        )
    return answer


_REFERENCED = sql.SQL(
    "SELECT EXISTS (SELECT 1 FROM progress WHERE project_id = %s AND evidence @> %s::jsonb"
    " AND (agent_id = %s OR {visible}))"
)


async def keyframe_referenced(
    conn: Conn, project_id: str, sha256: str, visible: frozenset[Source] | None = None
) -> bool:
    """Whether a progress row of the project references the image: a PMU's confirmation, or a figure of a
    camera of ``visible`` (any camera when None), so a scoped user gets no keyframe of another commune's
    camera through a project they share."""
    condition, params = source_condition(visible, "agent_id", "source_id")
    cur = await conn.execute(
        _REFERENCED.format(visible=condition),
        (project_id, json.dumps([{"sha256": sha256}]), PMU_AGENT, *params),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def project_known(conn: Conn, project_id: str) -> bool:
    """A project with a plan, a progress row or site activity."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM project_plans WHERE project_id = %(p)s) "
        "OR EXISTS (SELECT 1 FROM progress WHERE project_id = %(p)s) "
        "OR EXISTS (SELECT 1 FROM site_activity WHERE project_id = %(p)s)",
        {"p": project_id},
    )
    row = await cur.fetchone()
    return bool(row and row[0])
