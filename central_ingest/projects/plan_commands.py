"""``central-ingest plans ...``: approve a plan from a PMU's file, show a plan, list its versions.

    central-ingest plans import FILE --project ID [--note N] [--approved-at ISO] [--by NAME]
                                     [--name-vi V] [--name-en E]     # FILE: .csv or .xlsx
    central-ingest plans show ID [--version N]                       # packages and the S-curve table
    central-ingest plans versions ID

``import`` goes through the same parser and the same approval as ``POST /api/v1/projects/{id}/plan/import``:
the version and its ``plan_approve`` audit entry commit together, the entry naming the operator as
``cli:<os user>``; ``--by`` names who approved the plan (kept on the version; default: the operator).
A file with problems prints every one with its place (``plan.csv:7:4: ...``) and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import psycopg

from central_ingest.alerts.evaluate import planned_at
from central_ingest.alerts.plans import PlanSource, list_versions, load_plan
from central_ingest.projects.plan_approval import Approver, approve_plan
from central_ingest.projects.plan_import import MAX_FILE_BYTES, ApprovalDetails, PlanImportError, plan_from_file
from central_ingest.projects.plan_model import PROJECT, PlanIn, StoredPlan
from central_ingest.settings import Settings
from event_contract.models import IDENTIFIER_PATTERN

KINDS: dict[str, Literal["csv", "xlsx"]] = {".csv": "csv", ".xlsx": "xlsx"}


def add_plans_parser(commands: Any) -> None:
    """Add the ``plans`` command group to the CLI's subparsers."""
    plans = commands.add_parser("plans", help="approved construction plans: import a CSV/Excel file, show, versions")
    sub = plans.add_subparsers(dest="plans_command", required=True)
    load = sub.add_parser("import", help="approve a plan from a .csv or .xlsx file as the project's next version")
    load.add_argument("path", type=Path, help="the plan file (.csv UTF-8, or .xlsx); see docs/projects.md")
    load.add_argument("--project", required=True, help="project id")
    load.add_argument("--note", default="", help="e.g. the approval decision's number")
    load.add_argument("--approved-at", help="when it was approved, ISO 8601 with zone (default: now)")
    load.add_argument("--by", help="who approved it (default: the operator, cli:<os user>)")
    load.add_argument("--name-vi", default="", help="project name (Vietnamese)")
    load.add_argument("--name-en", default="", help="project name (English)")
    show = sub.add_parser("show", help="print a plan's packages and S-curve table")
    show.add_argument("project")
    show.add_argument("--version", type=int, help="a version number (default: the latest)")
    versions = sub.add_parser("versions", help="list a project's plan versions, newest first")
    versions.add_argument("project")


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


def _project_id(text: str) -> str:
    if re.fullmatch(IDENTIFIER_PATTERN, text) is None:
        raise ValueError(f"project id {text!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
    return text


def _approved_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("--approved-at needs a time zone (e.g. 2025-02-20T08:00:00+07:00)")
    return value


def read_plan_file(path: Path, args: argparse.Namespace) -> tuple[PlanIn, PlanSource]:
    """The plan in ``path`` with the command's note, approval time and names; ``PlanImportError`` if bad."""
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: the file must end in .csv or .xlsx")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: larger than the {MAX_FILE_BYTES} bytes accepted")
    details = ApprovalDetails(args.note, _approved_at(args.approved_at), args.name_vi, args.name_en)
    return plan_from_file(path.read_bytes(), path.name, kind, details)


def _pct(value: Fraction) -> str:
    return f"{float(value):.1f}"


def format_plan(plan: StoredPlan) -> str:
    """The plan as text: header, the packages, and the planned % of every curve on each of their dates."""
    names = " / ".join(n for n in (plan.project_name_vi, plan.project_name_en) if n)
    lines = [
        f"project {plan.project_id}" + (f": {names}" if names else ""),
        f"version {plan.plan_version}, approved {plan.approved_at.isoformat()}"
        + (f" by {plan.approved_by}" if plan.approved_by else "")
        + (f"; note: {plan.note}" if plan.note else ""),
    ]
    if plan.source_name:
        lines.append(f"source: {plan.source_name} (sha256 {plan.source_sha256})")
    curves = plan.curves()
    if plan.packages:
        weights = plan.weights()
        lines += ["", "package\tname\tweight\tshare\tstart\tfinish\tcritical\tcurve"]
        explicit = {p.package_id for p in plan.points}
        for package in plan.packages:
            lines.append(
                "\t".join(
                    [
                        package.id,
                        package.name,
                        f"{package.weight:g}",
                        f"{weights[package.id] * 100:.1f}%",
                        str(package.planned_start or "-"),
                        str(package.planned_finish or "-"),
                        "x" if package.critical else "",
                        "points" if package.id in explicit else "generated",
                    ]
                )
            )
    ids = [package_id for package_id, curve in curves.items() if curve]
    days = sorted({p.date for package_id in ids for p in curves[package_id]})
    lines += ["", "planned % (S-curve)", "\t".join(["date", *("project" if i == PROJECT else i for i in ids)])]
    lines += ["\t".join([day.isoformat(), *(_pct(planned_at(curves[i], day)) for i in ids)]) for day in days]
    return "\n".join(lines)


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    project_id = _project_id(args.project)
    try:
        plan, source = read_plan_file(args.path, args)
    except PlanImportError as error:
        for issue in error.issues:
            print(issue, file=sys.stderr)
        print(f"central-ingest: {args.path}: not imported ({len(error.issues)} problems)", file=sys.stderr)
        return 1
    operator = _operator()
    approver = Approver(operator, "cli", "cli", args.by or operator)
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        stored = await approve_plan(conn, project_id, plan, dt.datetime.now(dt.UTC), approver, source=source)
    print(
        f"project {project_id}: plan version {stored.plan_version} approved ({len(stored.packages)} packages, "
        f"{len(stored.points)} points) from {source.name}"
    )
    return 0


async def _show(settings: Settings, args: argparse.Namespace) -> int:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        plan = await load_plan(conn, _project_id(args.project), args.version)
    if plan is None:
        version = f" version {args.version}" if args.version else ""
        print(f"central-ingest: project {args.project} has no plan{version}", file=sys.stderr)
        return 1
    print(format_plan(plan))
    return 0


async def _versions(settings: Settings, args: argparse.Namespace) -> int:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        versions = await list_versions(conn, _project_id(args.project))
    if not versions:
        print(f"central-ingest: project {args.project} has no plan", file=sys.stderr)
        return 1
    print("version\tapproved_at\tapproved_by\tpackages\tpoints\tsource\tnote")
    for v in versions:
        row = [v.plan_version, v.approved_at.isoformat(), v.approved_by, v.packages, v.points, v.source_name or "-"]
        print("\t".join(str(cell) for cell in [*row, v.note]))
    return 0


def run_plans(settings: Settings, args: argparse.Namespace) -> int:
    """Run a ``plans`` command: 0 done, 1 refused (the reason is on stderr)."""
    commands = {"import": _import, "show": _show, "versions": _versions}
    try:
        return asyncio.run(commands[args.plans_command](settings, args))
    except (OSError, ValueError) as error:
        print(f"central-ingest: {error}", file=sys.stderr)
        return 1
