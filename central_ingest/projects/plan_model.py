"""The approved plan of a project: what a PMU submits (``PlanIn``) and what a stored version answers.

A plan has work packages (id, name, weight, planned start/finish, critical) and planned-% points by date
(an S-curve per package, and optionally one for the project as a whole, package_id ''). Points are
cumulative, so each series must never go down. A package given only start and finish gets the generated
S-curve of ``scurve`` (documented there); the project curve, without explicit project points, is the
weighted sum of the package curves. Plans from before packages existed (points only) read as before.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from central_ingest.alerts.evaluate import PlanPoint, frac
from central_ingest.projects.scurve import package_s_curve, weighted_curve
from event_contract.models import IDENTIFIER_PATTERN

MAX_PLAN_POINTS = 10_000
MAX_PACKAGES = 500
MAX_NAME_CHARS = 200
PROJECT = ""
"""The package id of the project as a whole."""


class PlanPointIn(BaseModel):
    """The planned % complete of a work package (or of the project, package_id '') on a date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package_id: Annotated[str, Field(pattern=f"({IDENTIFIER_PATTERN})|^$")] = Field(
        default=PROJECT, description="Work package id; '' (the default) is the project as a whole."
    )
    date: dt.date = Field(description="The date (local) the planned figure applies to.")
    planned_pct: float = Field(ge=0, le=100, allow_inf_nan=False, description="Planned % complete on that date.")


class PackageIn(BaseModel):
    """A work package: its share of the project and its planned schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)] = Field(description="Package id, e.g. 'mong', 'km0-1'.")
    name: str = Field(default="", max_length=MAX_NAME_CHARS, description="Name shown on pages (Vietnamese).")
    weight: float = Field(gt=0, allow_inf_nan=False, description="Share of the project; normalised over packages.")
    planned_start: dt.date | None = Field(
        default=None, description="Planned start; with planned_finish, generates the S-curve when no points."
    )
    planned_finish: dt.date | None = Field(default=None, description="Planned finish (on or after the start).")
    critical: bool = Field(default=False, description="A critical package gets its own progress_behind subject.")

    @model_validator(mode="after")
    def _schedule(self) -> PackageIn:
        if (self.planned_start is None) != (self.planned_finish is None):
            raise ValueError(f"package {self.id}: give both planned_start and planned_finish, or neither")
        if self.planned_start and self.planned_finish and self.planned_finish < self.planned_start:
            raise ValueError(
                f"package {self.id}: planned_finish {self.planned_finish} is before planned_start {self.planned_start}"
            )
        return self


def _series(points: tuple[PlanPointIn, ...]) -> dict[str, list[PlanPointIn]]:
    series: dict[str, list[PlanPointIn]] = defaultdict(list)
    for point in sorted(points, key=lambda p: (p.package_id, p.date)):
        series[point.package_id].append(point)
    return series


class PlanIn(BaseModel):
    """An approved plan, as PUT to ``/api/v1/projects/{project_id}/plan`` or read from a PMU's file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: tuple[PlanPointIn, ...] = Field(
        default=(), max_length=MAX_PLAN_POINTS, description="Planned % by date; may be empty when packages are."
    )
    packages: tuple[PackageIn, ...] = Field(
        default=(), max_length=MAX_PACKAGES, description="Work packages; () for a project-level plan only."
    )
    project_name_vi: str = Field(default="", max_length=MAX_NAME_CHARS, description="Project name (Vietnamese).")
    project_name_en: str = Field(default="", max_length=MAX_NAME_CHARS, description="Project name (English).")
    note: str = Field(default="", max_length=2000, description="e.g. the approval decision's number.")
    approved_at: dt.datetime | None = Field(default=None, description="When it was approved; default: now.")

    @model_validator(mode="after")
    def _consistent(self) -> PlanIn:
        problems = _plan_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _plan_problems(plan: PlanIn) -> list[str]:
    """Every inconsistency of ``plan`` (not just the first), each naming the package and date."""
    problems: list[str] = []
    keys = [(p.package_id, p.date) for p in plan.points]
    if len(set(keys)) != len(keys):
        problems.append("each (package_id, date) may appear once")
    ids = [package.id for package in plan.packages]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        problems.append(f"package ids must be unique: {', '.join(twice)} appear more than once")
    if not plan.points and not plan.packages:
        problems.append("a plan needs points, or packages with planned_start and planned_finish")
    series = _series(plan.points)
    if plan.packages:
        undeclared = sorted(set(series) - set(ids) - {PROJECT})
        if undeclared:
            problems.append(f"points name undeclared packages: {', '.join(undeclared)}")
        for package in plan.packages:
            if package.id not in series and package.planned_start is None:
                problems.append(f"package {package.id} has neither points nor planned_start/planned_finish")
    for package_id, points in series.items():
        for before, after in itertools.pairwise(points):
            if after.planned_pct < before.planned_pct:
                problems.append(
                    f"{'the project' if package_id == PROJECT else 'package ' + package_id}: planned % goes down "
                    f"from {before.planned_pct:g} on {before.date} to {after.planned_pct:g} on {after.date} "
                    "(an S-curve is cumulative)"
                )
                break
    return problems


@dataclass(frozen=True)
class StoredPlan:
    """One stored version of a project's plan."""

    project_id: str
    plan_version: int
    approved_at: dt.datetime
    note: str
    points: tuple[PlanPointIn, ...]
    packages: tuple[PackageIn, ...] = ()
    approved_by: str = ""
    project_name_vi: str = ""
    project_name_en: str = ""
    source_name: str | None = None
    """The file the version was imported from (None: JSON through the API)."""
    source_sha256: str | None = None

    def weights(self) -> dict[str, float]:
        """Each package's share of the project, normalised to sum 1 ({} for a plan without packages)."""
        total = sum(package.weight for package in self.packages)
        return {package.id: package.weight / total for package in self.packages} if total > 0 else {}

    def critical_packages(self) -> tuple[str, ...]:
        """Ids of the packages the plan marks critical, in plan order."""
        return tuple(package.id for package in self.packages if package.critical)

    def package(self, package_id: str) -> PackageIn | None:
        return next((package for package in self.packages if package.id == package_id), None)

    def curve(self, package_id: str = PROJECT) -> list[PlanPoint]:
        """The planned S-curve of a package ('' = the project), as exact values for ``evaluate.planned_at``.

        Explicit points win (a package's planned start adds 0 % on that day when before its first point, and
        its planned finish 100 % when after its last); a package without points has the generated S-curve of
        its start/finish; the project without points is the weighted sum of the package curves. [] when
        nothing is planned.
        """
        explicit = sorted(
            (PlanPoint(p.date, frac(p.planned_pct)) for p in self.points if p.package_id == package_id),
            key=lambda p: p.date,
        )
        package = self.package(package_id) if package_id != PROJECT else None
        if explicit:
            return _anchored(explicit, package)
        if package_id == PROJECT:
            if not self.packages:
                return []
            curves = {package.id: self.curve(package.id) for package in self.packages}
            return weighted_curve(curves, {package.id: frac(package.weight) for package in self.packages})
        if package is None or package.planned_start is None or package.planned_finish is None:
            return []
        return package_s_curve(package.planned_start, package.planned_finish)

    def curves(self) -> dict[str, list[PlanPoint]]:
        """Every curve of the plan: the project ('') first, then each package (declared or named by points)."""
        ids = [PROJECT, *(package.id for package in self.packages)]
        ids += sorted({p.package_id for p in self.points} - set(ids))
        return {package_id: self.curve(package_id) for package_id in ids}

    def as_json(self) -> dict[str, Any]:
        weights = self.weights()
        return {
            "project_id": self.project_id,
            "plan_version": self.plan_version,
            "approved_at": self.approved_at.isoformat(),
            "approved_by": self.approved_by,
            "note": self.note,
            "project_name_vi": self.project_name_vi,
            "project_name_en": self.project_name_en,
            "source": None if self.source_name is None else {"name": self.source_name, "sha256": self.source_sha256},
            "packages": [
                package.model_dump(mode="json") | {"weight_share": round(weights[package.id], 6)}
                for package in self.packages
            ],
            "points": [p.model_dump(mode="json") for p in self.points],
            "curves": {
                package_id: [{"date": p.date.isoformat(), "planned_pct": _pct(p.planned_pct)} for p in curve]
                for package_id, curve in self.curves().items()
            },
        }


def _anchored(points: list[PlanPoint], package: PackageIn | None) -> list[PlanPoint]:
    """``points`` with 0 % on the package's planned start and 100 % on its finish, where outside the points."""
    if package is None or package.planned_start is None or package.planned_finish is None:
        return points
    head = [PlanPoint(package.planned_start, Fraction(0))] if package.planned_start < points[0].date else []
    tail = [PlanPoint(package.planned_finish, Fraction(100))] if package.planned_finish > points[-1].date else []
    return head + points + tail


def _pct(value: Fraction) -> float:
    return round(float(value), 4)
