"""Day figures and day-to-day smoothing: robust medians, no lag on steady work, and the published figure never
falling more than the tolerance (property-tested)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.progress.config import SmoothingConfig
from edge_agent.progress.smoothing import DaySmoother, day_figure, theil_sen_slope, weighted_median

DAY0 = dt.date(2026, 3, 2)
CLOSE = dt.datetime(2026, 3, 2, 10, 30, tzinfo=dt.UTC)
raw_days = st.lists(st.one_of(st.none(), st.floats(0, 100, allow_nan=False)), min_size=1, max_size=40)


def test_weighted_median() -> None:
    assert weighted_median([1, 2, 3], [1, 1, 1]) == 2
    assert weighted_median([1, 2, 3], [1, 1, 10]) == 3
    assert weighted_median([5, 1], [0, 0]) == 1  # all weights zero: plain (lower) median
    assert weighted_median([10, 20, 90], [1, 1, 0.1]) in (10, 20)
    with pytest.raises(ValueError, match="nothing"):
        weighted_median([], [])


def test_theil_sen_ignores_an_outlier() -> None:
    x = [0.0, 1, 2, 3, 4, 5]
    y = [0.0, 2, 4, 60, 8, 10]
    assert theil_sen_slope(x, y) == pytest.approx(2.0)
    assert theil_sen_slope([1.0, 1.0], [0.0, 5.0]) == 0.0


def test_day_figure_projects_steady_work_to_the_close() -> None:
    hours = (-9.0, -7.0, -5.0, -3.0, -1.0)
    readings = [(CLOSE + dt.timedelta(hours=h), 50.0 + 1.0 * h, 1.0) for h in hours]  # 1 point/hour, 50 at close
    assert day_figure(readings, CLOSE, max_rise_per_day=25.0) == pytest.approx(50.0)
    # A flat day is its median; one wild frame does not move it.
    flat = [(CLOSE + dt.timedelta(hours=h), 30.0, 1.0) for h in hours] + [(CLOSE, 95.0, 1.0)]
    assert day_figure(flat, CLOSE, max_rise_per_day=25.0) == pytest.approx(30.0)


def test_day_figure_trend_is_never_negative_nor_faster_than_the_cap() -> None:
    falling = [(CLOSE + dt.timedelta(hours=h), 50.0 - 5 * h, 1.0) for h in (-8.0, -4.0, -1.0)]
    assert day_figure(falling, CLOSE, 25.0) == pytest.approx(70.0)  # the plain median, not projected downwards
    steep = [(CLOSE + dt.timedelta(hours=h), 80.0 + 10 * h, 1.0) for h in (-8.0, -4.0, -1.0)]  # 0, 40, 70
    # slope capped at 25 points / 10 hours: median of 0 + 20, 40 + 10, 70 + 2.5
    assert day_figure(steep, CLOSE, 25.0) == pytest.approx(50.0)


def feed(smoother: DaySmoother, raws: list[float | None]) -> list[float]:
    return [smoother.add_day(DAY0 + dt.timedelta(days=i), raw).percent for i, raw in enumerate(raws)]


def test_steady_work_is_not_lagged_and_a_stall_does_not_overshoot() -> None:
    smoother = DaySmoother(SmoothingConfig(window_days=3))
    rising: list[float | None] = [10.0 * i for i in range(6)]
    rising += [50.0] * 4
    published = feed(smoother, rising)
    assert published[3:6] == pytest.approx([30, 40, 50])  # no lag once the trend is seen
    assert published[6:] == pytest.approx([50] * 4)  # the stall stops the projection at once


def test_one_odd_day_is_ignored_both_ways() -> None:
    smoother = DaySmoother(SmoothingConfig(window_days=3, max_decrease_points=2.0))
    published = feed(smoother, [20.0, 20.0, 20.0, 80.0, 20.0, 20.0, 0.0, 20.0])
    assert published == pytest.approx([20.0] * 8)


def test_carried_day_keeps_the_figure() -> None:
    smoother = DaySmoother(SmoothingConfig())
    assert feed(smoother, [None]) == [0.0]
    first = smoother.add_day(DAY0 + dt.timedelta(days=1), 40.0)
    carried = smoother.add_day(DAY0 + dt.timedelta(days=2), None)
    assert (carried.percent, carried.carried, first.carried) == (40.0, True, False)


@settings(max_examples=200, deadline=None)
@given(raws=raw_days, window=st.integers(1, 7), drop=st.floats(0, 10), rise=st.floats(1, 50))
def test_published_never_drops_more_than_tolerance_nor_rises_over_cap(
    raws: list[float | None], window: int, drop: float, rise: float
) -> None:
    smoother = DaySmoother(
        SmoothingConfig(window_days=window, max_decrease_points=drop, max_increase_points_per_day=rise)
    )
    peak: float | None = None
    measured: tuple[int, float] | None = None  # (day, figure) of the last measured day
    for i, raw in enumerate(raws):
        result = smoother.add_day(DAY0 + dt.timedelta(days=i), raw)
        value = result.percent
        assert 0.0 <= value <= 100.0
        if peak is not None:
            assert value >= peak - drop - 1e-9
        if measured is not None and not result.carried:
            assert value <= measured[1] + rise * (i - measured[0]) + 1e-9
        if not result.carried:
            measured = (i, value)
            peak = value if peak is None else max(peak, value)


@settings(max_examples=100, deadline=None)
@given(before=raw_days, after=raw_days)
def test_export_restore_continues_exactly(before: list[float | None], after: list[float | None]) -> None:
    config = SmoothingConfig()
    original = DaySmoother(config)
    feed(original, before)
    restored = DaySmoother(config)
    restored.restore(original.export())
    start = DAY0 + dt.timedelta(days=len(before))
    for i, raw in enumerate(after):
        day = start + dt.timedelta(days=i)
        assert restored.add_day(day, raw) == original.add_day(day, raw)


@pytest.mark.parametrize(
    "state",
    [
        {"recent": "x", "peak": None, "last": None},
        {"recent": [["2026-03-02", 120.0]], "peak": None, "last": None},
        {"recent": [["not a date", 10.0]], "peak": None, "last": None},
        {"recent": [], "peak": "high", "last": None},
        {"recent": [], "peak": True, "last": None},
    ],
)
def test_restore_refuses_malformed_state(state: dict[str, object]) -> None:
    smoother = DaySmoother(SmoothingConfig())
    feed(smoother, [10.0])
    with pytest.raises(ValueError, match="smoothing state"):
        smoother.restore(state)
    assert smoother.last == 10.0  # unchanged
