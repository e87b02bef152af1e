"""The whole agent: file cameras -> pipelines -> spool -> HTTP delivery -> a real local HTTP server."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.cli import analyze_video, main, parse_line
from edge_agent.config import AgentConfig, CameraConfig
from edge_agent.perception.detectors import DetectorConfig
from event_contract import CountIntervalEvent, Event, HealthEvent
from tests.unit.test_pipeline_step import START, BrightBlobDetector, square_tops, write_square_video
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture

HEIGHT = 120


def agent_config(url: str, video: Path, **camera: object) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "agent_id": "agent-test",
            "central": {
                "url": url,
                "token": "t0k",
                "flush_interval_s": 0.05,
                "retry": {"base_s": 0.01, "ceiling_s": 0.05},
            },
            "shutdown_timeout_s": 5,
            "state_dir": str(video.parent / "agent-state"),  # each test its own spool
            "preview": {"port": 0},  # no fixed port in unit tests; the preview has its own tests
            "defaults": {"detector": DetectorConfig().model_dump(), "realtime": False, "start_time": START},
            "cameras": [
                {
                    "id": "cam-a",
                    "url": str(video),
                    "on_end": "stop",
                    "queue_policy": "block",
                    "queue_capacity": 4,
                    "lines": [{"id": "north", "start": [0, 0.5], "end": [1, 0.5]}],
                    **camera,
                }
            ],
        }
    )


def delivered(server: ScriptedCentral) -> list[Event]:
    with server.lock:
        return [event for received in server.received for event in received.batch.events]


def test_agent_runs_until_sources_end_and_delivers_counts(central: ScriptedCentral, tmp_path: Path) -> None:  # noqa: F811
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    agent = Agent(agent_config(central.url, video), detector_factory=lambda _config: BrightBlobDetector())
    status_file = tmp_path / "status.json"
    pipelines, uplink = agent.run(handle_signals=False, status_file=status_file)

    assert pipelines[0].crossings == 1
    status = json.loads(status_file.read_text(encoding="utf-8"))
    assert status["cameras"][0]["crossings"] == 1
    assert status["uplink"]["sent_events"] == uplink.sent_events
    events = delivered(central)
    # The agent's own health events (one at start, one at shutdown) carry the spool's state.
    own = [e for e in events if isinstance(e, HealthEvent) and e.source_id == "agent-test"]
    assert len(own) == 2
    assert all(e.delivery is not None and e.delivery.dropped_events == 0 for e in own)
    assert uplink.sent_events == uplink.submitted == pipelines[0].events_emitted + len(own)
    assert uplink.backlog_events == 0
    counts = [e for e in events if isinstance(e, CountIntervalEvent)]
    assert [(e.source_id, e.line_id, [(b.vehicle_class, b.direction, b.count) for b in e.counts]) for e in counts] == [
        ("cam-a", "north", [("car", "in", 1)])
    ]
    assert [e.state for e in events if isinstance(e, HealthEvent) and e.source_id == "cam-a"][-1] == "stopped"


def test_sigterm_stops_a_never_ending_camera_and_flushes(central: ScriptedCentral, tmp_path: Path) -> None:  # noqa: F811
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    config = agent_config(central.url, video, loop=True, realtime=True, on_end="reconnect", queue_policy="drop_oldest")
    agent = Agent(config, detector_factory=lambda _config: BrightBlobDetector())

    def terminate_once_live() -> None:
        while not any(isinstance(e, HealthEvent) for e in delivered(central)):
            time.sleep(0.02)
        while agent.pipelines[0].stats().frames_processed < 5:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_live, daemon=True)
    killer.start()
    handler_before = signal.getsignal(signal.SIGTERM)
    pipelines, uplink = agent.run()
    killer.join(timeout=10)

    assert signal.getsignal(signal.SIGTERM) is handler_before  # restored
    assert pipelines[0].state == "stopped"
    assert uplink.sent_events == uplink.submitted
    states = [e.state for e in delivered(central) if isinstance(e, HealthEvent) and e.source_id == "cam-a"]
    assert states[0] == "starting"
    assert states[-1] == "stopped"
    # The open interval was flushed at stop, not lost.
    assert any(isinstance(e, CountIntervalEvent) for e in delivered(central))


def test_analyze_counts_a_file_as_json_ready_totals(tmp_path: Path) -> None:
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 3)
    lines = (parse_line("down=0,0.5,1,0.5", 1, "bottom_center"), parse_line("0.5,0,0.5,1", 2, "bottom_center"))
    camera = CameraConfig(
        id="video",
        url=str(video),
        realtime=False,
        on_end="stop",
        max_reconnects=0,
        start_time=START,
        queue_policy="block",
        detector=DetectorConfig(),
        lines=lines,
    )
    report = analyze_video(camera, 60, BrightBlobDetector())

    assert report["frames_processed"] == report["frames_decoded"] == len(square_tops()) + 3
    assert report["lines"] == {
        "down": {"in": {"car": 1}, "out": {}, "total": 1},
        "line-2": {"in": {}, "out": {}, "total": 0},
    }
    assert [interval["time"] for interval in report["intervals"]] == ["2025-03-01T07:00:00Z"] * 2
    json.dumps(report)  # printable as is


def test_analyze_command_rejects_bad_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["analyze", str(tmp_path / "x.mp4"), "--line", "0,0.5,1"]) == 2
    assert "expected [ID=]X1,Y1,X2,Y2" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "x.mp4"), "--line", "0,0.5,1,1.5"]) == 2
    assert "0..1" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "x.mp4")]) == 2
    assert "at least one --line" in capsys.readouterr().err
