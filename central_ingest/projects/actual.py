"""Actual % complete of work packages and projects from stored progress rows. Pure: rows in, points out.

A package's series has one point per local day that has rows (``package_actuals``):

- a **confirmed** row (a PMU's figure) wins on its day, whatever the cameras said;
- the confirmation **calibrates** the camera: the difference between the confirmed figure and the
  camera's estimate of that day (or, with no estimate that day, its latest earlier one) is added to
  every later estimate until the next confirmation, clamped to 0..100; such points are marked
  ``calibrated`` and keep the camera's own figure in ``estimate``.

A project's figure on a day (``project_actual``) is the weighted sum, over ALL the plan's packages,
of each package's latest point on or before that day. A package with no point yet counts 0 and its
weight share is missing from the confidence (the confidence is the weighted sum of the packages'
confidences, 0 for a missing one), so a project only half watched by cameras asks a PMU to confirm
rather than raising a false alarm. ``choose_project`` then prefers a project-level confirmed figure
when it is as new as the packages' figure.

Exact arithmetic (``fractions.Fraction``), as the alert rules compare with it.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

from central_ingest.alerts.evaluate import HUNDRED, ProgressRow, frac
from central_ingest.projects.plan_model import StoredPlan

Basis = Literal["confirmed", "partly_confirmed", "calibrated", "estimate"]
MAX_POINT_EVIDENCE = 8
"""Most evidence links a project point carries (the union of its packages' would be long)."""


@dataclass(frozen=True)
class ActualPoint:
    """The actual % complete of a package or project as known on ``day`` (a local date)."""

    day: dt.date
    percent: Fraction
    confidence: Fraction
    confirmed: bool
    time: dt.datetime
    """The chosen row's time (a project: the newest of its parts)."""
    calibrated: bool = False
    """An estimate shifted by the last confirmation's offset (``estimate`` is the camera's own figure)."""
    estimate: Fraction | None = None
    evidence: tuple[str, ...] = ()
    keyframes: tuple[str, ...] = ()
    method: str = ""
    note: str = ""
    coverage: Fraction = Fraction(1)
    """A project: the share of the plan's weight whose packages had a figure (1 for a package)."""
    parts: tuple[str, ...] = field(default=())
    """A project: the packages that had a figure."""
    partly_confirmed: bool = False
    """A project: some of its packages' figures are confirmed, not all."""

    @property
    def basis(self) -> Basis:
        """What the figure rests on: confirmations (all or some), a calibrated estimate or a bare estimate."""
        if self.confirmed:
            return "confirmed"
        if self.partly_confirmed:
            return "partly_confirmed"
        return "calibrated" if self.calibrated else "estimate"

    def as_row(self) -> ProgressRow:
        """The point as ``evaluate.progress_finding`` reads an actual figure."""
        return ProgressRow(
            self.day, self.time, self.percent, self.confidence, self.confirmed, self.evidence, self.method,
            self.note, self.keyframes,
        )  # fmt: skip


def as_point(row: ProgressRow) -> ActualPoint:
    """A stored row as a point, unchanged (no calibration)."""
    return ActualPoint(
        day=row.day, percent=row.percent, confidence=row.confidence, confirmed=row.confirmed, time=row.time,
        evidence=row.evidence, keyframes=row.keyframes, method=row.method, note=row.note,
    )  # fmt: skip


def _clamp(value: Fraction) -> Fraction:
    return min(HUNDRED, max(Fraction(0), value))


def package_actuals(rows: Sequence[ProgressRow], *, calibrate: bool = True) -> list[ActualPoint]:
    """One point per day with rows, in day order (see the module docstring); ``calibrate=False``: no shift."""
    by_day: dict[dt.date, list[ProgressRow]] = defaultdict(list)
    for row in rows:
        by_day[row.day].append(row)
    points: list[ActualPoint] = []
    offset: Fraction | None = None
    last_estimate: ProgressRow | None = None
    for day in sorted(by_day):
        day_rows = by_day[day]
        estimate = max((r for r in day_rows if not r.confirmed), key=lambda r: r.time, default=None)
        confirmed = max((r for r in day_rows if r.confirmed), key=lambda r: r.time, default=None)
        if estimate is not None:
            last_estimate = estimate
        if confirmed is not None:
            points.append(as_point(confirmed))
            if calibrate:
                offset = None if last_estimate is None else confirmed.percent - last_estimate.percent
            continue
        assert estimate is not None  # a day has at least one row
        if offset is None:
            points.append(as_point(estimate))
        else:
            shifted = as_point(estimate)
            points.append(
                replace(shifted, percent=_clamp(estimate.percent + offset), calibrated=True, estimate=estimate.percent)
            )
    return points


def latest_at(points: Sequence[ActualPoint], day: dt.date) -> ActualPoint | None:
    """The last of ``points`` (in day order) dated on or before ``day``."""
    index = bisect.bisect_right(points, day, key=lambda p: p.day)
    return points[index - 1] if index else None


def _unique(items: Iterable[str], limit: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))[:limit]


def project_actual(
    series: Mapping[str, Sequence[ActualPoint]], weights: Mapping[str, float | Fraction], day: dt.date
) -> ActualPoint | None:
    """Weighted sum over every package of ``weights`` of its latest point on or before ``day``; None without any.

    ``series`` holds each package's points in day order (``package_actuals``); weights need not sum to 1.
    """
    total = sum((frac(w) for w in weights.values() if w > 0), Fraction(0))
    if total <= 0:
        return None
    found: list[tuple[str, Fraction, ActualPoint]] = []
    for package, weight in weights.items():
        point = latest_at(series.get(package, ()), day) if weight > 0 else None
        if point is not None:
            found.append((package, frac(weight) / total, point))
    if not found:
        return None
    coverage = sum((share for _, share, _ in found), Fraction(0))
    confirmed = coverage == 1 and all(p.confirmed for _, _, p in found)
    return ActualPoint(
        day=max(p.day for _, _, p in found),
        percent=sum((share * p.percent for _, share, p in found), Fraction(0)),
        confidence=sum((share * (Fraction(1) if p.confirmed else p.confidence) for _, share, p in found), Fraction(0)),
        confirmed=confirmed,
        time=max(p.time for _, _, p in found),
        calibrated=any(p.calibrated for _, _, p in found),
        partly_confirmed=not confirmed and any(p.confirmed for _, _, p in found),
        evidence=_unique((uri for _, _, p in found for uri in p.evidence), MAX_POINT_EVIDENCE),
        keyframes=_unique((sha for _, _, p in found for sha in p.keyframes), MAX_POINT_EVIDENCE),
        method="packages",
        coverage=coverage,
        parts=tuple(package for package, _, _ in found),
    )


def choose_project(
    project_points: Sequence[ActualPoint], derived: ActualPoint | None, day: dt.date
) -> ActualPoint | None:
    """The project's figure on ``day``: a project-level confirmed point as new as ``derived`` (from the
    packages) wins; else ``derived``; with no package figure at all, the latest project-level point."""
    latest = latest_at(project_points, day)
    confirmed = next((p for p in reversed(project_points) if p.day <= day and p.confirmed), None)
    if derived is None:
        return latest
    if confirmed is not None and confirmed.day >= derived.day:
        return confirmed
    return derived


# --- the plan as this module needs it -----------------------------------------------------------------


@dataclass(frozen=True)
class PlanShape:
    """What the actuals need from a stored plan: package weights and names, critical packages, project name."""

    weights: Mapping[str, float]
    """Package id -> weight; empty for a plan without packages (only planned-% points)."""
    critical: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)
    project_name_vi: str = ""
    project_name_en: str = ""

    @property
    def has_packages(self) -> bool:
        return bool(self.weights)


def plan_shape(plan: StoredPlan | None) -> PlanShape:
    """The shape of a stored plan (or of none); plans stored before packages existed have no weights."""
    if plan is None:
        return PlanShape({})
    return PlanShape(
        weights=plan.weights(),
        critical=plan.critical_packages(),
        names={package.id: package.name for package in plan.packages},
        project_name_vi=plan.project_name_vi,
        project_name_en=plan.project_name_en,
    )


def actual_on(
    rows: Mapping[str, Sequence[ProgressRow]], shape: PlanShape, package_id: str, day: dt.date
) -> ActualPoint | None:
    """The figure the alert and the pages use for ``package_id`` ('' = the project) on ``day``.

    A plan with packages: the package's calibrated series; the project from its packages (``project_actual``)
    unless a project-level confirmation is as new (``choose_project``). A plan without packages: the latest
    row, a confirmed one winning on its day, uncalibrated (the behaviour before packages existed).
    """
    calibrate = shape.has_packages
    if package_id or not shape.has_packages:
        return latest_at(package_actuals(rows.get(package_id, ()), calibrate=calibrate), day)
    series = {package: package_actuals(rows.get(package, ())) for package in shape.weights}
    derived = project_actual(series, shape.weights, day)
    return choose_project(package_actuals(rows.get("", ())), derived, day)


def progress_facts(shape: PlanShape, package_id: str, actual: ActualPoint | None) -> dict[str, Any]:
    """What an alert's message and detail say beyond the numbers: names from the plan, and what the figure
    rests on (``basis``), how much of the project's weight it covers, the camera's own figure if calibrated."""
    facts: dict[str, Any] = {
        "project_name_vi": shape.project_name_vi,
        "project_name_en": shape.project_name_en,
        "package_name": shape.names.get(package_id, "") if package_id else "",
    }
    if actual is not None:
        facts |= {
            "basis": actual.basis,
            "method": actual.method,
            "calibrated": actual.calibrated,
            "coverage": actual.coverage,
            "estimate": actual.estimate,
        }
    return facts
