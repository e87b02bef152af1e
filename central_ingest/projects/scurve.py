"""Planned S-curves: the generated shape of a package with only start/finish, and the weighted project curve.

Pure and exact (``fractions.Fraction``), like ``alerts.evaluate``, which reads every curve through
``planned_at`` (linear between points, 0 before the first, the last value after the last).

The generated shape is the classic cubic smoothstep ``s(t) = 3t² - 2t³`` of the elapsed share ``t`` of the
package's duration: 0 at the start, 100 at the finish, slope 0 at both ends (slow mobilisation and
finishing, fastest work mid-way), symmetric (50 % at mid-duration) and strictly increasing in between. It is
sampled every ``step_days`` (weekly by default) from the start, plus the finish itself, each value to a
millionth of a point; between samples the alert engine interpolates linearly, which keeps the curve monotone.

The project curve, when the plan gives no explicit project points, is the weighted sum of the package
curves (weights normalised to sum 1) evaluated on the union of the packages' dates. Every package curve is
piecewise linear between its own dates (a curve whose first point is above 0 steps up from 0 there, so the
day before it joins the union too), so on every day ``planned_at`` on the result equals exactly the weighted
sum of ``planned_at`` on each package.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from fractions import Fraction

from central_ingest.alerts.evaluate import PlanPoint

HUNDRED = Fraction(100)
DEFAULT_STEP_DAYS = 7
ONE_DAY = dt.timedelta(days=1)
QUANTUM = Fraction(1, 1_000_000)
"""Generated planned % are kept to a millionth of a point (exact cubes of 1/span would make the project
curve's fractions grow with every package of another duration)."""


def smoothstep(t: Fraction) -> Fraction:
    """``3t² - 2t³`` for ``t`` clamped to [0, 1]: the cumulative share of work done at elapsed share ``t``."""
    t = min(max(t, Fraction(0)), Fraction(1))
    return t * t * (3 - 2 * t)


def package_s_curve(start: dt.date, finish: dt.date, step_days: int = DEFAULT_STEP_DAYS) -> list[PlanPoint]:
    """The generated planned % of a package from ``start`` (0) to ``finish`` (100), sampled every ``step_days``.

    A package planned to start and finish on the same day is a single point (100 on that day; 0 before it).
    """
    if finish < start:
        raise ValueError(f"finish {finish} is before start {start}")
    if step_days < 1:
        raise ValueError("step_days must be at least 1")
    span = (finish - start).days
    if span == 0:
        return [PlanPoint(start, HUNDRED)]
    offsets = [*range(0, span, step_days), span]
    return [
        PlanPoint(start + dt.timedelta(days=d), _quantised(HUNDRED * smoothstep(Fraction(d, span)))) for d in offsets
    ]


def _quantised(pct: Fraction) -> Fraction:
    """``pct`` to the nearest ``QUANTUM``: keeps weighted sums of many packages on small denominators."""
    return Fraction(round(pct / QUANTUM)) * QUANTUM


def _sampled(curve: Sequence[PlanPoint], days: Sequence[dt.date]) -> list[Fraction]:
    """``planned_at(curve, day)`` for every day of the sorted ``days``, in one walk (not one sort per day)."""
    ordered = sorted(curve, key=lambda p: p.date)
    values: list[Fraction] = []
    i = 0
    for day in days:
        while i < len(ordered) and ordered[i].date <= day:
            i += 1
        if i == 0:
            values.append(Fraction(0))  # before the first point
        elif i == len(ordered):
            values.append(ordered[-1].planned_pct)  # after the last
        else:
            before, after = ordered[i - 1], ordered[i]
            step = Fraction((day - before.date).days, (after.date - before.date).days)
            values.append(before.planned_pct + (after.planned_pct - before.planned_pct) * step)
    return values


def weighted_curve(curves: Mapping[str, Sequence[PlanPoint]], weights: Mapping[str, Fraction]) -> list[PlanPoint]:
    """Sum of ``weights[k] * curves[k]`` (weights normalised here) on the union of the curves' dates.

    A package listed in ``weights`` without a curve counts 0 throughout (it still holds its share).
    """
    total = sum(weights.values(), Fraction(0))
    if total <= 0:
        return []
    days_set = {p.date for package in weights for p in curves.get(package, ())}
    # A curve starting above 0 steps up from 0 on its first day: the day before keeps the sum exact there.
    days_set |= {
        min(curve, key=lambda p: p.date).date - ONE_DAY
        for package in weights
        if (curve := curves.get(package, ())) and min(curve, key=lambda p: p.date).planned_pct > 0
    }
    days = sorted(days_set)
    sums = [Fraction(0)] * len(days)
    for package, weight in weights.items():
        curve = curves.get(package, ())
        if not curve:
            continue
        share = weight / total
        for i, value in enumerate(_sampled(curve, days)):
            sums[i] += share * value
    return [PlanPoint(day, value) for day, value in zip(days, sums, strict=True)]
