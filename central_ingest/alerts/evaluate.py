"""Pure decision logic of every rule kind: numbers in, a ``lifecycle.Finding`` out. No I/O.

Exactness: every comparison is made on ``fractions.Fraction``. Database floats are read as the
decimal they were written as (``frac``), configured thresholds are ``Decimal`` (exact), so
"exactly 20% more does not fire, 20.1% does" holds without a rounding epsilon.

The precise definitions (the baseline of violation_increase above all) are in docs/alerts.md;
keep the two in step.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from zoneinfo import ZoneInfo

from central_ingest.alerts.lifecycle import Finding, FindingState
from central_ingest.alerts.notice import Severity
from central_ingest.alerts.rules import (
    PERIOD_SECONDS,
    Level,
    ProgressBehindRule,
    SensorRateRule,
    SensorThresholdRule,
    SourceSilentRule,
    ViolationIncreaseRule,
)

HUNDRED = Fraction(100)


def frac(value: float | int | Fraction) -> Fraction:
    """The decimal a float was written as (``repr``: the shortest string that reads back as the same float).

    ``Fraction(3.3)`` is 3.2999999999999998..., which would miss a configured level of 3.3; the database's
    doubles came from decimal text (JSON, a form), so reading them back as that decimal is the exact intent.
    """
    if isinstance(value, Fraction | int):
        return Fraction(value)
    return Fraction(repr(value))


# --- violation_increase -------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime


def periods(now: dt.datetime, timezone: str, period: str, previous: int) -> tuple[Period, tuple[Period, ...]]:
    """The period holding ``now`` and the ``previous`` full periods before it (newest first), in UTC.

    Days start at local midnight of ``timezone`` (so a DST day is 23 or 25 h long); hours are whole UTC hours
    shifted by the zone's offset, i.e. local clock hours.
    """
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)

    def bounds(index: int) -> Period:
        if period == "1d":
            day = local.date() - dt.timedelta(days=index)
            start = dt.datetime.combine(day, dt.time(0), zone)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
        else:
            hour = local.replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)
            start = hour - dt.timedelta(seconds=PERIOD_SECONDS[period] * index)
            end = start + dt.timedelta(seconds=PERIOD_SECONDS[period])
        return Period(start.astimezone(dt.UTC), end.astimezone(dt.UTC))

    return bounds(0), tuple(bounds(i) for i in range(1, previous + 1))


@dataclass(frozen=True)
class PeriodSample:
    """A junction's violations in one period and how much of it its cameras really analysed."""

    count: int
    analysed_s: Fraction
    expected_s: Fraction

    @property
    def coverage(self) -> Fraction:
        if self.expected_s <= 0:
            return Fraction(0)
        return min(Fraction(1), self.analysed_s / self.expected_s)


def violation_finding(
    rule: ViolationIncreaseRule, current: PeriodSample, history: Sequence[PeriodSample], episode: str
) -> Finding:
    """C = ``current.count``; B = mean count of the ``history`` periods with coverage >= min_coverage."""
    good = [sample for sample in history if sample.coverage >= rule.min_coverage]
    window = f"{rule.window_periods}x{rule.period}"
    facts = {
        "count": current.count,
        "good_periods": len(good),
        "window_periods": rule.window_periods,
        "period": rule.period,
        "threshold_pct": Fraction(rule.threshold_pct),
        "coverage": current.coverage,
    }
    value = Fraction(current.count)
    if len(good) < rule.min_baseline_periods:
        return Finding("unknown", "insufficient_baseline", value=value, window=window, episode=episode, facts=facts)
    baseline = Fraction(sum(sample.count for sample in good), len(good))
    limit = baseline * (1 + Fraction(rule.threshold_pct) / HUNDRED)

    def finding(state: FindingState, status: str, **extra: object) -> Finding:
        return Finding(
            state, status, level="increase" if state == "breach" else None, rank=1 if state == "breach" else 0,
            severity=rule.severity, value=value, baseline=baseline, threshold=limit, window=window, episode=episode,
            facts={**facts, **extra},
        )  # fmt: skip

    if value > limit and current.count >= rule.min_count:
        return finding("breach", "breach", increase_pct=(value - baseline) / baseline * HUNDRED if baseline else None)
    if current.coverage < rule.min_coverage:
        # Missing coverage can only hide violations: a count below the limit proves nothing.
        return finding("unknown", "undetermined_low_coverage")
    return finding("clear", "ok")


# --- progress_behind ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanPoint:
    date: dt.date
    planned_pct: Fraction


@dataclass(frozen=True)
class ProgressRow:
    """One stored progress figure; ``evidence`` holds media links, ``keyframes`` the SHA-256 of uploaded images."""

    day: dt.date
    time: dt.datetime
    percent: Fraction
    confidence: Fraction
    confirmed: bool
    evidence: tuple[str, ...] = ()
    method: str = ""
    note: str = ""
    keyframes: tuple[str, ...] = ()


def planned_at(points: Sequence[PlanPoint], day: dt.date) -> Fraction:
    """Linear between plan points; 0 before the first, the last value after the last."""
    ordered = sorted(points, key=lambda p: p.date)
    if not ordered or day < ordered[0].date:
        return Fraction(0)
    for before, after in itertools.pairwise(ordered):
        if before.date <= day < after.date:
            span = (after.date - before.date).days
            step = Fraction((day - before.date).days, span)
            return before.planned_pct + (after.planned_pct - before.planned_pct) * step
    return ordered[-1].planned_pct


def pick_actual(rows: Sequence[ProgressRow], day: dt.date) -> ProgressRow | None:
    """The latest row at or before ``day``; on the same day a confirmed row wins over unconfirmed ones."""
    eligible = [row for row in rows if row.day <= day]
    return max(eligible, key=lambda r: (r.day, r.confirmed, r.time), default=None)


def progress_finding(
    rule: ProgressBehindRule, points: Sequence[PlanPoint], actual: ProgressRow | None, day: dt.date
) -> Finding:
    """Breach when planned - actual > threshold_points; a low-confidence estimate only asks for confirmation."""
    window = day.isoformat()
    if not points:
        return Finding("unknown", "no_plan", window=window)
    planned = planned_at(points, day)
    if actual is None:
        return Finding("unknown", "no_data", baseline=planned, window=window)
    gap = planned - actual.percent
    facts = {"gap": gap, "date": day, "confidence": actual.confidence, "confirmed": actual.confirmed}

    def finding(state: FindingState, status: str, level: str | None, rank: int, severity: Severity) -> Finding:
        return Finding(
            state, status, level, rank, severity, value=actual.percent, baseline=planned,
            threshold=Fraction(rule.threshold_points), window=window, facts=facts, evidence=actual.evidence,
        )  # fmt: skip

    if gap <= rule.threshold_points:
        return finding("clear", "ok", None, 0, rule.severity)
    if not actual.confirmed and actual.confidence < rule.min_confidence:
        return finding("breach", "needs_confirmation", "needs_confirmation", 1, "notice")
    return finding("breach", "breach", "behind", 2, rule.severity)


# --- sensor_threshold and sensor_rate -----------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    time: dt.datetime
    value: Fraction


def held_since(readings: Sequence[Reading], holds: Callable[[Fraction], bool]) -> dt.datetime | None:
    """Start of the trailing run of readings for which ``holds`` is true; None when the latest fails it."""
    start: dt.datetime | None = None
    for reading in reversed(readings):
        if not holds(reading.value):
            break
        start = reading.time
    return start


def threshold_finding(
    rule: SensorThresholdRule, levels: Sequence[Level], readings: Sequence[Reading], open_rank: int
) -> Finding:
    """The highest level held for min_duration_s (or still held by the open alert, hysteresis considered).

    ``readings`` (oldest first, event times) must cover [latest - min_duration_s, latest] plus the reading just
    before: a level counts as reached for min_duration_s when a run of readings at or past it started at least
    min_duration_s before the latest one. Clearing a level needs the same of readings past level -/+ hysteresis.
    """
    if not readings:
        return Finding("unknown", "no_data")
    latest = readings[-1]
    need = dt.timedelta(seconds=rule.min_duration_s)
    above = rule.direction == "above"
    hysteresis = Fraction(rule.hysteresis)
    active_rank = 0
    pending_since: dt.datetime | None = None
    for rank, level in enumerate(levels, start=1):
        limit = Fraction(level.value)
        clear_at = limit - hysteresis if above else limit + hysteresis
        reached = held_since(readings, _at_or_past(limit, above))
        cleared = held_since(readings, _back_past(clear_at, above))
        on = reached is not None and latest.time - reached >= need
        off = cleared is not None and latest.time - cleared >= need
        if on or (rank <= open_rank and not off):
            active_rank = rank
        elif reached is not None and rank > open_rank and pending_since is None:
            pending_since = reached
    facts = {"metric": rule.metric, "reading_time": latest.time}
    if active_rank == 0:
        status = "pending" if pending_since is not None else "ok"
        return Finding("clear", status, value=latest.value, pending_since=pending_since, facts=facts)
    level = levels[active_rank - 1]
    return Finding(
        "breach",
        "breach",
        level=level.name,
        rank=active_rank,
        severity=level.severity,
        value=latest.value,
        threshold=Fraction(level.value),
        window=f"{rule.min_duration_s:g}s" if rule.min_duration_s else None,
        pending_since=pending_since,
        facts={**facts, "level_label_vi": level.label_vi, "level_label_en": level.label_en},
    )


def level_reached(levels: Sequence[Level], value: float, *, above: bool) -> Level | None:
    """The most severe of ``levels`` (least to most severe) that the reading ``value`` is at or past, compared as
    ``threshold_finding`` compares (the float read as the decimal it was written as), so the map and the sensors
    page show a reading at the level the alert rule sees."""
    reading = frac(value)
    hit: Level | None = None
    for level in levels:
        if _at_or_past(Fraction(level.value), above)(reading):
            hit = level
    return hit


def _at_or_past(limit: Fraction, above: bool) -> Callable[[Fraction], bool]:
    return (lambda v: v >= limit) if above else (lambda v: v <= limit)


def _back_past(limit: Fraction, above: bool) -> Callable[[Fraction], bool]:
    return (lambda v: v < limit) if above else (lambda v: v > limit)


def rate_finding(rule: SensorRateRule, readings: Sequence[Reading], open_rank: int) -> Finding:
    """Rise = latest value - lowest value in [latest - window_s, latest]; fires at rise >= ``rule.rise``."""
    if not readings:
        return Finding("unknown", "no_data")
    latest = readings[-1]
    since = latest.time - dt.timedelta(seconds=rule.window_s)
    rise = latest.value - min(r.value for r in readings if since <= r.time <= latest.time)
    limit = Fraction(rule.rise)
    facts = {"metric": rule.metric, "latest": latest.value, "window_s": rule.window_s}
    window = f"{rule.window_s}s"
    if rise >= limit or (open_rank > 0 and rise >= limit - Fraction(rule.hysteresis)):
        return Finding(
            "breach", "breach", rule.level_name, 1, rule.severity, value=rise, threshold=limit, window=window,
            facts=facts,
        )  # fmt: skip
    return Finding("clear", "ok", value=rise, threshold=limit, window=window, facts=facts)


# --- source_silent ------------------------------------------------------------------------------


def silence_finding(rule: SourceSilentRule, last_event_time: dt.datetime | None, now: dt.datetime) -> Finding:
    """Breach when nothing was heard for longer than silent_after_s (by event time), or never."""
    limit = Fraction(rule.silent_after_s)
    facts = {"last_event_time": last_event_time}
    if last_event_time is None:
        return Finding("breach", "breach", "silent", 1, rule.severity, threshold=limit, facts=facts)
    silent = now - last_event_time
    silent_s = Fraction(silent.days * 86_400 + silent.seconds) + Fraction(silent.microseconds, 1_000_000)
    if silent_s > limit:
        return Finding("breach", "breach", "silent", 1, rule.severity, value=silent_s, threshold=limit, facts=facts)
    return Finding("clear", "ok", value=max(Fraction(0), silent_s), threshold=limit, facts=facts)
