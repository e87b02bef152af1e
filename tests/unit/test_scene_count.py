"""Scoring counts against a scene's truth, and counting with the real analytics step on replayed detections."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.count_accuracy import BACKENDS, Backend, detector_config
from devstack.scene_count import (
    CountedCrossing,
    ReplayDetector,
    blank_frames,
    count_clip,
    scene_line,
    score_counts,
)
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.perception.types import Detections

NAMES = ("car", "other_vehicle")


def truth_doc() -> dict[str, Any]:
    """Three vehicles: 1 and 2 cross 'in' and 'out'; 3 passes beyond the line's end."""

    def boxes(x: int, frames: range, y0: int, dy: int) -> list[list[int]]:
        return [[f, x, y0 + dy * (f - frames.start), x + 40, y0 + 40 + dy * (f - frames.start), 1, 100] for f in frames]

    return {
        "fps": 10,
        "width": 400,
        "height": 400,
        "frame_count": 40,
        "anchor": "center",
        "line": {"start": [0.0, 200.25], "end": [300.0, 200.25]},
        "objects": [
            {"id": 1, "class": "car", "boxes": boxes(50, range(0, 30), 60, 10)},
            {"id": 2, "class": "van", "boxes": boxes(150, range(0, 30), 320, -10)},
            {"id": 3, "class": "car", "boxes": boxes(340, range(0, 30), 60, 10)},
        ],
        "crossings": [
            {"object_id": 1, "class": "car", "frame": 13, "direction": "in"},
            {"object_id": 2, "class": "van", "frame": 11, "direction": "out"},
        ],
        "beyond_end": [{"object_id": 3, "class": "car", "frame": 13, "px_beyond_end": 60.0}],
    }


def count(frame: int, track: int, direction: str, box: tuple[float, float, float, float]) -> CountedCrossing:
    return CountedCrossing(frame, track, direction, "car", box)


def test_exact_counts_score_zero_error_and_classes_go_through_the_map() -> None:
    counted = [count(13, 1, "in", (50, 190, 90, 230)), count(11, 2, "out", (150, 210, 190, 250))]
    score = score_counts(truth_doc(), counted, {"car": "car", "van": "car"})
    assert (score["count_error"], score["count_error_in"], score["count_error_out"]) == (0.0, 0.0, 0.0)
    assert (score["missed"], score["extra"]) == (0, 0)
    assert score["by_class"] == {"car": {"true_in": 1, "true_out": 1, "counted_in": 1, "counted_out": 1}}


def test_double_counts_beyond_end_counts_and_wrong_directions_are_extra() -> None:
    counted = [
        count(13, 1, "in", (50, 190, 90, 230)),
        count(16, 7, "in", (50, 220, 90, 260)),  # the same car again under a new id
        count(13, 9, "in", (340, 190, 380, 230)),  # the car beyond the line's end
        count(11, 2, "in", (150, 210, 190, 250)),  # the van, in the wrong direction
    ]
    score = score_counts(truth_doc(), counted, None)
    assert (score["true_in"], score["true_out"], score["counted_in"], score["counted_out"]) == (1, 1, 4, 0)
    assert score["count_error"] == 1.0  # |4 - 2| / 2
    assert (score["count_error_in"], score["count_error_out"]) == (3.0, 1.0)
    assert score["missed"] == 1
    assert score["missed_objects"][0]["object_id"] == 2
    assert sorted(c["track_id"] for c in score["extra_counts"]) == [2, 7, 9]
    assert "by_class" not in score


def test_the_analytics_step_counts_replayed_detections_once_per_vehicle() -> None:
    truth = truth_doc()
    frames: list[Detections] = []
    for f in range(40):
        rows = [obj["boxes"][f][1:5] for obj in truth["objects"] if f < len(obj["boxes"])]
        frames.append(
            Detections(
                xyxy=np.array(rows, dtype=np.float32).reshape(-1, 4),
                confidence=np.full(len(rows), 0.4, dtype=np.float32),
                class_id=np.zeros(len(rows), dtype=np.int64),
                class_names=NAMES,
            )
        )
    counted = count_clip(blank_frames(400, 400, 40), ReplayDetector(frames), TrackerConfig(), scene_line(truth), 10)
    assert sorted(c.direction for c in counted) == ["in", "out"]
    score = score_counts(truth, counted, None)
    assert (score["missed"], score["extra"], score["count_error"]) == (0, 0, 0.0)
    with pytest.raises(IndexError, match="ran out"):
        count_clip(blank_frames(400, 400, 41), ReplayDetector(frames), TrackerConfig(), scene_line(truth), 10)


def test_a_backend_this_build_cannot_configure_is_reported_not_available() -> None:
    bogus = Backend("bogus", {"backend": "no-such-backend"}, None, frozenset(), targeted=True, note="")
    assert str(detector_config(bogus)).startswith("not available")
    assert not isinstance(detector_config(BACKENDS["ssd"]), str)
