"""Sensor config: what is refused at load, topic filters, the example file and the documented payloads."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from ioc_common.sensors.config import SensorConfig, check_sensors
from ioc_common.sensors.normalise import SensorNormaliser
from ioc_common.sensors.payload_schemas import IOC_V1, IOC_V1_SCHEMAS
from ioc_common.sensors.topics import check_filter, matches

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "sensors.example.yaml"
DOC = ROOT / "docs" / "sensors.md"
SENSORS = TypeAdapter(tuple[SensorConfig, ...])


def sensor(**settings: Any) -> SensorConfig:
    return SensorConfig.model_validate({"id": "s1", "kind": "water_level", "topic": "st/s1", **settings})


def test_defaults() -> None:
    config = sensor()
    assert config.format.type == "ioc_v1"
    assert (config.silent_after_s, config.max_future_s, config.min_interval_s) == (900, 300, 0)
    assert config.calibration == {}
    assert config.alert_levels_m is None


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"id": "bad id"}, "id"),
        ({"kind": "rain"}, "kind"),
        ({"topic": "a/b#"}, "whole level"),
        ({"topic": "a/#/b"}, "last level"),
        ({"topic": ""}, "topic"),
        ({"colour": "red"}, "colour"),
        ({"alert_levels_m": [5, 4, 3]}, "ascend"),
        ({"kind": "environment", "alert_levels_m": [1, 2, 3]}, "water_level sensors only"),
        ({"kind": "forest_fire", "datum": "Hòn Dấu"}, "water_level sensors only"),
        ({"calibration": {"pm2_5": {"scale": 2}}}, "does not report"),
        ({"calibration": {"distance": {"offset": 0.1}}}, "sensor_elevation_m"),
        ({"calibration": {"water_level_m": {"scale": 0}}}, "scale 0"),
        (
            {"format": {"type": "flat_json", "fields": {"water_level_m": {"path": "l", "unit": "furlong"}}}},
            "furlong",
        ),
        ({"format": {"type": "flat_json", "fields": {"distance": {"path": "d", "unit": "cm"}}}}, "sensor_elevation_m"),
        ({"format": {"type": "csv", "columns": ["time", "pm10"], "units": {"pm10": "ug/m3"}}}, "does not report"),
        ({"format": {"type": "mqtt_magic"}}, "type"),
        ({"format": {"type": "senml", "names": {"p": "pm10"}}}, "does not report"),
        ({"max_future_s": -1}, "max_future_s"),
    ],
)
def test_mistakes_are_refused_at_load(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        sensor(**settings)


def test_config_is_frozen() -> None:
    config = sensor()
    with pytest.raises(ValidationError):
        config.id = "other"  # type: ignore[misc]


def test_check_sensors_refuses_ambiguous_lists() -> None:
    a = sensor(id="a", topic="st/+")
    with pytest.raises(ValueError, match="used twice"):
        check_sensors([a, sensor(id="a", topic="x")])
    csv = {"type": "csv", "columns": ["time", "water_level_m"], "units": {"water_level_m": "cm"}}
    with pytest.raises(ValueError, match="not their format"):
        check_sensors([a, sensor(id="b", topic="st/+", format=csv)])
    with pytest.raises(ValueError, match="distinct payload ids"):
        check_sensors([a, sensor(id="b", topic="st/+", payload_id="a")])
    with pytest.raises(ValueError, match="both called 'KIMLONG'"):
        check_sensors([sensor(id="KIMLONG", topic="t"), sensor(id="b", topic="t", payload_id="KIMLONG")])
    check_sensors([a, sensor(id="b", topic="st/+"), sensor(id="c", topic="other", payload_id="a")])


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("$share/grp/a/+", "a/b", True),
        ("a/+", "a/", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert check_filter(topic_filter) == topic_filter
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["a/b+", "#/a", "$share/grp", "$share//a", "a\x00"])
def test_bad_topic_filters(bad: str) -> None:
    with pytest.raises(ValueError, match="topic filter"):
        check_filter(bad)


def example_sensors() -> tuple[SensorConfig, ...]:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    sensors = SENSORS.validate_python(data["sensors"])
    check_sensors(sensors)
    return sensors


def test_example_file_loads_and_shows_every_adapter_and_kind() -> None:
    sensors = example_sensors()
    assert {s.format.type for s in sensors} == {"ioc_v1", "senml", "flat_json", "csv"}
    assert {s.kind for s in sensors} == {"water_level", "forest_fire", "environment"}


def documented_payloads() -> list[tuple[str, str, str]]:
    """(sensor id, topic, payload) of every payload in docs/sensors.md marked <!-- payload: ID TOPIC -->."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- payload: (\S+) (\S+) -->\n```\w*\n(.*?)```", text, re.DOTALL)
    return [(sensor_id, topic, payload) for sensor_id, topic, payload in found]


def test_docs_show_an_example_of_each_ioc_v1_schema_and_they_parse() -> None:
    schemas = set()
    for _, _, payload in documented_payloads():
        if '"schema"' in payload:
            model = IOC_V1.validate_json(payload)
            schemas.add(json.loads(payload)["schema"])
            assert model.sensor_id is not None
    assert schemas == set(IOC_V1_SCHEMAS)


def test_every_documented_payload_gives_events_with_the_example_config() -> None:
    sensors = example_sensors()
    normaliser = SensorNormaliser("hue-01", sensors)
    payloads = documented_payloads()
    assert {sensor_id for sensor_id, _, _ in payloads} == {s.id for s in sensors}
    for sensor_id, topic, payload in payloads:
        result = normaliser.normalise(topic, payload.encode(), dt.datetime(2026, 11, 26, 4, tzinfo=dt.UTC))
        assert result.rejections == (), (sensor_id, result.rejections)
        assert result.events
        assert {e.source_id for e in result.events} == {sensor_id}
