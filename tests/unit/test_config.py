"""Site config: valid files load; every problem points at its exact YAML line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import AgentConfig, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "edge.example.yaml"

VALID = textwrap.dedent(
    """\
    agent_id: hue-phu-hoi-01
    central:
      url: http://127.0.0.1:8080
      token: abc
    defaults:
      rtsp_transport: tcp
      tracker:
        min_hits: 2
    cameras:
      - id: cam-truong-tien
        url: rtsp://10.0.0.5/stream1
        detector: {}
        lines:
          - id: north
            start: [0.0, 0.5]
            end: [1.0, 0.5]
      - id: cam-le-loi
        url: rtsp://10.0.0.6/stream1
        rtsp_transport: udp
        detector: {}
        tracker:
          max_lost_s: 2.0
        lines:
          - id: east
            start: [0.5, 0.0]
            end: [0.5, 1.0]
    """
)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the ``occurrence``-th ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def column_of(text: str, needle: str) -> int:
    return text.splitlines()[line_of(text, needle) - 1].index(needle) + 1


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config, AgentConfig)
    assert config.cameras
    assert all(camera.lines for camera in config.cameras)


def test_defaults_apply_to_every_camera_unless_it_sets_its_own() -> None:
    config = parse_config(VALID)
    first, second = config.cameras
    assert (first.rtsp_transport, second.rtsp_transport) == ("tcp", "udp")
    # Mappings merge key by key: the second camera keeps min_hits from defaults and adds its own key.
    assert (first.tracker.min_hits, second.tracker.min_hits) == (2, 2)
    assert (first.tracker.max_lost_s, second.tracker.max_lost_s) == (1.0, 2.0)
    assert config.intervals_s == (60,)
    assert config.central.resolve_token() == "abc"


def test_unknown_key_points_at_the_key() -> None:
    text = VALID.replace("    rtsp_transport: udp\n", "    rtsp_transport: udp\n    fps_limit: 5\n")
    assert issues_of(text) == [
        f"site.yaml:{line_of(text, 'fps_limit')}:5: cameras.1.fps_limit: Extra inputs are not permitted"
    ]


def test_bad_value_nested_in_a_list_points_at_the_value() -> None:
    text = VALID.replace("end: [0.5, 1.0]", "end: [0.5, 1.7]")
    (issue,) = issues_of(text)
    assert issue.startswith(f"site.yaml:{line_of(text, '1.7')}:{column_of(text, '[0.5, 1.7]')}: cameras.1.lines.0.end")
    assert "0..1" in issue


def test_bad_value_in_a_list_of_lines_deeper_in() -> None:
    text = VALID.replace(
        "        end: [1.0, 0.5]\n",
        "        end: [1.0, 0.5]\n      - id: south\n        start: [0.0, 0.8]\n        end: oops\n",
    )
    (issue,) = issues_of(text)
    assert issue.startswith(f"site.yaml:{line_of(text, 'oops')}:{column_of(text, 'oops')}: cameras.0.lines.1.end: ")


def test_bad_value_from_defaults_is_reported_once_at_the_defaults_line() -> None:
    text = VALID.replace("    min_hits: 2", "    min_hits: zero")
    assert issues_of(text) == [
        f"site.yaml:{line_of(text, 'zero')}:{column_of(text, 'zero')}: cameras.0.tracker.min_hits: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_missing_field_points_at_the_enclosing_mapping() -> None:
    text = VALID.replace("  token: abc\n", "")
    (issue,) = issues_of(text)
    assert issue.startswith(f"site.yaml:{line_of(text, 'url: http')}:3: central: Value error, set token or token_file")


def test_two_problems_are_both_reported_in_line_order() -> None:
    text = VALID.replace("agent_id: hue-phu-hoi-01", "agent_id: 'bad id with spaces'").replace(
        "rtsp_transport: udp", "rtsp_transport: sctp"
    )
    issues = issues_of(text)
    assert [issue.split(": ")[1] for issue in issues] == ["agent_id", "cameras.1.rtsp_transport"]
    assert issues[0].startswith("site.yaml:1:11:")
    assert issues[1].startswith(f"site.yaml:{line_of(text, 'sctp')}:{column_of(text, 'sctp')}:")


def test_duplicate_keys_and_ids_are_errors() -> None:
    text = VALID.replace("  token: abc\n", "  token: abc\n  token: def\n")
    assert issues_of(text) == [f"site.yaml:{line_of(text, 'token: def')}:3: central.token: duplicate key"]
    text = VALID.replace("id: cam-le-loi", "id: cam-truong-tien")
    (issue,) = issues_of(text)
    assert "camera id 'cam-truong-tien' is used twice" in issue


def test_yaml_syntax_error_has_a_line() -> None:
    text = VALID.replace("url: http://127.0.0.1:8080", "url: [http://127.0.0.1:8080")
    (issue,) = issues_of(text)
    assert issue.startswith("site.yaml:")
    assert "YAML syntax" in issue
    assert int(issue.split(":")[1]) >= line_of(text, "[http")


def test_empty_and_non_mapping_files() -> None:
    assert issues_of("") == ["site.yaml:1:1: config is empty"]
    assert issues_of("- a\n- b\n") == ["site.yaml:1:1: config must be a mapping (key: value) at the top"]


def test_validate_config_command_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(VALID, encoding="utf-8")
    assert main(["validate-config", str(good)]) == 0
    assert (
        "valid: agent hue-phu-hoi-01, 2 camera(s) [cam-truong-tien, cam-le-loi], 2 line(s)" in capsys.readouterr().out
    )

    bad = tmp_path / "bad.yaml"
    text = VALID.replace("start: [0.0, 0.5]", "start: [0.0, -0.5]")
    bad.write_text(text, encoding="utf-8")
    assert main(["validate-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:{line_of(text, '-0.5')}:{column_of(text, '[0.0, -0.5]')}: cameras.0.lines.0.start: ")

    assert main(["validate-config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_interval_lengths_zones_and_the_renamed_key() -> None:
    text = "intervals_s: [900, 60]\n" + VALID
    assert parse_config(text).intervals_s == (60, 900)
    text = "interval_s: 60\n" + VALID
    assert issues_of(text) == [
        "site.yaml:1:13: interval_s: Value error, interval_s was replaced by intervals_s: write intervals_s: [60]"
    ]
    assert "repeat" in issues_of("intervals_s: [60, 60]\n" + VALID)[0]
    assert "outside 1..86400" in issues_of("intervals_s: [0]\n" + VALID)[0]

    zones = VALID.replace(
        "      max_lost_s: 2.0\n",
        "      max_lost_s: 2.0\n    zones:\n      - id: stop\n"
        "        polygon: [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]\n",
    )
    (issue,) = issues_of(zones)
    assert issue.startswith(f"site.yaml:{line_of(zones, 'polygon')}:18: cameras.1.zones.0.polygon: ")
    assert "cross" in issue

    east = "    lines:\n      - id: east\n        start: [0.5, 0.0]\n        end: [0.5, 1.0]\n"
    only_zones = VALID.replace(
        east, "    zones:\n      - id: stop\n        polygon: [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]\n"
    )
    camera = parse_config(only_zones).cameras[1]
    assert (camera.lines, [z.id for z in camera.zones]) == ((), ["stop"])
    assert "give 1 to 64 counting lines and/or 1 to 64 zones" in issues_of(VALID.replace(east, ""))[0]


def test_example_config_shows_zones_and_two_interval_lengths() -> None:
    config = load_config(EXAMPLE)
    assert config.intervals_s == (60, 900)
    assert any(camera.zones for camera in config.cameras)
