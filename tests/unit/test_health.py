"""``edge-agent health``: the rule, the status file and the /healthz URL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from devstack.ports import free_port
from edge_agent.cli import main
from edge_agent.health import CameraHealth, Verdict, judge_agent, judge_cameras, judge_status
from edge_agent.preview.config import PreviewConfig
from tests.unit.test_preview_server import start_harness

NOW = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)


def status(*states: str, age_s: float = 1.0, stopping: bool = False, failed: bool = False) -> dict[str, Any]:
    return {
        "agent_id": "a",
        "time": (NOW - dt.timedelta(seconds=age_s)).isoformat(),
        "stopping": stopping,
        "cameras": [{"source_id": f"cam-{i}", "state": s, "failed": failed} for i, s in enumerate(states)],
        "uplink": {},
    }


def test_one_working_camera_is_enough_and_the_reason_names_every_state() -> None:
    verdict = judge_cameras([CameraHealth("a", "live"), CameraHealth("b", "down")])
    assert verdict.healthy
    assert verdict.reason == "1/2 cameras working: a=live, b=down"
    assert judge_cameras([CameraHealth("a", "starting")]).healthy


@pytest.mark.parametrize(
    ("cameras", "reason"),
    [
        ([CameraHealth("a", "down"), CameraHealth("b", "connecting")], "every camera is down: a=down, b=connecting"),
        ([CameraHealth("a", "live", failed=True)], "every camera is down: a=live (gave up)"),
        ([CameraHealth("a", "stopped")], "every camera is down: a=stopped"),
        ([], "no cameras"),
    ],
)
def test_no_working_camera_is_unhealthy(cameras: list[CameraHealth], reason: str) -> None:
    verdict = judge_cameras(cameras)
    assert not verdict.healthy
    assert verdict.reason == reason


def test_status_file_rules() -> None:
    assert judge_status(status("live"), NOW).healthy
    stale = judge_status(status("live", age_s=45), NOW, max_age_s=30)
    assert not stale.healthy
    assert "45 s old" in stale.reason
    assert judge_status(status("live", stopping=True), NOW).reason == "agent is stopping"
    assert not judge_status(status("down", "down"), NOW).healthy
    broken = judge_status({"time": NOW.isoformat()}, NOW)
    assert not broken.healthy
    assert "not an agent status" in broken.reason
    naive = judge_status({**status("live"), "time": "2025-03-01T07:00:00"}, NOW)
    assert not naive.healthy
    assert "time zone" in naive.reason


def test_health_command_reads_the_status_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "status.json"
    now = dt.datetime.now(dt.UTC)
    document = {**status("live", "down"), "time": now.isoformat()}
    path.write_text(json.dumps(document), encoding="utf-8")
    assert main(["health", "--status-file", str(path)]) == 0
    assert capsys.readouterr().out.startswith("healthy: 1/2 cameras working")

    path.write_text(json.dumps({**document, "time": (now - dt.timedelta(minutes=5)).isoformat()}), encoding="utf-8")
    assert main(["health", "--status-file", str(path)]) == 1
    assert "agent hung or stopped" in capsys.readouterr().err

    path.write_text("{not json", encoding="utf-8")
    assert main(["health", "--status-file", str(path)]) == 1
    assert "cannot read status file" in capsys.readouterr().err

    assert main(["health", "--status-file", str(tmp_path / "missing.json")]) == 1
    assert "no status file" in capsys.readouterr().err


def test_health_command_asks_the_agents_healthz(capsys: pytest.CaptureFixture[str]) -> None:
    harness = start_harness(PreviewConfig(port=free_port()))
    try:
        url = harness.url + "/healthz"
        assert main(["health", "--url", url]) == 0
        assert "cam-a=live" in capsys.readouterr().out
        harness.states["cam-a"] = "down"
        assert main(["health", "--url", url]) == 1
        assert "HTTP 503: every camera is down" in capsys.readouterr().err
    finally:
        harness.server.stop()
    assert main(["health", "--url", url, "--timeout-s", "2"]) == 1
    assert "no answer" in capsys.readouterr().err


def test_health_takes_either_url_or_status_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["health", "--url", "http://127.0.0.1:1/healthz", "--status-file", "x.json"])
    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_a_connected_sensor_subscriber_keeps_a_site_healthy() -> None:
    assert judge_agent([], sensors_connected=True) == Verdict(True, "sensors connected to the broker")
    assert not judge_agent([], sensors_connected=False).healthy
    both = judge_agent([CameraHealth("a", "down")], sensors_connected=True)
    assert both.healthy
    assert both.reason == "every camera is down: a=down; sensors connected to the broker"
    assert not judge_agent([CameraHealth("a", "down")], sensors_connected=False).healthy
    assert judge_agent([CameraHealth("a", "live")], sensors_connected=None) == judge_cameras(
        [CameraHealth("a", "live")]
    )
