"""``projects.actual``: confirmed figures win and calibrate the cameras, the project is the weighted sum of
its packages, and a half-watched project has a correspondingly low confidence."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central_ingest.alerts.evaluate import ProgressRow, pick_actual
from central_ingest.projects.actual import (
    ActualPoint,
    PlanShape,
    actual_on,
    choose_project,
    latest_at,
    package_actuals,
    plan_shape,
    progress_facts,
    project_actual,
)
from central_ingest.projects.plan_model import PackageIn, PlanIn, StoredPlan

D0 = dt.date(2025, 6, 1)
T0 = dt.datetime(2025, 6, 1, 10, 0, tzinfo=dt.UTC)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def row(n: int, pct: float, *, confirmed: bool = False, confidence: float = 0.8, hour: int = 10) -> ProgressRow:
    time = T0 + dt.timedelta(days=n, hours=hour - 10)
    method = "manual" if confirmed else "camera_visual"
    return ProgressRow(day(n), time, Fraction(str(pct)), Fraction(str(confidence)), confirmed, (), method)


def summary(points: list[ActualPoint]) -> list[tuple[int, float, bool, bool]]:
    return [((p.day - D0).days, float(p.percent), p.confirmed, p.calibrated) for p in points]


def test_confirmed_wins_on_its_day_even_against_a_later_estimate() -> None:
    points = package_actuals([row(0, 30), row(0, 45, confirmed=True, hour=9), row(0, 31, hour=16)])
    assert summary(points) == [(0, 45.0, True, False)]
    assert points[0].basis == "confirmed"


def test_later_estimates_are_shifted_by_the_confirmation_offset_until_the_next_one() -> None:
    rows = [
        row(0, 30),
        row(0, 40, confirmed=True),  # the camera read 10 points low that day
        row(1, 32),
        row(2, 95),  # shifted past 100: clamped
        row(3, 50, confirmed=True),  # a new confirmation (the camera's day-2 figure was 95: offset -45)
        row(4, 60),
    ]
    points = package_actuals(rows)
    assert summary(points) == [
        (0, 40.0, True, False),
        (1, 42.0, False, True),
        (2, 100.0, False, True),
        (3, 50.0, True, False),
        (4, 15.0, False, True),
    ]
    assert points[1].estimate == 32
    assert points[1].basis == "calibrated"
    assert summary(package_actuals(rows, calibrate=False))[1] == (1, 32.0, False, False)


def test_without_an_estimate_that_day_the_latest_earlier_one_is_the_reference() -> None:
    points = package_actuals([row(0, 20), row(2, 30, confirmed=True), row(3, 22)])
    assert summary(points)[-1] == (3, 32.0, False, True)


def test_a_confirmation_before_any_estimate_shifts_nothing() -> None:
    points = package_actuals([row(0, 20, confirmed=True), row(1, 25)])
    assert summary(points) == [(0, 20.0, True, False), (1, 25.0, False, False)]


def test_project_is_the_weighted_sum_and_missing_packages_lower_the_confidence() -> None:
    weights = {"mong": 2.0, "tru": 1.0, "dam": 1.0}
    series = {
        "mong": package_actuals([row(0, 40, confidence=0.9)]),
        "tru": package_actuals([row(1, 20, confirmed=True, confidence=1)]),
    }
    point = project_actual(series, weights, day(1))
    assert point is not None
    # 0.5 * 40 + 0.25 * 20 + 0.25 * 0 (dam: no figure yet)
    assert point.percent == 25
    assert point.confidence == Fraction(1, 2) * Fraction("0.9") + Fraction(1, 4)
    assert point.coverage == Fraction(3, 4)
    assert (point.confirmed, point.basis, point.day, point.parts) == (
        False,
        "partly_confirmed",
        day(1),
        ("mong", "tru"),
    )
    # Before tru's figure only mong counts.
    early = project_actual(series, weights, day(0))
    assert early is not None
    assert (early.percent, early.coverage) == (Fraction(20), Fraction(1, 2))
    assert project_actual(series, weights, day(-1)) is None
    assert project_actual(series, {}, day(1)) is None


def test_a_project_all_of_whose_packages_are_confirmed_is_confirmed() -> None:
    series = {p: package_actuals([row(0, 50, confirmed=True, confidence=1)]) for p in ("a", "b")}
    point = project_actual(series, {"a": 1, "b": 3}, day(0))
    assert point is not None
    assert (point.percent, point.confidence, point.confirmed, point.basis) == (
        Fraction(50),
        Fraction(1),
        True,
        "confirmed",
    )


def test_a_project_level_confirmation_wins_when_as_new_as_the_packages() -> None:
    derived = ActualPoint(day(3), Fraction(30), Fraction("0.8"), False, T0 + dt.timedelta(days=3))
    confirmed = package_actuals([row(3, 42, confirmed=True)])
    older = package_actuals([row(1, 42, confirmed=True)])
    assert choose_project(confirmed, derived, day(3)) == confirmed[0]
    assert choose_project(older, derived, day(3)) == derived
    assert choose_project(confirmed, None, day(3)) == confirmed[0]
    assert choose_project([], None, day(3)) is None
    # A project-level estimate never beats the packages.
    estimate = package_actuals([row(3, 90)])
    assert choose_project(estimate, derived, day(3)) == derived


def plan(*packages: PackageIn) -> StoredPlan:
    model = PlanIn(packages=packages, project_name_vi="Cầu Vỹ Dạ", project_name_en="Vy Da bridge")
    return StoredPlan(
        "cau", 1, T0, "", model.points, model.packages, project_name_vi="Cầu Vỹ Dạ", project_name_en="Vy Da bridge"
    )


def package(pid: str, weight: float, *, critical: bool = False) -> PackageIn:
    return PackageIn(
        id=pid, name=f"Hạng mục {pid}", weight=weight, planned_start=D0, planned_finish=day(30), critical=critical
    )


def test_plan_shape_and_actual_on() -> None:
    shape = plan_shape(plan(package("mong", 3, critical=True), package("tru", 1)))
    assert shape.weights == {"mong": 0.75, "tru": 0.25}
    assert (shape.critical, shape.names["tru"], shape.project_name_en) == (("mong",), "Hạng mục tru", "Vy Da bridge")
    assert plan_shape(None) == PlanShape({})
    rows = {"mong": [row(0, 40)], "tru": [row(0, 20), row(0, 60, confirmed=True)], "": [row(0, 10)]}
    project = actual_on(rows, shape, "", day(0))
    assert project is not None
    assert project.percent == 45  # 0.75 * 40 + 0.25 * 60; the project-level estimate is not used
    tru = actual_on(rows, shape, "tru", day(0))
    assert tru is not None
    assert (tru.percent, tru.confirmed) == (Fraction(60), True)
    facts = progress_facts(shape, "tru", tru)
    assert (facts["package_name"], facts["basis"], facts["project_name_vi"]) == (
        "Hạng mục tru",
        "confirmed",
        "Cầu Vỹ Dạ",
    )
    # A plan without packages reads the project rows as before: no calibration.
    old = actual_on({"": [row(0, 10), row(0, 20, confirmed=True), row(1, 15)]}, PlanShape({}), "", day(1))
    assert old is not None
    assert (old.percent, old.calibrated) == (Fraction(15), False)


rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.integers(0, 23),
        st.integers(0, 1000).map(lambda n: n / 10),
        st.booleans(),
        st.integers(0, 100).map(lambda n: n / 100),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(rows_strategy, st.integers(-1, 7))
def test_without_calibration_the_series_agrees_with_pick_actual(
    raw: list[tuple[int, int, float, bool, float]], n: int
) -> None:
    rows = [row(d, pct, confirmed=c, confidence=conf, hour=h) for d, h, pct, c, conf in raw]
    expected = pick_actual(rows, day(n))
    got = latest_at(package_actuals(rows, calibrate=False), day(n))
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.percent, got.confirmed, got.day) == (expected.percent, expected.confirmed, expected.day)


@settings(max_examples=200, deadline=None)
@given(rows_strategy, rows_strategy, st.integers(1, 5), st.integers(1, 5), st.integers(0, 7))
def test_project_figure_is_bounded_by_its_parts(
    a: list[tuple[int, int, float, bool, float]],
    b: list[tuple[int, int, float, bool, float]],
    wa: int,
    wb: int,
    n: int,
) -> None:
    series = {
        name: package_actuals([row(d, pct, confirmed=c, confidence=conf, hour=h) for d, h, pct, c, conf in raw])
        for name, raw in (("a", a), ("b", b))
    }
    point = project_actual(series, {"a": wa, "b": wb}, day(n))
    found = {name: latest_at(series[name], day(n)) for name in ("a", "b")}
    parts = [p for p in found.values() if p is not None]
    if not parts:
        assert point is None
        return
    assert point is not None
    assert 0 <= point.percent <= max(p.percent for p in parts)
    assert 0 <= point.confidence <= point.coverage <= 1
    shares = {"a": Fraction(wa, wa + wb), "b": Fraction(wb, wa + wb)}
    assert point.coverage == sum(share for name, share in shares.items() if found[name] is not None)
    assert all(0 <= p.percent <= 100 for points in series.values() for p in points)


@pytest.mark.parametrize("confirmed", [True, False])
def test_as_row_keeps_what_the_rule_reads(confirmed: bool) -> None:
    [point] = package_actuals([row(0, 33, confirmed=confirmed)])
    back = point.as_row()
    assert (back.day, back.percent, back.confirmed, back.method) == (point.day, point.percent, confirmed, point.method)
