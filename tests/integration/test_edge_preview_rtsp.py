"""The live preview of a real agent reading a real RTSP camera with the real SSD model.

Rendered clip -> GStreamer RTSP server (looping) -> Agent (PyAV reader, SSD, tracker, line) ->
its preview server: MJPEG parts decoded by OpenCV, SSE messages with boxes, Prometheus metrics,
/healthz and ``edge-agent health`` against both the URL and the status file.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.demo import SceneTruth
from devstack.ports import accepts_connections, free_port
from devstack.scene import SceneParams, render_scene
from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.config import AgentConfig
from edge_agent.delivery.sender import DeliveryStats
from edge_agent.health import check_status_file
from edge_agent.perception.detectors import DetectorConfig, resolve_model_path
from edge_agent.pipeline import PipelineStats
from tests.preview_client import decode_jpeg, metric, open_stream, parse_prometheus, read_mjpeg_parts, read_sse_messages
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

"""The SSD scores the rendered cars 0.3-0.6 (as in tests/e2e)."""
READY_WITHIN_S = 60.0
"""Safety net for the agent to connect and analyse, not a performance claim."""


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local test server
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {READY_WITHIN_S:.0f} s")
        time.sleep(0.2)


def test_agent_serves_a_live_annotated_preview_of_an_rtsp_camera(
    tmp_path: Path,
    rtsp_server_factory: Any,
    central: ScriptedCentral,  # noqa: F811
) -> None:
    try:
        resolve_model_path(DetectorConfig())
    except FileNotFoundError as error:
        pytest.skip(str(error))
    truth = SceneTruth.load(*render_scene(SceneParams(duration_s=10.0), tmp_path / "scene"))
    camera_url = rtsp_server_factory(truth.video, loop=True)
    port = free_port()
    config = AgentConfig.model_validate(
        {
            "agent_id": "preview-agent",
            "central": {"url": central.url, "token": "t0k", "flush_interval_s": 0.2},
            "state_dir": str(tmp_path / "agent-state"),
            "shutdown_timeout_s": 2,
            "preview": {"port": port, "max_fps": 5, "max_width": 480},
            "cameras": [{"id": "cam-live", "name": "Cầu thử", "url": camera_url, "lines": [truth.line]}],
        }
    )
    agent = Agent(config)
    status_file = tmp_path / "status.json"
    outcome: list[tuple[tuple[PipelineStats, ...], DeliveryStats]] = []
    runner = threading.Thread(
        target=lambda: outcome.append(agent.run(handle_signals=False, status_file=status_file)), daemon=True
    )
    runner.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: accepts_connections("127.0.0.1", port), "the preview server did not listen")
        wait_for(lambda: json.loads(get(base + "/cameras")[1])[0]["width"] is not None, "no frame was analysed")
        cameras = json.loads(get(base + "/cameras")[1])
        assert [(c["id"], c["name"], c["state"]) for c in cameras] == [("cam-live", "Cầu thử", "live")]
        assert (cameras[0]["width"], cameras[0]["height"]) == (960, 540)

        connection, response = open_stream(base + "/cameras/cam-live/preview.mjpg", timeout_s=30)
        parts = read_mjpeg_parts(response, 2)
        connection.close()
        pictures = [decode_jpeg(part.body) for part in parts]
        assert all(picture.shape == (270, 480, 3) for picture in pictures)
        assert int(parts[1].headers["x-sequence"]) > int(parts[0].headers["x-sequence"])

        connection, response = open_stream(base + "/cameras/cam-live/events", timeout_s=30)
        messages = read_sse_messages(response, 2, accept=lambda m: bool(m["detections"]))
        connection.close()
        for message in messages:
            assert (message["width"], message["height"]) == (960, 540)
            assert message["lines"][0]["id"] == truth.line_id
            for detection in message["detections"]:
                assert detection["track_id"] >= 0
                assert detection["class"] == "car"
                x1, y1, x2, y2 = detection["box"]
                assert 0 <= x1 < x2 <= 960
                assert 0 <= y1 < y2 <= 540
                assert 0.3 <= detection["confidence"] <= 1

        # The status file is rewritten every 2 s: the first one may predate the camera going live.
        wait_for(
            lambda: check_status_file(status_file, dt.datetime.now(dt.UTC)).healthy,
            "the status file never showed a working camera",
        )
        assert main(["health", "--url", base + "/healthz"]) == 0
        assert main(["health", "--status-file", str(status_file)]) == 0

        samples = parse_prometheus(get(base + "/metrics")[1].decode("utf-8"))
        assert metric(samples, "ioc_edge_camera_state", camera="cam-live", state="live") == 1
        assert metric(samples, "ioc_edge_frames_processed_total", camera="cam-live") > 0
        assert metric(samples, "ioc_edge_frames_decoded_total", camera="cam-live") >= metric(
            samples, "ioc_edge_frames_processed_total", camera="cam-live"
        )
        assert metric(samples, "ioc_edge_camera_fps", camera="cam-live") > 0
        assert metric(samples, "ioc_edge_preview_mjpeg_frames_sent_total") >= 2
        assert metric(samples, "ioc_edge_uplink_events_submitted_total") >= 1  # the 'starting' health event
        assert metric(samples, "ioc_edge_uplink_events_sent_total") <= metric(
            samples, "ioc_edge_uplink_events_submitted_total"
        )
    finally:
        agent.stop()
        runner.join(timeout=60)
    assert outcome, "the agent did not stop"
    assert not accepts_connections("127.0.0.1", port)  # the preview server stopped with the agent
    pipelines, uplink = outcome[0]
    assert pipelines[0].frames_processed > 0
    assert uplink.sent_events >= 1
