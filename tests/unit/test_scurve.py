"""Planned S-curves: the generated package shape, the weighted project curve, and the plan model's rules."""

from __future__ import annotations

import datetime as dt
import itertools
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from central_ingest.alerts.evaluate import PlanPoint, planned_at
from central_ingest.projects.plan_model import PackageIn, PlanIn, PlanPointIn, StoredPlan
from central_ingest.projects.scurve import package_s_curve, smoothstep, weighted_curve

D0 = dt.date(2025, 3, 3)
APPROVED = dt.datetime(2025, 2, 20, 1, 0, tzinfo=dt.UTC)


def stored(plan: PlanIn) -> StoredPlan:
    return StoredPlan("p", 1, APPROVED, "", plan.points, plan.packages)


def test_smoothstep_is_0_to_1_symmetric_and_flat_at_both_ends() -> None:
    assert smoothstep(Fraction(0)) == 0
    assert smoothstep(Fraction(1)) == 1
    assert smoothstep(Fraction(1, 2)) == Fraction(1, 2)
    assert smoothstep(Fraction(-1)) == 0
    assert smoothstep(Fraction(2)) == 1
    t = Fraction(1, 5)
    assert smoothstep(t) + smoothstep(1 - t) == 1  # symmetric about mid-duration
    # Slow start and finish: the first and last tenth do less work than a straight line would.
    assert smoothstep(Fraction(1, 10)) < Fraction(1, 10)
    assert 1 - smoothstep(Fraction(9, 10)) < Fraction(1, 10)


@given(st.integers(0, 400), st.integers(1, 30))
def test_generated_curve_is_0_at_start_100_at_finish_and_increasing(span: int, step: int) -> None:
    finish = D0 + dt.timedelta(days=span)
    curve = package_s_curve(D0, finish, step)
    assert curve[-1] == PlanPoint(finish, Fraction(100))
    if span:
        assert curve[0] == PlanPoint(D0, Fraction(0))
    assert all(b.date - a.date <= dt.timedelta(days=step) for a, b in itertools.pairwise(curve))
    assert all(b.planned_pct > a.planned_pct for a, b in itertools.pairwise(curve))
    # As the alert engine reads it: 0 before the start, 100 from the finish on, never going down.
    days = [D0 + dt.timedelta(days=d) for d in range(-3, span + 4)]
    values = [planned_at(curve, day) for day in days]
    assert values[0] == 0
    assert values[-1] == 100
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_generated_curve_samples_weekly_plus_the_finish() -> None:
    curve = package_s_curve(D0, D0 + dt.timedelta(days=30))
    assert [(p.date - D0).days for p in curve] == [0, 7, 14, 21, 28, 30]
    assert abs(curve[2].planned_pct - 100 * smoothstep(Fraction(14, 30))) <= Fraction(1, 2_000_000)
    assert curve[2].planned_pct.denominator <= 1_000_000
    assert package_s_curve(D0, D0) == [PlanPoint(D0, Fraction(100))]
    with pytest.raises(ValueError, match="before start"):
        package_s_curve(D0, D0 - dt.timedelta(days=1))


curves_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 100)), min_size=1, max_size=8),
    min_size=1,
    max_size=5,
)


@given(curves_strategy, st.lists(st.integers(1, 50), min_size=5, max_size=5))
def test_weighted_curve_equals_the_weighted_sum_on_every_day(raw: list[list[tuple[int, int]]], w: list[int]) -> None:
    curves: dict[str, list[PlanPoint]] = {}
    for i, points in enumerate(raw):
        by_day = dict(sorted(points))  # one value per day
        values = sorted(by_day.values())  # cumulative: non-decreasing
        curves[f"k{i}"] = [
            PlanPoint(D0 + dt.timedelta(days=d), Fraction(v)) for d, v in zip(sorted(by_day), values, strict=True)
        ]
    weights = {package: Fraction(w[i]) for i, package in enumerate(curves)}
    project = weighted_curve(curves, weights)
    total = sum(weights.values())
    for offset in range(-2, 205):
        day = D0 + dt.timedelta(days=offset)
        expected = sum(weights[k] / total * planned_at(c, day) for k, c in curves.items())
        assert planned_at(project, day) == expected  # exact: the union of dates is enough


def test_a_package_without_a_curve_keeps_its_share() -> None:
    curves = {"a": [PlanPoint(D0, Fraction(100))]}
    project = weighted_curve(curves, {"a": Fraction(1), "b": Fraction(3)})
    assert project == [PlanPoint(D0 - dt.timedelta(days=1), Fraction(0)), PlanPoint(D0, Fraction(25))]
    assert weighted_curve(curves, {}) == []


def _package(pid: str, weight: float, days: int | None = None, critical: bool = False) -> PackageIn:
    finish = None if days is None else D0 + dt.timedelta(days=days)
    return PackageIn(
        id=pid, name=pid, weight=weight, planned_start=D0 if days is not None else None, planned_finish=finish,
        critical=critical,
    )  # fmt: skip


def test_plan_curves_explicit_generated_and_weighted() -> None:
    plan = PlanIn(
        packages=(_package("mong", 1, 28, critical=True), _package("mai", 3, 56)),
        points=(
            PlanPointIn(package_id="mong", date=D0 + dt.timedelta(days=14), planned_pct=40),
            PlanPointIn(package_id="mong", date=D0 + dt.timedelta(days=21), planned_pct=90),
        ),
    )
    s = stored(plan)
    assert s.weights() == {"mong": 0.25, "mai": 0.75}
    assert s.critical_packages() == ("mong",)
    # Explicit points, anchored at 0 on the start and 100 on the finish.
    assert [(p.date - D0).days for p in s.curve("mong")] == [0, 14, 21, 28]
    assert [p.planned_pct for p in s.curve("mong")] == [0, 40, 90, 100]
    assert s.curve("mai") == package_s_curve(D0, D0 + dt.timedelta(days=56))
    project = s.curve("")
    for offset in range(60):
        day = D0 + dt.timedelta(days=offset)
        expected = Fraction(1, 4) * planned_at(s.curve("mong"), day) + Fraction(3, 4) * planned_at(s.curve("mai"), day)
        assert planned_at(project, day) == expected
    assert s.curve("nope") == []
    assert list(s.curves()) == ["", "mong", "mai"]
    body = s.as_json()
    assert body["packages"][0]["weight_share"] == 0.25
    assert body["curves"]["mong"][-1] == {"date": "2025-03-31", "planned_pct": 100.0}


def test_explicit_project_points_win_and_old_plans_read_as_before() -> None:
    points = (
        PlanPointIn(date=D0, planned_pct=0),
        PlanPointIn(date=D0 + dt.timedelta(days=10), planned_pct=50),
        PlanPointIn(package_id="tru", date=D0, planned_pct=80),
    )
    old = stored(PlanIn(points=points))
    assert old.weights() == {}
    assert old.critical_packages() == ()
    assert old.curve("") == [PlanPoint(D0, Fraction(0)), PlanPoint(D0 + dt.timedelta(days=10), Fraction(50))]
    assert old.curve("tru") == [PlanPoint(D0, Fraction(80))]
    with_packages = stored(PlanIn(points=points[:2], packages=(_package("a", 1, 5),)))
    assert with_packages.curve("") == old.curve("")


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({}, "a plan needs points, or packages"),
        ({"packages": [{"id": "a", "weight": 0}]}, "greater than 0"),
        (
            {"packages": [{"id": "a", "weight": 1, "planned_start": "2025-03-10", "planned_finish": "2025-03-01"}]},
            "planned_finish 2025-03-01 is before planned_start 2025-03-10",
        ),
        ({"packages": [{"id": "a", "weight": 1, "planned_start": "2025-03-10"}]}, "give both"),
        ({"packages": [{"id": "a", "weight": 1}]}, "package a has neither points nor planned_start"),
        (
            {
                "packages": [{"id": "a", "weight": 1}],
                "points": [{"package_id": "b", "date": "2025-03-01", "planned_pct": 5}],
            },
            "points name undeclared packages: b",
        ),
        (
            {
                "points": [
                    {"package_id": "a", "date": "2025-03-01", "planned_pct": 50},
                    {"package_id": "a", "date": "2025-04-01", "planned_pct": 40},
                ]
            },
            "package a: planned % goes down from 50 on 2025-03-01 to 40 on 2025-04-01",
        ),
        (
            {
                "packages": [
                    {"id": "a", "weight": 1, "planned_start": "2025-03-01", "planned_finish": "2025-03-02"},
                    {"id": "a", "weight": 2, "planned_start": "2025-03-01", "planned_finish": "2025-03-02"},
                ]
            },
            "package ids must be unique: a",
        ),
    ],
)
def test_inconsistent_plans_are_refused_with_the_reason(plan: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PlanIn.model_validate(plan)


def test_every_problem_of_a_plan_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        PlanIn.model_validate(
            {
                "packages": [{"id": "a", "weight": 1}, {"id": "b", "weight": 1}],
                "points": [
                    {"package_id": "c", "date": "2025-03-01", "planned_pct": 5},
                    {"date": "2025-03-01", "planned_pct": 9},
                    {"date": "2025-03-02", "planned_pct": 8},
                ],
            }
        )
    text = str(caught.value)
    for part in ("undeclared packages: c", "package a has neither", "package b has neither", "the project: planned"):
        assert part in text
