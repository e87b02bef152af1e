"""The detector benchmark's per-frame scoring (recall, precision, presence) on hand-made boxes."""

from __future__ import annotations

import numpy as np

from benchmarks.detector_backends import Scores, greedy_match
from devstack.scene_eval import TruthBox
from edge_agent.perception.types import Detections
from event_contract import VEHICLE_CLASSES

NAMES = tuple(VEHICLE_CLASSES)


def dets(boxes: list[list[float]], classes: list[str]) -> Detections:
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.full(len(boxes), 0.9, np.float32),
        np.array([NAMES.index(c) for c in classes], np.int64),
        NAMES,
    )


def test_matches_are_one_to_one_best_first() -> None:
    score = np.array([[0.9, 0.8], [0.85, 0.0]])
    assert greedy_match(score) == ([0], [0])  # 0.9 first takes row 0 and column 0; nothing else is left
    assert greedy_match(np.zeros((2, 2))) == ([], [])


def test_recall_counts_fully_visible_truth_and_precision_counts_every_truth() -> None:
    scores = Scores()
    truth = [
        TruthBox(1, "car", (0, 0, 10, 10), True),
        TruthBox(2, "car", (50, 50, 60, 60), True),
        TruthBox(3, "car", (90, 0, 100, 10), False),  # partly out of view
    ]
    found = dets([[0, 0, 10, 11], [90, 0, 100, 10], [200, 200, 210, 210]], ["other_vehicle", "car", "car"])
    scores.add(found, truth, None)
    scores.ms.append(5.0)
    summary = scores.summary(has_truth=True, has_presence=False)
    assert summary["recall"] == 0.5  # object 1 found (any class), object 2 missed; object 3 is not counted
    assert summary["class_recall"] == 0.0  # object 1 was found as other_vehicle, not car
    assert summary["precision"] == round(2 / 3, 4)  # the box on object 3 is right; the far one is not
    assert summary["truth_boxes_fully_inside"] == 2


def test_presence_shares_of_frames_with_detections() -> None:
    scores = Scores()
    one = dets([[0, 0, 5, 5]], ["car"])
    none = dets([], [])
    for found, in_view in ((one, True), (none, True), (none, False), (one, False), (none, False), (none, False)):
        scores.add(found, None, in_view)
        scores.ms.append(1.0)
    summary = scores.summary(has_truth=False, has_presence=True)
    assert summary["frames_with_detections_car_in_view"] == 0.5
    assert summary["frames_with_detections_road_empty"] == 0.25
    assert "recall" not in summary
