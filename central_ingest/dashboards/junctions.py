"""The violation_increase rule made visible: per junction and period, the count, the trailing average and the
+X% line, computed by the rule's own code (``alerts.evaluate.periods``, ``alerts.inputs.violation_samples``,
``alerts.evaluate.violation_finding``), so the dashboard can never show a number the rule does not see.

Period k (0 = the one holding ``now``) is judged as the rule judges it while k is running: its count against
the ``window_periods`` periods before it. One database read covers every period shown and their windows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import psycopg

from central_ingest.alerts import evaluate, inputs
from central_ingest.alerts.lifecycle import Finding
from central_ingest.alerts.rules import AlertRulesConfig, Junction, ViolationIncreaseRule

Conn = psycopg.AsyncConnection[Any]
MAX_PERIODS_SHOWN = 120
"""Most periods one answer carries (120 days, or 5 days of a 1 h rule): bounds the read and the answer."""


@dataclass(frozen=True)
class PeriodView:
    """One period as the rule judges it."""

    period: evaluate.Period
    sample: evaluate.PeriodSample
    finding: Finding


def watching_rule(config: AlertRulesConfig, junction_id: str) -> ViolationIncreaseRule | None:
    """The first enabled violation_increase rule that watches the junction (the one the page draws)."""
    for rule in config.rules:
        if (
            isinstance(rule, ViolationIncreaseRule)
            and rule.enabled
            and any(j.id == junction_id for j in config.junctions_of(rule))
        ):
            return rule
    return None


async def junction_periods(
    conn: Conn, rule: ViolationIncreaseRule, junction: Junction, *, now: dt.datetime, timezone: str, shown: int
) -> list[PeriodView]:
    """The ``shown`` periods up to the one holding ``now``, oldest first, each with the rule's Finding."""
    if not 1 <= shown <= MAX_PERIODS_SHOWN:
        raise ValueError(f"periods shown must be 1..{MAX_PERIODS_SHOWN}, not {shown}")
    current, history = evaluate.periods(now, timezone, rule.period, shown - 1 + rule.window_periods)
    newest_first = [current, *history]
    samples = await inputs.violation_samples(conn, junction.cameras, rule.categories, newest_first, now)
    views = []
    for k in range(shown):
        window = samples[k + 1 : k + 1 + rule.window_periods]
        finding = evaluate.violation_finding(rule, samples[k], window, episode=newest_first[k].start.isoformat())
        views.append(PeriodView(newest_first[k], samples[k], finding))
    return views[::-1]


def _number(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def period_json(view: PeriodView) -> dict[str, Any]:
    """One period for the page: the numbers, and whether the count is above the line and whether it fires."""
    finding = view.finding
    threshold = finding.threshold
    return {
        "start": view.period.start.isoformat(),
        "end": view.period.end.isoformat(),
        "count": view.sample.count,
        "coverage": float(view.sample.coverage),
        "baseline": _number(finding.baseline),
        "threshold": _number(threshold),
        "good_periods": finding.facts.get("good_periods"),
        "above_threshold": threshold is not None and Fraction(view.sample.count) > threshold,
        "state": finding.state,
        "status": finding.status,
    }


def rule_json(rule: ViolationIncreaseRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "period": rule.period,
        "window_periods": rule.window_periods,
        "threshold_pct": float(rule.threshold_pct),
        "min_coverage": float(rule.min_coverage),
        "min_baseline_periods": rule.min_baseline_periods,
        "min_count": rule.min_count,
        "categories": list(rule.categories),
        "severity": rule.severity,
    }


def junction_json(
    junction: Junction, rule: ViolationIncreaseRule | None, views: Sequence[PeriodView]
) -> dict[str, Any]:
    return {
        "junction_id": junction.id,
        "name_vi": junction.name_vi or junction.name_en or junction.id,
        "name_en": junction.name_en or junction.name_vi or junction.id,
        "cameras": [{"agent_id": c.agent_id, "source_id": c.source_id} for c in junction.cameras],
        "rule": None if rule is None else rule_json(rule),
        "periods": [period_json(view) for view in views],
    }
