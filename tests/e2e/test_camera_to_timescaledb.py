"""Whole path: rendered clip -> RTSP server -> edge-agent process -> central process -> TimescaleDB.

The stored counts must equal the scene generator's ground truth exactly on the clean clip.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from devstack.apps import edge_config, provision_agent, start_central, start_edge, write_edge_config, write_secret
from devstack.demo import SceneTruth, truth_totals
from devstack.ports import free_port
from devstack.scene import SceneParams, render_scene

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_stored_counts_equal_ground_truth(tmp_path: Path, pg_dsn: str, rtsp_server_factory: object) -> None:
    truth = SceneTruth.load(*render_scene(SceneParams(duration_s=30.0), tmp_path / "scene"))
    assert truth.crossings, "the clip must contain crossings"
    camera_url = rtsp_server_factory(truth.video, loop=False)  # type: ignore[operator]
    token_file = write_secret(tmp_path / "agent.token", provision_agent(pg_dsn, "e2e-agent"))
    central = start_central(pg_dsn, tmp_path / "central.log")
    try:
        started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        config = edge_config(
            agent_id="e2e-agent",
            central_url=central.url,
            token_file=token_file,
            camera_id="cam-e2e",
            camera_url=str(camera_url),
            lines=[truth.line],
            interval_s=10,
            on_end="stop",
            preview_port=free_port(),
        )
        edge = start_edge(write_edge_config(tmp_path / "edge.yaml", config), tmp_path / "edge.log")
        code = edge.wait(timeout_s=truth.duration_s + 90)
        assert code == 0, edge.log_tail()
        edge.stop()
        end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        stored = central.totals(agent_id="e2e-agent", start=started.isoformat(), end=end.isoformat())
        stored = {key: count for key, count in stored.items() if count}
        assert stored == truth_totals(truth, truth.line_id)
    finally:
        central.process.stop()
