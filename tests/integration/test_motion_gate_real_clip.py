"""The motion gate on real footage: the SSD counts the same with the gate on, while most frames skip inference.

The clip and its hand-labelled crossings are those of ``test_motion_real_clip`` (skipped without the clip or the
prepared SSD). The tracker's thresholds are the ones that suit the SSD's 0.3-0.6 scores (models/README.md).
"""

from __future__ import annotations

from collections import Counter

import pytest

from edge_agent.cli import analyze_video
from edge_agent.perception.detectors import DetectorConfig, resolve_model_path
from edge_agent.perception.tracker import TrackerConfig
from tests.integration.test_motion_real_clip import FOOTAGE, LABELLED_MID, camera_for

SSD_TRACKER = TrackerConfig(high_score_threshold=0.3, new_track_threshold=0.35)


def test_gated_ssd_counts_the_labelled_crossings_and_skips_the_empty_road() -> None:
    if not FOOTAGE.is_file():
        pytest.skip(f"{FOOTAGE} is not on this machine")
    try:
        resolve_model_path(DetectorConfig())
    except FileNotFoundError as error:
        pytest.skip(str(error))
    expected = Counter(direction for _, _, direction, _ in LABELLED_MID)
    reports = {}
    for gated in (False, True):
        camera = camera_for(DetectorConfig(), SSD_TRACKER)
        camera = camera.model_copy(update={"motion_gate": camera.motion_gate.model_copy(update={"enabled": gated})})
        reports[gated] = analyze_video(camera, interval_s=1)
    for report in reports.values():
        mid = report["lines"]["mid"]
        assert sum(mid["in"].values()) == expected["in"]
        assert sum(mid["out"].values()) == expected["out"]
    assert reports[False]["motion_gate"] is None
    gate = reports[True]["motion_gate"]
    assert gate is not None
    # 4 cars in 377 frames: the road is empty for about 250 of them.
    assert gate["frames_checked"] == 376  # the first frame runs the detector without asking
    assert gate["frames_gated"] > 150
    assert gate["runs_on_motion"] + gate["runs_forced"] + gate["frames_gated"] == gate["frames_checked"]
