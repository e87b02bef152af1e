"""`edge-agent analyze` on real traffic footage with the real detector (skipped without them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.perception.detectors import DetectorConfig, resolve_model_path
from event_contract import VEHICLE_CLASSES

FOOTAGE = Path("/work/shared/data/car-detection.mp4")


def test_analyze_counts_cars_crossing_in_top_down_footage(capsys: pytest.CaptureFixture[str]) -> None:
    if not FOOTAGE.is_file():
        pytest.skip(f"{FOOTAGE} is not on this machine")
    try:
        resolve_model_path(DetectorConfig())
    except FileNotFoundError as error:
        pytest.skip(str(error))

    code = main(
        ["analyze", str(FOOTAGE), "--line", "mid=0,0.5,1,0.5", "--anchor", "center", "--interval-s", "10", "--json"]
    )
    report = json.loads(capsys.readouterr().out)

    assert code == 0
    assert report["frames_processed"] == report["frames_decoded"] > 300  # block policy: no frame skipped
    mid = report["lines"]["mid"]
    assert mid["total"] >= 1  # traffic does pass the middle of the picture
    assert set(mid["in"]) | set(mid["out"]) <= set(VEHICLE_CLASSES)
    assert mid["total"] == sum(b["count"] for i in report["intervals"] for b in i["counts"])
