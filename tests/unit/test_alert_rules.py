"""The rules file (validation with FILE:LINE:COL errors) and the Vietnamese/English messages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from central_ingest.alerts.evaluate import PeriodSample, violation_finding
from central_ingest.alerts.lifecycle import Finding
from central_ingest.alerts.messages import Subject, render, with_prefix
from central_ingest.alerts.rules import (
    AlertRulesConfig,
    ProgressBehindRule,
    SensorRateRule,
    SensorThresholdRule,
    SourceSilentRule,
    ViolationIncreaseRule,
    load_rules,
)
from ioc_common.yaml_files import ConfigError, parse_model

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "alert_rules.example.yaml"


def test_example_file_is_valid_and_complete() -> None:
    config = load_rules(EXAMPLE)
    kinds = sorted({rule.kind for rule in config.rules})
    assert kinds == ["progress_behind", "sensor_rate", "sensor_threshold", "source_silent", "violation_increase"]
    water = config.rule("water-level")
    assert isinstance(water, SensorThresholdRule)
    assert [lv.value for lv in water.levels_for("agent-thuyvan", "tram-son-tay")] == [
        Decimal("12.4"),
        Decimal("13.4"),
        Decimal("14.4"),
    ]
    assert [lv.value for lv in water.levels_for("agent-x", "other")] == [
        Decimal("9.5"),
        Decimal("10.5"),
        Decimal("11.5"),
    ]


def test_errors_point_at_the_line() -> None:
    text = "rules:\n  - id: a\n    kind: violation_increase\n    treshold_pct: 20\n"
    with pytest.raises(ConfigError) as error:
        parse_model(text, AlertRulesConfig, "rules.yaml")
    assert str(error.value.issues[0]).startswith("rules.yaml:4:5: ")
    assert "Extra inputs are not permitted" in str(error.value)
    duplicate = "rules:\n  - {id: a, kind: source_silent}\n  - {id: a, kind: source_silent}\n"
    with pytest.raises(ConfigError, match="rule ids must be unique"):
        parse_model(duplicate, AlertRulesConfig, "rules.yaml")
    unknown = "rules:\n  - {id: a, kind: violation_increase, junctions: [nowhere]}\n"
    with pytest.raises(ConfigError, match="unknown junctions"):
        parse_model(unknown, AlertRulesConfig, "rules.yaml")
    both = "rules:\n  - {id: a, kind: sensor_rate, sensor_kind: forest_fire, sensors: []}\n"
    with pytest.raises(ConfigError, match="exactly one of sensors"):
        parse_model(both, AlertRulesConfig, "rules.yaml")


def test_violation_message_in_both_languages() -> None:
    rule = ViolationIncreaseRule(id="vi")
    finding = violation_finding(
        rule, PeriodSample(27, Fraction(1), Fraction(1)), [PeriodSample(20, Fraction(1), Fraction(1))] * 30, "e"
    )
    vi, en = render(rule, Subject("junction:nga-tu-so", "Ngã tư Sở", "Nga Tu So"), finding)
    assert vi == "Vi phạm tại nút giao Ngã tư Sở tăng 35,0% so với trung bình 30 ngày (27 so với 20,0; ngưỡng 20%)"
    assert en == "Violations at Nga Tu So junction up 35.0% on the 30-day average (27 vs 20.0; threshold 20%)"
    assert with_prefix("resolved", vi, en)[0].startswith("[Đã đóng] Vi phạm")
    assert with_prefix("opened", vi, en) == (vi, en)


def test_other_messages() -> None:
    water = SensorThresholdRule.model_validate(
        {
            "id": "w",
            "sensor_kind": "water_level",
            "metric": "water_level_m",
            "levels": [{"name": "bao_dong_2", "value": 4.5}],
        }
    )
    finding = Finding("breach", "breach", "bao_dong_2", 1, value=Fraction("4.62"), threshold=Fraction("4.5"))
    vi, en = render(water, Subject("sensor:a/tram-1", agent_id="a", source_id="tram-1"), finding)
    assert vi == "Mực nước tại cảm biến a/tram-1 là 4,62 m, đạt mức báo động 2 (4,5 m)"
    assert en == "Water level at sensor a/tram-1 is 4.62 m, at alert level 2 (4.5 m)"

    progress = ProgressBehindRule(id="p")
    facts = {"gap": Fraction("10.5"), "date": dt.date(2025, 3, 1), "confidence": Fraction("0.3"), "confirmed": False}
    behind = Finding("breach", "breach", "behind", 2, value=Fraction(30), baseline=Fraction("40.5"), facts=facts)
    subject = Subject("project:cau-1", project_id="cau-1")
    assert render(progress, subject, behind)[0] == (
        "Dự án cau-1 chậm tiến độ 10,5 điểm phần trăm: thực tế 30,0% (số liệu chưa xác nhận) so với kế hoạch "
        "40,5% ngày 01/03/2025 (ngưỡng 10 điểm)"
    )
    unsure = Finding(
        "breach",
        "needs_confirmation",
        "needs_confirmation",
        1,
        value=Fraction(30),
        baseline=Fraction("40.5"),
        facts=facts,
    )
    assert render(progress, subject, unsure)[1].startswith(
        "Needs confirmation: an estimate suggests project cau-1 may be"
    )

    rate = SensorRateRule(id="r", sensor_kind="forest_fire")
    rising = Finding("breach", "breach", "rate_of_rise", 1, value=Fraction(9), threshold=Fraction(8))
    assert render(rate, Subject("sensor:a/f1"), rising) == (
        "Nhiệt độ tại cảm biến a/f1 tăng 9 °C trong 5 phút (ngưỡng 8 °C), nguy cơ cháy",
        "Temperature at sensor a/f1 rose 9 °C in 5 min (threshold 8 °C), possible fire",
    )
    silent = Finding("breach", "breach", "silent", 1, value=Fraction(900), facts={"family": "sensor_readings"})
    assert render(SourceSilentRule(id="s"), Subject("source:a/f1"), silent) == (
        "Cảm biến mất tín hiệu: a/f1 không gửi dữ liệu 15 phút (ngưỡng 10 phút)",
        "Sensor silent: a/f1 sent nothing for 15 min (threshold 10 min)",
    )


def test_station_reported_levels_take_the_rule_names_and_need_three_water_levels() -> None:
    levels = [
        {"name": "bao_dong_1", "value": 9.5, "severity": "notice"},
        {"name": "bao_dong_2", "value": 10.5},
        {"name": "bao_dong_3", "value": 11.5, "severity": "critical"},
    ]
    base = {"id": "wl", "kind": "sensor_threshold", "sensor_kind": "water_level", "metric": "water_level_m"}
    rule = SensorThresholdRule.model_validate(base | {"levels": levels, "use_station_levels": True})
    own = rule.levels_for("a", "s", (3.0, 4.0, 5.0))
    assert [(lv.name, lv.value, lv.severity) for lv in own] == [
        ("bao_dong_1", Decimal("3.0"), "notice"),
        ("bao_dong_2", Decimal("4.0"), "warning"),
        ("bao_dong_3", Decimal("5.0"), "critical"),
    ]
    assert rule.levels_for("a", "s") == rule.levels  # the station reported none
    with pytest.raises(ValueError, match="use_station_levels needs metric water_level_m"):
        SensorThresholdRule.model_validate(base | {"levels": levels[:2], "use_station_levels": True})


def test_the_progress_rule_of_a_project_is_the_first_enabled_one_that_watches_it() -> None:
    config = AlertRulesConfig.model_validate(
        {
            "rules": [
                {"id": "off", "kind": "progress_behind", "enabled": False, "threshold_points": 1},
                {"id": "bridge", "kind": "progress_behind", "projects": ["cau-1"], "threshold_points": 5},
                {"id": "all", "kind": "progress_behind", "threshold_points": 15, "min_confidence": 0.7},
            ]
        }
    )
    chosen = config.progress_rule_for("cau-1")
    assert chosen is not None
    assert chosen.id == "bridge"
    other = config.progress_rule_for("truong-hoc")
    assert other is not None
    assert (other.id, other.threshold_points, other.min_confidence) == ("all", Decimal(15), Decimal("0.7"))
    assert AlertRulesConfig().progress_rule_for("cau-1") is None
