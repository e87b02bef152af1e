"""Issue 8's proof on a generated site sequence: the progress estimator against the ground truth.

One 60-day sequence (seed 0: 720 frames, night, rain, fog, dawn/dusk light, worker crowds and a parked truck)
through ``ProgressEstimator`` with the product defaults, scored like ``python -m benchmarks.progress_accuracy``
(which runs three seeds and two baselines): within 10 points of the truth on each package, never falling more
than ``smoothing.max_decrease_points``, the frames of night, fog and rain never used, and central's
"chậm tiến độ" rule firing on the day the TRUE gap crosses 10 points (exactly that day: offset 0).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from benchmarks.progress_accuracy import TARGET_POINTS, alert_days, evaluate_seed, package_scores, variant_config
from devstack.site_scenes import default_scenario, true_alert_day

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def full_run() -> dict[str, Any]:
    return evaluate_seed(default_scenario(0), "full")


def _table(result: dict[str, Any]) -> str:
    return "; ".join(
        f"{pid}: max {s['max_abs_error']} worst {s['worst_day']} fall {s['largest_decrease']}"
        for pid, s in result["packages"].items()
    )


def test_every_package_is_within_ten_points_of_the_truth(full_run: dict[str, Any]) -> None:
    for pid, scores in full_run["packages"].items():
        assert scores["days"] >= 55, (pid, scores)
        assert scores["max_abs_error"] <= TARGET_POINTS, _table(full_run)


def test_no_published_figure_falls_more_than_the_tolerance(full_run: dict[str, Any]) -> None:
    tolerance = variant_config(default_scenario(0), "full").smoothing.max_decrease_points
    for pid, scores in full_run["packages"].items():
        assert scores["largest_decrease"] <= tolerance + 1e-9, (pid, scores)


def test_night_fog_and_rain_frames_are_never_used_and_clear_ones_are(full_run: dict[str, Any]) -> None:
    conditions = full_run["conditions"]
    for condition in ("night", "fog", "rain"):
        assert conditions.get(condition, {}).get("used", 0) == 0, (condition, conditions[condition])
    assert conditions["night"]["skipped"] == sum(conditions["night"].values())
    clear = conditions["clear"]
    assert clear.get("used", 0) >= 0.9 * sum(v for k, v in clear.items() if ":" not in k), clear


def test_the_alert_fires_on_the_day_the_true_gap_crosses_ten_points(full_run: dict[str, Any]) -> None:
    alert = full_run["alert"]
    scenario = default_scenario(0)
    true_day = true_alert_day(scenario)
    assert true_day is not None
    assert alert["true_day"] == (scenario.start + dt.timedelta(days=true_day)).isoformat()
    assert alert["first_behind_day"] is not None, alert["statuses"]
    assert alert["offset_days"] == 0, alert  # neither early nor late
    assert alert["first_needs_confirmation_day"] is None or alert["first_needs_confirmation_day"] >= alert["true_day"]


def test_the_scorer_sees_errors_falls_and_early_alerts() -> None:
    """The scoring can fail: a series off by 12 points that dips 5 points, and an alert fired far too early."""
    rows = [
        {"day": "2026-03-02", "percent": 20.0, "raw": 20.0, "truth": 8.0, "confidence": 0.9},
        {"day": "2026-03-03", "percent": 15.0, "raw": None, "truth": 9.0, "confidence": 0.4},
    ]
    scores = package_scores(rows)
    assert scores["max_abs_error"] == 12.0
    assert scores["max_abs_error_measured"] == 12.0
    assert scores["largest_decrease"] == 5.0
    assert scores["days_measured"] == 1

    from edge_agent.progress.estimator import DailyFigure

    scenario = default_scenario(0)
    figures = [
        DailyFigure("p", None, scenario.start + dt.timedelta(days=d), scenario.close_of(d), 0.0, 0.0, 1.0, 5, 0, 1.0)
        for d in range(12)
    ]
    alert = alert_days(scenario, figures)
    assert alert["first_behind_day"] is not None
    assert alert["offset_days"] is not None
    assert alert["offset_days"] < 0
