"""Prometheus text of the agent's counters, parsed by an independent strict parser."""

from __future__ import annotations

from edge_agent.preview.metrics import CameraMetrics, ServerMetrics, render_metrics
from tests.preview_client import metric, parse_prometheus
from tests.unit.test_preview_server import UPLINK, stats


def test_every_camera_has_every_counter_and_one_current_state() -> None:
    text = render_metrics(
        "agent-1", [CameraMetrics(stats("a", "live", 7)), CameraMetrics(stats("b", "down"))], UPLINK, ServerMetrics()
    )
    samples = parse_prometheus(text)
    for camera in ("a", "b"):
        states = [
            v
            for (name, labels), v in samples.items()
            if name == "ioc_edge_camera_state" and ("camera", camera) in labels
        ]
        assert sorted(states) == [0, 0, 0, 0, 0, 1]  # one of the six SourceState values
    assert metric(samples, "ioc_edge_frames_processed_total", camera="a") == 7
    assert metric(samples, "ioc_edge_camera_up", camera="a") == 1
    assert metric(samples, "ioc_edge_camera_up", camera="b") == 0
    assert metric(samples, "ioc_edge_agent_info", agent_id="agent-1") == 1
    assert metric(samples, "ioc_edge_uplink_retries_total") == 4


def test_label_values_are_escaped() -> None:
    text = render_metrics('odd "agent"\\\n', [], None, ServerMetrics())
    samples = parse_prometheus(text)
    assert metric(samples, "ioc_edge_agent_info", agent_id='odd \\"agent\\"\\\\\\n') == 1
    assert "ioc_edge_uplink" not in text  # no uplink, no uplink metrics
