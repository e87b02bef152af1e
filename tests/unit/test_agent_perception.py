"""The agent wires the motion gate and the shared batching detector into its cameras and reports their counters."""

from __future__ import annotations

from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.detectors.batching import BatchClient
from event_contract import CountIntervalEvent
from tests.unit.test_pipeline_agent import agent_config, delivered
from tests.unit.test_pipeline_step import BrightBlobDetector, square_tops, write_square_video
from tests.unit.test_uplink_http import ScriptedCentral, central  # noqa: F401 - fixture

HEIGHT = 120


def test_gated_cameras_on_one_shared_detector_count_and_report(central: ScriptedCentral, tmp_path: Path) -> None:  # noqa: F811
    # The square drives across, then the road stays empty for 30 frames: the gate skips those.
    video = write_square_video(tmp_path / "square.mp4", square_tops() + [HEIGHT] * 30)
    detector = DetectorConfig(batching={"enabled": True, "max_batch": 2, "max_wait_ms": 1}).model_dump(mode="json")
    config = agent_config(central.url, video, detector=detector, motion_gate={"enabled": True, "max_skip_s": 60})
    second = config.cameras[0].model_copy(update={"id": "cam-b"})
    config = config.model_copy(update={"cameras": (*config.cameras, second)})
    built: list[BrightBlobDetector] = []

    def factory(_settings: DetectorConfig) -> BrightBlobDetector:
        built.append(BrightBlobDetector())
        return built[-1]

    agent = Agent(config, detector_factory=factory)
    assert len(built) == 1  # both cameras share one model
    assert all(isinstance(agent.detectors[camera_id], BatchClient) for camera_id in ("cam-a", "cam-b"))
    pipelines, _ = agent.run(handle_signals=False)

    assert [p.crossings for p in pipelines] == [1, 1]
    counts = [e for e in delivered(central) if isinstance(e, CountIntervalEvent) and e.counts]
    assert sorted(e.source_id for e in counts) == ["cam-a", "cam-b"]
    perception = agent.status()["perception"]
    assert isinstance(perception, dict)
    gates = perception["motion_gates"]
    for camera_id, stats in zip(("cam-a", "cam-b"), pipelines, strict=True):
        gate = gates[camera_id]
        assert gate["frames_checked"] == stats.frames_processed - 1  # the first frame runs without asking
        assert gate["frames_gated"] >= 25  # the empty road after the square has left
    (shared,) = perception["shared_detectors"]
    ran = sum(gate["runs_on_motion"] + gate["runs_forced"] + 1 for gate in gates.values())
    assert shared["frames_run"] == shared["requests"] == built[0].calls == ran
    assert (shared["dropped"], shared["timeouts"], shared["errors"]) == (0, 0, 0)
