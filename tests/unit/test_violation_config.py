"""Violation config: the example file validates, and bad configs fail with errors that point at the bad field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edge_agent.violations import ViolationRulesConfig
from edge_agent.violations.config import LaneViolationRuleConfig
from ioc_common.yaml_files import ConfigError, parse_model

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "violations.example.yaml"
LANE = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.9], [0.1, 0.9]]
FLOW = {"start": [0.25, 0.1], "end": [0.25, 0.9]}


def errors(config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        ViolationRulesConfig.model_validate(config)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


def test_example_config_is_a_valid_violations_section() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config = ViolationRulesConfig.model_validate(data["violations"])
    types = {rule.type for rule in config.rules}
    assert types == {
        "red_light",
        "wrong_way",
        "illegal_stopping",
        "lane_violation",
        "stopped_in_lane",
        "queue_growth",
        "possible_accident",
    }
    assert config.congestion
    assert config.signals


@pytest.mark.parametrize(
    ("rule", "where", "message"),
    [
        (
            {"type": "wrong_way", "id": "w", "lane": [[0.1, 0.1], [0.4, 0.1], [0.4, 1.3]], "flow": FLOW},
            "rules.0.wrong_way.lane",
            "point 2",
        ),
        (
            {"type": "wrong_way", "id": "w", "lane": [[0.1, 0.1], [0.4, 0.4], [0.4, 0.1], [0.1, 0.4]], "flow": FLOW},
            "rules.0.wrong_way.lane",
            "cross or overlap",
        ),
        (
            {"type": "wrong_way", "id": "w", "lane": LANE, "flow": {"start": [0.2, 0.2], "end": [0.2, 0.2]}},
            "rules.0.wrong_way.flow",
            "shorter than",
        ),
        (
            {"type": "illegal_stopping", "id": "s", "zone": LANE, "max_stop_s": -1},
            "rules.0.illegal_stopping.max_stop_s",
            "greater than 0",
        ),
        (
            {
                "type": "lane_violation",
                "id": "l",
                "lane": LANE,
                "allowed_classes": ["car"],
                "forbidden_classes": ["bus"],
            },
            "rules.0.lane_violation",
            "exactly one of allowed_classes or forbidden_classes",
        ),
        (
            {"type": "lane_violation", "id": "l", "lane": LANE, "forbidden_classes": ["tank"]},
            "rules.0.lane_violation.forbidden_classes.0",
            "Input should be",
        ),
        (
            {
                "type": "lane_violation",
                "id": "l",
                "lane": LANE,
                "forbidden_classes": ["truck"],
                "hours": [{"start": "25:00", "end": "09:00"}],
            },
            "rules.0.lane_violation.hours.0.start",
            "HH:MM",
        ),
        (
            {
                "type": "lane_violation",
                "id": "l",
                "lane": LANE,
                "forbidden_classes": ["truck"],
                "timezone": "Mars/Base",
            },
            "rules.0.lane_violation.timezone",
            "unknown time zone",
        ),
        (
            {"type": "red_light", "id": "r", "stop_line": {"start": [0.1, 0.5], "end": [0.1, 0.5]}, "signal_id": "s"},
            "rules.0.red_light.stop_line",
            "same point",
        ),
        ({"type": "speeding", "id": "x"}, "rules.0", "does not match any of the expected tags"),
        ({"type": "illegal_stopping", "id": "bad id!", "zone": LANE}, "rules.0.illegal_stopping.id", "pattern"),
    ],
)
def test_bad_rule_points_at_the_field(rule: dict[str, Any], where: str, message: str) -> None:
    found = errors({"rules": [rule]})
    assert any(loc == where and message in msg for loc, msg in found), found


def test_unknown_signal_and_duplicate_ids_are_errors() -> None:
    rule = {"type": "red_light", "id": "r", "stop_line": {"start": [0.1, 0.5], "end": [0.9, 0.5]}, "signal_id": "s9"}
    assert (
        "signal_id 's9' is not in signals" in errors({"signals": [{"id": "s1", "mqtt": "c1"}], "rules": [rule]})[0][1]
    )
    twice = {"type": "illegal_stopping", "id": "a", "zone": LANE}
    assert "rule id used twice: ['a']" in errors({"rules": [twice, twice]})[0][1]


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        ({"id": "s"}, "exactly one of region"),
        ({"id": "s", "mqtt": "c", "region": [[0.1, 0.1], [0.2, 0.2]]}, "exactly one of region"),
        ({"id": "s", "region": [[0.3, 0.1], [0.2, 0.2]]}, "top-left, bottom-right"),
    ],
)
def test_bad_signal(signal: dict[str, Any], message: str) -> None:
    found = errors({"signals": [signal]})
    assert found[0][0].startswith("signals.0"), found
    assert message in found[0][1], found


def test_congestion_thresholds_must_rise_with_the_level() -> None:
    zone = {
        "id": "z",
        "zone": LANE,
        "flow": FLOW,
        "levels": {"moderate": {"queue_length_ratio": 0.1}, "light": {"queue_length_ratio": 0.2}},
    }
    found = errors({"congestion": [zone]})
    assert found[0][0] == "congestion.0.levels"
    assert "moderate.queue_length_ratio" in found[0][1]


def test_unknown_key_in_a_rule_is_reported_at_its_line() -> None:
    text = (
        "rules:\n  - type: illegal_stopping\n    id: s\n"
        "    zone: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.9]]\n    max_stop: 30\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_model(text, ViolationRulesConfig, "cam.yaml")
    assert caught.value.issues[0].line == 5
    assert "max_stop" in str(caught.value)


def test_lane_hours_run_over_midnight_in_local_time() -> None:
    import datetime as dt

    rule = LaneViolationRuleConfig.model_validate(
        {
            "type": "lane_violation",
            "id": "l",
            "lane": LANE,
            "forbidden_classes": ["truck"],
            "hours": [{"start": "22:00", "end": "05:00"}],
            "timezone": "Asia/Ho_Chi_Minh",
        }
    )
    assert rule.active_at(dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC))  # 23:00 local
    assert rule.active_at(dt.datetime(2026, 3, 2, 21, 30, tzinfo=dt.UTC))  # 04:30 local
    assert not rule.active_at(dt.datetime(2026, 3, 2, 22, 0, tzinfo=dt.UTC))  # 05:00 local: end is exclusive
    assert not rule.active_at(dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC))  # 12:00 local
