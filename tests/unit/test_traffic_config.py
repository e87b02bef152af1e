"""Traffic sections of a site config: the junction example loads; wrong references fail at validate-config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edge_agent.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "edge.traffic.example.yaml"

BASE = """\
agent_id: junction-01
central: {url: "http://127.0.0.1:8080", token: abc}
cameras:
  - id: cam-j
    url: rtsp://10.0.0.5/s
    lines: [{id: pass, start: [0, 0.5], end: [1, 0.5]}]
"""


def issues_of(extra: str, base: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(base + textwrap.indent(textwrap.dedent(extra), "    "), "site.yaml")
    return "\n".join(str(issue) for issue in caught.value.issues)


def test_the_junction_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    camera = config.cameras[0]
    assert camera.violations is not None
    assert camera.plates is not None
    assert camera.plates.pass_line_id == "pass"
    assert camera.feed_signals == ("ctl-hv-n",)
    assert config.signal_feed is not None
    assert config.evidence.upload == "violations"


def test_a_pass_line_that_is_not_a_line_of_the_camera_is_refused() -> None:
    message = issues_of("plates: {pass_line_id: stop}\n")
    assert "pass_line_id 'stop' is not one of its lines ['pass']" in message


def test_feed_signals_need_a_signal_feed() -> None:
    message = issues_of(
        """\
        violations:
          signals: [{id: s1, mqtt: ctl-1}]
        """
    )
    assert "signal_feed" in message


def test_a_camera_with_only_violations_needs_no_counting_line() -> None:
    config = parse_config(
        BASE.replace("    lines: [{id: pass, start: [0, 0.5], end: [1, 0.5]}]\n", "")
        + "    violations: {rules: [{type: illegal_stopping, id: corner, zone: [[0, 0], [0.5, 0], [0.5, 0.5]]}]}\n"
    )
    assert config.cameras[0].lines == ()


def test_evidence_upload_needs_http_transport() -> None:
    base = BASE.replace(
        'central: {url: "http://127.0.0.1:8080", token: abc}', "central: {transport: mqtt, mqtt: {host: broker}}"
    )
    assert "evidence.upload needs central transport http" in issues_of("plates: {}\n", base)
    assert parse_config(base + "    plates: {}\nevidence: {upload: never}\n").evidence.upload == "never"
