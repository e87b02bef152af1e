"""The agent with its preview server: served while it runs, and a busy port never stops the counting."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from devstack.ports import accepts_connections, free_port
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from tests.unit.test_pipeline_agent import agent_config
from tests.unit.test_pipeline_step import HEIGHT, BrightBlobDetector, square_tops, write_square_video
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture


def with_preview(config: AgentConfig, port: int) -> AgentConfig:
    return config.model_copy(update={"preview": config.preview.model_copy(update={"port": port})})


def test_agent_serves_its_cameras_while_running_and_stops_the_server(
    central: ScriptedCentral,  # noqa: F811
    tmp_path: Path,
) -> None:
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    port = free_port()
    config = with_preview(agent_config(central.url, video, loop=True, realtime=True, on_end="reconnect"), port)
    agent = Agent(config, detector_factory=lambda _config: BrightBlobDetector())
    runner = threading.Thread(target=lambda: agent.run(handle_signals=False), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while agent.preview_feeds["cam-a"].latest() is None or not accepts_connections("127.0.0.1", port):
            assert time.monotonic() < deadline, "no frame reached the preview within 30 s"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/cameras"
        with urllib.request.urlopen(url, timeout=10) as response:
            cameras = json.loads(response.read())
        assert [(c["id"], c["width"], c["height"]) for c in cameras] == [("cam-a", 160, 120)]
        assert agent.status()["preview_url"] == f"http://127.0.0.1:{port}"
    finally:
        agent.stop()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert not accepts_connections("127.0.0.1", port)


def test_a_busy_preview_port_is_logged_and_the_agent_counts_on(
    central: ScriptedCentral,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = with_preview(agent_config(central.url, video), port)
        agent = Agent(config, detector_factory=lambda _config: BrightBlobDetector())
        with caplog.at_level(logging.ERROR, logger="edge_agent.agent"):
            pipelines, _uplink = agent.run(handle_signals=False)
    assert pipelines[0].crossings == 1
    assert agent.preview is None
    assert any(f"cannot listen on 127.0.0.1:{port}" in r.getMessage() for r in caplog.records)


def test_preview_port_zero_means_no_server_and_no_observer(central: ScriptedCentral, tmp_path: Path) -> None:  # noqa: F811
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    agent = Agent(agent_config(central.url, video), detector_factory=lambda _config: BrightBlobDetector())
    assert agent.config.preview.port == 0
    assert agent.preview_feeds == {}
    agent.run(handle_signals=False)
    assert agent.preview is None
