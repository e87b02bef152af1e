"""The pure alert decisions: exact thresholds, baselines, coverage, levels with hysteresis, lifecycle."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from uuid import uuid4

import pytest

from central_ingest.alerts.evaluate import (
    PeriodSample,
    PlanPoint,
    ProgressRow,
    Reading,
    frac,
    periods,
    pick_actual,
    planned_at,
    progress_finding,
    rate_finding,
    silence_finding,
    threshold_finding,
    violation_finding,
)
from central_ingest.alerts.lifecycle import Decision, Finding, OpenAlert, decide
from central_ingest.alerts.rules import (
    Level,
    ProgressBehindRule,
    SensorRateRule,
    SensorThresholdRule,
    SourceSilentRule,
    ViolationIncreaseRule,
)

DAY = 86_400
T0 = dt.datetime(2025, 5, 10, 3, 0, tzinfo=dt.UTC)


def _day(count: int, coverage: Fraction = Fraction(1)) -> PeriodSample:
    return PeriodSample(count, coverage * DAY, Fraction(DAY))


VI = ViolationIncreaseRule(id="vi")


def test_exactly_20_percent_does_not_fire_and_more_does() -> None:
    history = [_day(10)] * 30
    assert violation_finding(VI, _day(12), history, "e").state == "clear"
    fired = violation_finding(VI, _day(13), history, "e")
    assert (fired.state, fired.baseline, fired.threshold, fired.value) == (
        "breach",
        Fraction(10),
        Fraction(12),
        Fraction(13),
    )
    assert fired.facts["increase_pct"] == 30
    # 20.1%: a baseline of 1000 puts the limit at exactly 1200.
    big = [_day(1000)] * 30
    assert violation_finding(VI, _day(1200), big, "e").state == "clear"
    assert violation_finding(VI, _day(1201), big, "e").state == "breach"


def test_low_coverage_days_are_left_out_of_the_baseline() -> None:
    history = [_day(10)] * 29 + [_day(0, Fraction(1, 2))]
    finding = violation_finding(VI, _day(13), history, "e")
    assert (finding.state, finding.baseline, finding.facts["good_periods"]) == ("breach", Fraction(10), 29)
    # A day at exactly min_coverage (0.8) counts; just below does not.
    assert violation_finding(VI, _day(13), [_day(10)] * 6 + [_day(10, Fraction(4, 5))], "e").state == "breach"
    below = [_day(10)] * 6 + [_day(10, Fraction(79, 100))]
    assert violation_finding(VI, _day(13), below, "e").status == "insufficient_baseline"


def test_insufficient_baseline_and_undetermined_current_period() -> None:
    assert violation_finding(VI, _day(50), [_day(10)] * 6, "e").status == "insufficient_baseline"
    history = [_day(10)] * 30
    low = violation_finding(VI, _day(5, Fraction(3, 10)), history, "e")
    assert (low.state, low.status) == ("unknown", "undetermined_low_coverage")
    # A count already above the limit fires whatever the coverage: missing coverage only hides violations.
    assert violation_finding(VI, _day(13, Fraction(3, 10)), history, "e").state == "breach"


def test_min_count_guards_tiny_numbers() -> None:
    history = [_day(1)] * 10 + [_day(0)] * 10  # baseline 0.5
    assert violation_finding(VI, _day(4), history, "e").status == "ok"
    assert violation_finding(VI, _day(5), history, "e").state == "breach"


def test_days_start_at_local_midnight() -> None:
    current, previous = periods(T0, "Asia/Ho_Chi_Minh", "1d", 30)
    assert current.start == dt.datetime(2025, 5, 9, 17, 0, tzinfo=dt.UTC)
    assert current.end == dt.datetime(2025, 5, 10, 17, 0, tzinfo=dt.UTC)
    assert len(previous) == 30
    assert previous[0].end == current.start
    assert previous[-1].start == dt.datetime(2025, 4, 9, 17, 0, tzinfo=dt.UTC)
    hour, hours = periods(T0 + dt.timedelta(minutes=30), "Asia/Ho_Chi_Minh", "1h", 2)
    assert (hour.start, hours[1].start) == (T0, T0 - dt.timedelta(hours=2))


def test_floats_are_read_as_the_decimals_they_were_written_as() -> None:
    assert frac(3.3) == Fraction(33, 10)
    assert frac(40.1) - frac(30.0) == Fraction(101, 10)


PB = ProgressBehindRule(id="pb")
PLAN = [PlanPoint(dt.date(2025, 1, 1), Fraction(0)), PlanPoint(dt.date(2025, 1, 11), Fraction(50))]


def _row(day: int, pct: str, *, confirmed: bool = True, confidence: str = "1", hour: int = 12) -> ProgressRow:
    return ProgressRow(
        dt.date(2025, 1, day),
        dt.datetime(2025, 1, day, hour, tzinfo=dt.UTC),
        Fraction(pct),
        Fraction(confidence),
        confirmed,
    )


def test_planned_curve_is_linear_and_flat_outside() -> None:
    assert planned_at(PLAN, dt.date(2024, 12, 31)) == 0
    assert planned_at(PLAN, dt.date(2025, 1, 5)) == 20
    assert planned_at(PLAN, dt.date(2025, 3, 1)) == 50
    assert planned_at([], dt.date(2025, 3, 1)) == 0


def test_confirmed_row_wins_on_its_day_and_later_rows_win() -> None:
    rows = [_row(5, "40", confirmed=False, hour=15), _row(5, "20"), _row(4, "99", confirmed=False)]
    assert pick_actual(rows, dt.date(2025, 1, 5)) == rows[1]
    later = [*rows, _row(6, "30", confirmed=False, confidence="0.9")]
    assert pick_actual(later, dt.date(2025, 1, 6)) == later[3]
    assert pick_actual(later, dt.date(2025, 1, 3)) is None


def test_progress_fires_above_ten_points_not_at_ten() -> None:
    day = dt.date(2025, 1, 11)  # planned 50
    assert progress_finding(PB, PLAN, _row(11, "40"), day).status == "ok"
    behind = progress_finding(PB, PLAN, _row(11, "39.9"), day)
    assert (behind.state, behind.level, behind.value, behind.baseline) == (
        "breach",
        "behind",
        Fraction("39.9"),
        Fraction(50),
    )
    assert behind.facts["gap"] == Fraction("10.1")
    unsure = progress_finding(PB, PLAN, _row(11, "20", confirmed=False, confidence="0.4"), day)
    assert (unsure.level, unsure.severity, unsure.rank) == ("needs_confirmation", "notice", 1)
    assert progress_finding(PB, PLAN, _row(11, "20", confirmed=False, confidence="0.5"), day).level == "behind"
    assert progress_finding(PB, [], None, day).status == "no_plan"
    assert progress_finding(PB, PLAN, None, day).status == "no_data"


WATER = SensorThresholdRule(
    id="wl",
    sensor_kind="water_level",
    metric="water_level_m",
    levels=(
        Level(name="bao_dong_1", value=Decimal("3.3")),
        Level(name="bao_dong_2", value=Decimal("4.5")),
        Level(name="bao_dong_3", value=Decimal("5.5"), severity="critical"),
    ),
    hysteresis=Decimal("0.2"),
    min_duration_s=120,
)


def _series(*values: float, step_s: int = 60) -> list[Reading]:
    return [Reading(T0 + dt.timedelta(seconds=i * step_s), frac(v)) for i, v in enumerate(values)]


def test_a_spike_shorter_than_min_duration_does_not_fire() -> None:
    spike = threshold_finding(WATER, WATER.levels, _series(3.0, 3.0, 6.0), 0)
    assert (spike.state, spike.status, spike.pending_since) == ("clear", "pending", T0 + dt.timedelta(seconds=120))
    held = threshold_finding(WATER, WATER.levels, _series(3.0, 3.3, 3.4, 3.3), 0)
    assert (held.state, held.level, held.value, held.threshold) == (
        "breach",
        "bao_dong_1",
        Fraction("3.3"),
        Fraction("3.3"),
    )


def test_levels_escalate_and_clear_with_hysteresis() -> None:
    levels = WATER.levels
    assert threshold_finding(WATER, levels, _series(4.6, 4.6, 4.7), 1).level == "bao_dong_2"
    assert threshold_finding(WATER, levels, _series(5.5, 5.6, 5.5), 2).level == "bao_dong_3"
    # Below 5.5 but not past 5.5 - 0.2: the open level 3 holds.
    assert threshold_finding(WATER, levels, _series(5.4, 5.4, 5.4), 3).level == "bao_dong_3"
    # Past 5.3 for min_duration: back to level 2.
    assert threshold_finding(WATER, levels, _series(5.2, 5.2, 5.2), 3).level == "bao_dong_2"
    # Past 3.1 only for 60 s: level 1 still holds; for 120 s: resolved.
    assert threshold_finding(WATER, levels, _series(3.2, 3.0, 3.0), 1).level == "bao_dong_1"
    assert threshold_finding(WATER, levels, _series(3.0, 3.0, 3.0), 1).state == "clear"
    assert threshold_finding(WATER, levels, [], 1).status == "no_data"


def test_below_direction_and_instant_fire() -> None:
    dry = SensorThresholdRule(
        id="h", sensors=None, sensor_kind="forest_fire", metric="humidity_pct", direction="below",
        levels=(Level(name="dry", value=Decimal(30)), Level(name="very_dry", value=Decimal(20))),
    )  # fmt: skip
    assert threshold_finding(dry, dry.levels, _series(25.0), 0).level == "dry"
    assert threshold_finding(dry, dry.levels, _series(20.0), 0).level == "very_dry"
    assert threshold_finding(dry, dry.levels, _series(31.0), 1).state == "clear"
    with pytest.raises(ValueError, match="strictly decreasing"):
        SensorThresholdRule(
            id="x", sensor_kind="forest_fire", metric="humidity_pct", direction="below", levels=dry.levels[::-1]
        )


def test_rate_of_rise() -> None:
    rule = SensorRateRule(id="r", sensor_kind="forest_fire", rise=Decimal(8), window_s=300, hysteresis=Decimal(1))
    rising = rate_finding(rule, _series(30.0, 31.0, 35.0, 38.0), 0)
    assert (rising.state, rising.value, rising.threshold) == ("breach", Fraction(8), Fraction(8))
    assert rate_finding(rule, _series(30.0, 37.9), 0).state == "clear"
    # Readings older than the window do not count.
    assert rate_finding(rule, _series(20.0, 30.0, 30.0, 30.0, 30.0, 30.0, 37.0), 0).state == "clear"
    assert rate_finding(rule, _series(30.0, 37.0), 1).state == "breach"  # hysteresis keeps an open alert
    assert rate_finding(rule, _series(30.0, 36.9), 1).state == "clear"


def test_silence() -> None:
    rule = SourceSilentRule(id="s", silent_after_s=600)
    assert silence_finding(rule, T0 - dt.timedelta(seconds=600), T0).state == "clear"
    silent = silence_finding(rule, T0 - dt.timedelta(seconds=601), T0)
    assert (silent.state, silent.value) == ("breach", Fraction(601))
    assert silence_finding(rule, None, T0).state == "breach"


def _open(rank: int = 1, episode: str | None = None) -> OpenAlert:
    return OpenAlert(uuid4(), T0, "l", rank, "warning", episode)


def test_lifecycle_decisions() -> None:
    breach = Finding("breach", "breach", rank=2)
    assert decide(None, False, None, breach) == Decision(None, "open", False)
    assert decide(_open(1), False, None, breach) == Decision(None, "escalate", False)
    assert decide(_open(3), False, None, breach) == Decision(None, "update", False)
    assert decide(_open(2), False, None, breach) == Decision(None, "refresh", False)
    assert decide(_open(2), False, None, Finding("clear", "ok")) == Decision("cleared", "none", False)
    assert decide(_open(2), False, None, Finding("unknown", "no_data")) == Decision(None, "none", False)
    # A new period resolves the old period's alert, then judges afresh.
    new_day = Finding("breach", "breach", rank=1, episode="d2")
    assert decide(_open(1, "d1"), False, None, new_day) == Decision("period_ended", "open", False)
    assert decide(_open(1, "d1"), False, None, Finding("unknown", "x", episode="d2")).resolve == "period_ended"
    # Resolved by hand while in breach: no reopening until it clears or the episode changes.
    assert decide(None, True, None, breach) == Decision(None, "none", True)
    assert decide(None, True, None, Finding("clear", "ok")) == Decision(None, "none", False)
    assert decide(None, True, "d1", new_day) == Decision(None, "open", False)
