"""Count accuracy with the real SSD and the motion backend on rendered scenario clips: the issue's targets.

Out of the box: ``DetectorConfig()`` and ``TrackerConfig()`` defaults, a counting line drawn where the
truth's line is, every frame through ``AnalyticsStep``. The clips are shortened versions of the
benchmark's presets (``python -m benchmarks.count_accuracy`` runs the full set on every backend).
Targets (issue 4): total count error <= 2 % and per-direction error <= 3 %; with 25-35 crossings per
clip that means every vehicle counted once, in its direction, and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.scene import render_scene
from devstack.scene_count import count_video, score_counts
from devstack.scene_presets import preset
from edge_agent.perception.detectors import DetectorConfig, build_detector, resolve_model_path
from edge_agent.perception.tracker import TrackerConfig

CLIPS: dict[str, dict[str, Any]] = {
    # Queues stand at the line for seconds (the first red phase) and drive off; both directions.
    "stop_on_line": {"duration_s": 60.0},
    # A low camera: vans hide the cars behind them, far vehicles overlap.
    "occlusion": {"duration_s": 45.0},
    # The line covers the inner lanes only; outer-lane traffic passes beyond its ends.
    "line_extension": {"duration_s": 55.0},
}


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("accuracy_clips")


@pytest.fixture(scope="module")
def detector_config() -> DetectorConfig:
    config = DetectorConfig()
    try:
        resolve_model_path(config)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return config


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_ssd_counts_meet_the_targets(name: str, clips_dir: Path, detector_config: DetectorConfig) -> None:
    video, truth_path = render_scene(preset(name, **CLIPS[name]), clips_dir, name)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    # The clip must really hold what it is named for, or the test proves nothing.
    assert len(truth["crossings"]) >= 20
    assert {c["direction"] for c in truth["crossings"]} == {"in", "out"}
    if name == "stop_on_line":
        assert sum(1 for o in truth["objects"] if o["seconds_at_line"] >= 3.0) >= 3
    if name == "occlusion":
        assert sum(1 for o in truth["objects"] if o["min_visible"] < 0.8) >= 5
    if name == "line_extension":
        assert len(truth["beyond_end"]) >= 10

    counted = count_video(video, build_detector(detector_config), TrackerConfig(), truth)
    score = score_counts(truth, counted, None)

    summary = {
        k: score[k] for k in ("true_in", "true_out", "counted_in", "counted_out", "missed_objects", "extra_counts")
    }
    assert score["count_error"] <= 0.02, summary
    assert score["count_error_in"] <= 0.03, summary
    assert score["count_error_out"] <= 0.03, summary


# The clips where background subtraction meets the targets (benchmarks/count_accuracy.md says where it
# does not: vehicles that overlap in the image from the moment they enter, and on held-out clips).
MOTION_CLIPS = ("dense", "stop_on_line", "line_extension")


@pytest.mark.parametrize("name", MOTION_CLIPS)
def test_motion_counts_meet_the_targets(name: str, clips_dir: Path) -> None:
    video, truth_path = render_scene(preset(name), clips_dir, f"motion-{name}")
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    assert len(truth["crossings"]) >= 50
    if name == "stop_on_line":
        assert sum(1 for o in truth["objects"] if o["seconds_at_line"] >= 3.0) >= 5
    if name == "line_extension":
        assert len(truth["beyond_end"]) >= 30

    config = DetectorConfig(backend="motion")
    counted = count_video(video, build_detector(config), TrackerConfig().for_backend(config.backend), truth)
    score = score_counts(truth, counted, None)

    summary = {k: score[k] for k in ("true_in", "true_out", "counted_in", "counted_out")}
    assert score["count_error"] <= 0.02, summary
    assert score["count_error_in"] <= 0.03, summary
    assert score["count_error_out"] <= 0.03, summary
