"""Tracker robustness to a weak, flickering detector: late starts, skipped frames, merged boxes, low scores."""

from __future__ import annotations

import numpy as np

from edge_agent.perception.tracker import ByteTracker, TrackerConfig, size_compatible
from edge_agent.perception.types import Detections

NAMES = ("car", "other_vehicle")


def boxes(rows: list[tuple[float, float, float, float]], scores: list[float] | None = None) -> Detections:
    return Detections(
        xyxy=np.array(rows, dtype=np.float32).reshape(-1, 4),
        confidence=np.array(scores if scores is not None else [0.4] * len(rows), dtype=np.float32),
        class_id=np.zeros(len(rows), dtype=np.int64),
        class_names=NAMES,
    )


def car_at(k: int, x0: float = 100.0, speed: float = 12.0) -> tuple[float, float, float, float]:
    x = x0 + speed * k
    return (x, 200.0, x + 60.0, 240.0)


def test_default_thresholds_track_a_detector_that_scores_cars_around_0_4() -> None:
    # The default SSD scores clearly visible rendered cars 0.3-0.6; ByteTrack's 0.5 / 0.6 would never start.
    tracker = ByteTracker()
    ids: set[int] = set()
    for k in range(20):
        out = tracker.update(boxes([car_at(k)], scores=[0.33 + 0.01 * (k % 5)]), k / 12)
        ids.update(int(i) for i in out.tracker_id)
    assert ids == {1}
    published = ByteTracker(TrackerConfig(high_score_threshold=0.5, new_track_threshold=0.6, min_hits=3))
    for k in range(20):
        assert len(published.update(boxes([car_at(k)], scores=[0.4]), k / 12)) == 0


def test_a_vehicle_seen_only_every_other_frame_is_confirmed_early() -> None:
    fps = 12
    tracker = ByteTracker()
    first_reported: int | None = None
    ids: set[int] = set()
    for k in range(12):
        dets = boxes([car_at(k)]) if k % 2 == 0 else Detections.empty(NAMES)
        out = tracker.update(dets, k / fps)
        if len(out) and first_reported is None:
            first_reported = k
        ids.update(int(i) for i in out.tracker_id)
    assert ids == {1}
    assert first_reported == 2  # the second sighting, one missed frame in between
    strict = ByteTracker(TrackerConfig(tentative_max_lost_s=0.0, min_hits=2))
    for k in range(12):
        dets = boxes([car_at(k)]) if k % 2 == 0 else Detections.empty(NAMES)
        assert len(strict.update(dets, k / fps)) == 0  # dropped at every miss: never confirmed


def test_a_tentative_track_missed_too_long_is_dropped() -> None:
    tracker = ByteTracker(TrackerConfig(tentative_max_lost_s=0.25, min_hits=2))
    tracker.update(boxes([car_at(0)]), 0.0)
    for k in range(1, 5):  # 4 frames at 12 fps = 0.33 s without a match
        tracker.update(Detections.empty(NAMES), k / 12)
    assert tracker.track_count == 0
    assert len(tracker.update(boxes([car_at(5)]), 5 / 12)) == 0  # starts over as a new tentative track


def test_a_box_merging_two_vehicles_does_not_hand_the_track_to_the_other_one() -> None:
    def run(config: TrackerConfig) -> set[int]:
        """Ids the tracker gives to vehicle B, which appears beside A as A fades out."""
        tracker = ByteTracker(config)
        for k in range(6):  # A alone, tracked as id 1
            tracker.update(boxes([(300.0, 100.0 - 5 * k, 360.0, 140.0 - 5 * k)]), k / 12)
        # A is far and faint now; the detector boxes A and B (just appeared on its left) together.
        tracker.update(boxes([(220.0, 70.0, 360.0, 110.0)]), 6 / 12)
        ids_of_b: set[int] = set()
        for k in range(7, 14):  # then B alone, coming down the image; A is gone
            out = tracker.update(boxes([(220.0, 70.0 + 6 * (k - 7), 280.0, 110.0 + 6 * (k - 7))]), k / 12)
            ids_of_b.update(int(i) for i in out.tracker_id)
        return ids_of_b

    assert 1 not in run(TrackerConfig())
    assert 1 in run(TrackerConfig(max_size_ratio=100.0))  # plain IoU takes the merged box: an id switch


def test_a_vehicle_standing_at_a_red_light_keeps_its_id_through_a_long_dropout() -> None:
    # A detector often loses a vehicle that does not move (its score sinks under the threshold for a while).
    def ids(config: TrackerConfig, speed: float) -> list[set[int]]:
        tracker = ByteTracker(config)
        seen: list[set[int]] = [set(), set()]
        for k in range(60):
            if 24 <= k < 48:  # 2 s without detections
                tracker.update(Detections.empty(NAMES), k / 12)
                continue
            out = tracker.update(boxes([car_at(k, speed=speed)]), k / 12)
            seen[k >= 48].update(int(i) for i in out.tracker_id)
        return seen

    assert ids(TrackerConfig(), speed=0.0) == [{1}, {1}]
    assert ids(TrackerConfig(max_lost_stationary_s=1.0), speed=0.0) == [{1}, {2}]
    # A moving vehicle gone for 2 s is beyond max_lost_s (1 s): a new id, whatever else it may be by then.
    assert ids(TrackerConfig(), speed=3.0) == [{1}, {2}]


def test_a_receding_vehicle_that_slows_in_the_image_is_found_again_after_a_dropout() -> None:
    # Seen along the road, a car driving away moves fewer pixels per frame the farther it gets: during a
    # 7-frame dropout it covers half the distance a constant-velocity prediction expects.
    def ids(config: TrackerConfig) -> set[int]:
        tracker = ByteTracker(config)
        seen: set[int] = set()
        y = 400.0
        for k in range(30):
            speed = 12.0 if k < 12 else 6.0  # px per frame
            y -= speed
            if 12 <= k < 19:
                tracker.update(Detections.empty(NAMES), k / 12)
                continue
            out = tracker.update(boxes([(300.0, y, 360.0, y + 60.0)]), k / 12)
            seen.update(int(i) for i in out.tracker_id)
        return seen

    assert ids(TrackerConfig()) == {1}
    assert ids(TrackerConfig(lost_swept_match=False)) == {1, 2}


def test_size_compatible_compares_width_and_height_separately() -> None:
    track = np.array([[0, 0, 100, 50]], dtype=np.float64)
    dets = np.array(
        [[0, 0, 150, 50], [0, 0, 190, 50], [0, 0, 100, 25], [0, 0, 60, 80], [10, 10, 110, 60]], dtype=np.float64
    )
    np.testing.assert_array_equal(size_compatible(track, dets, 1.8), [[True, False, False, True, True]])
