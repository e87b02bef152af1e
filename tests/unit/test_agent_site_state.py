"""Site config for sensors and durable state, and the dead-letters command a technician uses on site."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import ConfigError, parse_config
from edge_agent.delivery.dead_letters import DeadLetterConfig, DeadLetterStore
from ioc_common.dead_letter import DeadLetter

SENSOR_ONLY = """
agent_id: tram-thuy-van-01
central: {url: http://127.0.0.1:8080, token: t}
state_dir: {state}
sensors:
  broker: {host: 127.0.0.1, port: 1883}
  sensors:
    - {id: tram-kim-long, kind: water_level, topic: ioc/sensors/tram-kim-long}
"""


def test_a_sensor_only_site_needs_no_camera_but_a_site_needs_something(tmp_path: Path) -> None:
    config = parse_config(SENSOR_ONLY.replace("{state}", str(tmp_path)))
    assert config.cameras == ()
    assert config.sensors is not None
    assert [s.id for s in config.sensors.sensors] == ["tram-kim-long"]
    with pytest.raises(ConfigError, match="at least one camera"):
        parse_config("agent_id: a\ncentral: {url: http://127.0.0.1:8080, token: t}\n")


def test_a_sensor_may_not_share_its_id_with_a_camera(tmp_path: Path) -> None:
    text = SENSOR_ONLY.replace("{state}", str(tmp_path)) + (
        "cameras:\n  - id: tram-kim-long\n    url: rtsp://x/y\n    lines: [{id: l, start: [0, 0.5], end: [1, 0.5]}]\n"
    )
    with pytest.raises(ConfigError, match="name both a camera and a sensor"):
        parse_config(text)


def test_the_old_memory_queue_keys_say_what_replaced_them() -> None:
    text = "agent_id: a\ncentral: {url: http://127.0.0.1:8080, token: t, queue_capacity: 10}\n"
    with pytest.raises(ConfigError, match=r"<config>:2:\d+: central.queue_capacity: .*replaced by spool.max_bytes"):
        parse_config(text)


def test_dead_letters_command_lists_the_newest_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "site.yaml"
    config_file.write_text(SENSOR_ONLY.replace("{state}", str(tmp_path / "state")), encoding="utf-8")
    assert main(["dead-letters", "-c", str(config_file)]) == 0
    assert "no dead letters yet" in capsys.readouterr().out

    store = DeadLetterStore(DeadLetterConfig(path=tmp_path / "state" / "dead_letters.sqlite"))
    received = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
    store.keep_many(
        [
            DeadLetter("mqtt", "not_json", "payload is not JSON", b"\xff\x00", received, "ioc/sensors/x", None),
            DeadLetter(
                "mqtt",
                "impossible_value",
                "level -500.0 m is below the possible -100.0 m",
                b'{"level": -500}',
                received,
                "ioc/sensors/tram-kim-long",
                "tram-kim-long",
            ),
        ]
    )
    store.close()
    assert main(["dead-letters", "-c", str(config_file), "--code", "impossible_value", "--raw"]) == 0
    out = capsys.readouterr().out
    assert "2 kept ever (impossible_value 1, not_json 1)" in out
    assert "impossible_value topic=ioc/sensors/tram-kim-long sensor=tram-kim-long: level -500.0 m" in out
    assert "b'{\"level\": -500}'" in out
    assert "not_json" not in out.split("\n", 1)[1]
