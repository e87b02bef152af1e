"""``/api/v1/projects/{id}/plan``: approve a plan (JSON or a PMU's CSV/Excel file), read it, list its versions.

Writes need the ``project_unit`` or ``admin`` role and are audited (``plan_approve``, in the same
transaction as the version); reads need any signed-in user. An uploaded file is parsed in a worker
thread (an Excel workbook is CPU work), within ``MAX_FILE_BYTES``; a file with problems is refused with
every problem and its place (422), and counted.

Area scope, for reads and writes alike (``views.require_visible_project``): a project none of whose
cameras the caller may see answers 404, like an unknown one, so a commune's PMU neither reads nor
overwrites another commune's plan. Hence a plan for a project with no camera yet (none registered for
it, none has sent a figure) can be created only by a user of unrestricted scope (the whole province); a
scoped PMU can approve plans once a camera of its area is registered for the project (sites file,
``project_id``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import ValidationError

from central_ingest.access.dependencies import client_address, require_role, require_signed_in
from central_ingest.access.principal import Principal
from central_ingest.alerts.plans import list_versions, load_plan
from central_ingest.ingest.body import BodyError, check_declared_length, read_limited
from central_ingest.projects.plan_approval import Approver, approve_plan
from central_ingest.projects.plan_import import (
    MAX_FILE_BYTES,
    XLSX_CONTENT_TYPE,
    ApprovalDetails,
    PlanImportError,
    plan_from_file,
)
from central_ingest.projects.plan_model import PlanIn
from central_ingest.projects.views import require_visible_project
from central_ingest.state import AppState, get_app_state
from event_contract.models import IDENTIFIER_PATTERN

router = APIRouter(prefix="/api/v1/projects", tags=["plans"])
ProjectId = Annotated[str, Path(pattern=IDENTIFIER_PATTERN)]
Writer = Annotated[Principal, Depends(require_role("project_unit", "admin"))]
Reader = Annotated[Principal, Depends(require_signed_in)]
CONTENT_TYPES: dict[str, Literal["csv", "xlsx"]] = {"text/csv": "csv", XLSX_CONTENT_TYPE: "xlsx"}
UNSAFE_NAME = re.compile(r"[^\w .()+-]")
MAX_SOURCE_NAME_CHARS = 120
REFUSED = "Tệp kế hoạch có lỗi. / The plan file has problems."


@dataclass
class PlanImportStats:
    """Plan files approved and refused (unparseable, inconsistent, too large, wrong type) since start."""

    imported: int = 0
    refused: int = 0


def get_import_stats(request: Request) -> PlanImportStats:
    stats = getattr(request.app.state, "ioc_plan_imports", None)
    if not isinstance(stats, PlanImportStats):
        stats = PlanImportStats()
        request.app.state.ioc_plan_imports = stats
    return stats


def _approver(principal: Principal, request: Request) -> Approver:
    role = principal.acting_role("project_unit", "admin")
    return Approver(principal.username, role, client_address(request), principal.username)


def source_name(filename: str | None, kind: str) -> str:
    """A file name safe to show in messages and keep in the audit log (default ``plan.csv``/``plan.xlsx``)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    cleaned = UNSAFE_NAME.sub("_", base)[:MAX_SOURCE_NAME_CHARS]
    return cleaned or f"plan.{kind}"


@router.put("/{project_id}/plan", summary="Approve a plan (JSON) as the project's next version (project_unit, admin)")
async def put_plan(
    project_id: ProjectId,
    plan: PlanIn,
    request: Request,
    principal: Writer,
    app: Annotated[AppState, Depends(get_app_state)],
) -> Any:
    async with app.pool.connection() as conn:
        await require_visible_project(conn, principal.scope, project_id)
        stored = await approve_plan(conn, project_id, plan, dt.datetime.now(dt.UTC), _approver(principal, request))
    return stored.as_json()


@router.post(
    "/{project_id}/plan/import",
    summary="Approve a plan from a CSV or Excel file (raw body; text/csv or the .xlsx type; at most 2 MB)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def import_plan(
    *,
    project_id: ProjectId,
    request: Request,
    principal: Writer,
    app: Annotated[AppState, Depends(get_app_state)],
    stats: Annotated[PlanImportStats, Depends(get_import_stats)],
    note: Annotated[str, Query(max_length=2000, description="e.g. the approval decision's number")] = "",
    approved_at: Annotated[dt.datetime | None, Query(description="When it was approved (ISO 8601 with zone)")] = None,
    filename: Annotated[str | None, Query(max_length=500, description="The file's name, for messages")] = None,
    name_vi: Annotated[str, Query(max_length=200, description="Project name (Vietnamese)")] = "",
    name_en: Annotated[str, Query(max_length=200, description="Project name (English)")] = "",
) -> Any:
    async with app.pool.connection() as conn:  # before the body is read: nothing of it is parsed for nothing
        await require_visible_project(conn, principal.scope, project_id)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    kind = CONTENT_TYPES.get(content_type)
    try:
        if kind is None:
            raise BodyError(415, f"Content-Type must be text/csv or {XLSX_CONTENT_TYPE}, not {content_type!r}")
        if approved_at is not None and approved_at.tzinfo is None:
            raise BodyError(422, "approved_at needs a time zone (e.g. 2025-02-20T08:00:00+07:00)")
        check_declared_length(request.headers.get("content-length"), MAX_FILE_BYTES)
        data = await read_limited(request.stream(), MAX_FILE_BYTES)
    except BodyError as error:
        stats.refused += 1
        raise HTTPException(error.status_code, error.message) from None
    source = source_name(filename, kind)
    try:
        details = ApprovalDetails(note, approved_at, name_vi, name_en)
        plan, plan_source = await anyio.to_thread.run_sync(plan_from_file, data, source, kind, details)
    except PlanImportError as error:
        stats.refused += 1
        raise HTTPException(422, {"message": REFUSED, "issues": list(error.issues)}) from None
    except ValidationError as error:
        stats.refused += 1
        issues = [f"{source}: {e['msg']}" for e in error.errors()]
        raise HTTPException(422, {"message": REFUSED, "issues": issues}) from None
    async with app.pool.connection() as conn:
        stored = await approve_plan(
            conn, project_id, plan, dt.datetime.now(dt.UTC), _approver(principal, request), source=plan_source
        )
    stats.imported += 1
    return stored.as_json()


@router.get("/{project_id}/plan", summary="The latest approved plan, or ?version=N (any signed-in user)")
async def get_plan(
    project_id: ProjectId,
    principal: Reader,
    app: Annotated[AppState, Depends(get_app_state)],
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    async with app.pool.connection() as conn:
        await require_visible_project(conn, principal.scope, project_id)
        plan = await load_plan(conn, project_id, version)
    if plan is None:
        raise HTTPException(404, f"project {project_id} has no plan" + (f" version {version}" if version else ""))
    return plan.as_json()


@router.get("/{project_id}/plan/versions", summary="Every approved version, newest first (any signed-in user)")
async def get_versions(
    project_id: ProjectId, principal: Reader, app: Annotated[AppState, Depends(get_app_state)]
) -> list[dict[str, Any]]:
    async with app.pool.connection() as conn:
        await require_visible_project(conn, principal.scope, project_id)
        versions = await list_versions(conn, project_id)
    if not versions:
        raise HTTPException(404, f"project {project_id} has no plan")
    return [version.as_json() for version in versions]
