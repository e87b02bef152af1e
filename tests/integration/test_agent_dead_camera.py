"""One agent, three cameras: a live RTSP camera, one that accepts TCP and never answers, one refused.

The dead cameras must not hold the live one back: it keeps decoding, detecting and counting while
the others sit in connecting/down with a reason, and the agent still stops promptly.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.scene import SceneParams, render_scene
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig
from event_contract import CountIntervalEvent, HealthEvent
from tests.conftest import RtspServe
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_camera() -> Iterator[str]:
    """A TCP listener that accepts connections and never says a word (a hung camera firmware)."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"rtsp://127.0.0.1:{server.getsockname()[1]}/stream"
    finally:
        stop.set()
        thread.join(2)
        for connection in accepted:
            connection.close()
        server.close()


def test_dead_cameras_do_not_stop_the_live_one(
    rtsp_server_factory: RtspServe,
    silent_camera: str,
    central: ScriptedCentral,  # noqa: F811
    tmp_path: Path,
) -> None:
    video, _truth = render_scene(SceneParams(duration_s=12.0), tmp_path / "scene")
    live_url = rtsp_server_factory(video, loop=True)
    refused_url = f"rtsp://127.0.0.1:{free_port()}/nothing-listens-here"
    line = {"id": "line-main", "start": [0.0, 0.42], "end": [1.0, 0.42]}
    config = AgentConfig.model_validate(
        {
            "agent_id": "agent-faults",
            "central": {"url": central.url, "token": "t0k", "flush_interval_s": 0.1},
            "state_dir": str(tmp_path / "agent-state"),
            "intervals_s": [5],
            "health_interval_s": 1.0,
            "shutdown_timeout_s": 5,
            "defaults": {
                "open_timeout_s": 2.0,
                "read_timeout_s": 2.0,
                "lines": [line],
            },
            "cameras": [
                {"id": "cam-live", "url": live_url},
                {"id": "cam-silent", "url": silent_camera},
                {"id": "cam-refused", "url": refused_url},
            ],
        }
    )
    agent = Agent(config)
    runner = threading.Thread(target=agent.run, kwargs={"handle_signals": False}, daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    live = agent.pipelines[0]
    while time.monotonic() < deadline and live.stats().crossings < 3:
        time.sleep(0.5)
    stats = {pipeline.camera.id: pipeline.stats() for pipeline in agent.pipelines}
    agent.stop()
    runner.join(30)

    assert not runner.is_alive(), "the agent did not stop with two dead cameras"
    assert stats["cam-live"].state == "live"
    assert stats["cam-live"].frames_processed > 20
    assert stats["cam-live"].crossings >= 3, "the live camera stopped counting while the others were dead"
    for dead in ("cam-silent", "cam-refused"):
        assert stats[dead].frames_decoded == 0
        assert stats[dead].state in {"connecting", "down"}
        assert stats[dead].last_error, f"{dead} is down without a reason"
        assert not stats[dead].failed, f"{dead} gave up although max_reconnects is unlimited"
    with central.lock:
        events = [event for received in central.received for event in received.batch.events]
    health_states = {(e.source_id, e.state) for e in events if isinstance(e, HealthEvent)}
    assert ("cam-live", "live") in health_states
    assert any(source == "cam-silent" and state in {"connecting", "down"} for source, state in health_states)
    assert any(isinstance(e, CountIntervalEvent) and e.source_id == "cam-live" for e in events)
