"""ByteTracker on plain arrays: ids, lost tracks, low scores, class vote, variable time steps."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.perception.tracker import ByteTracker, TrackerConfig, iou_matrix
from edge_agent.perception.types import Detections

NAMES = ("car", "van", "truck")
SIZE = 40.0


def dets(
    centers: list[tuple[float, float]], scores: list[float] | None = None, classes: list[int] | None = None
) -> Detections:
    n = len(centers)
    xy = np.array(centers, dtype=np.float32).reshape(-1, 2)
    half = SIZE / 2
    boxes = np.concatenate([xy - half, xy + half], axis=1)
    return Detections(
        xyxy=boxes,
        confidence=np.array(scores if scores is not None else [0.9] * n, dtype=np.float32),
        class_id=np.array(classes if classes is not None else [0] * n, dtype=np.int64),
        class_names=NAMES,
    )


def ids_of(tracked: Detections) -> list[int]:
    return [int(i) for i in tracked.tracker_id]


def test_straight_line_motion_keeps_one_id() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=3))
    outputs = [tracker.update(dets([(100 + 10 * k, 200 + 3 * k)]), timestamp_s=k * 0.1) for k in range(40)]
    assert [len(o) for o in outputs[:2]] == [0, 0]  # not confirmed before min_hits
    assert all(ids_of(o) == [1] for o in outputs[2:])
    assert tracker.confirmed_count == 1


def test_output_keeps_detection_box_and_does_not_touch_input() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1))
    frame = dets([(100, 100), (300, 300)], scores=[0.9, 0.8])
    before = frame.xyxy.copy()
    out = tracker.update(frame, 0.0)
    assert out is not frame
    np.testing.assert_array_equal(frame.xyxy, before)
    np.testing.assert_array_equal(frame.tracker_id, [-1, -1])
    np.testing.assert_array_equal(out.xyxy, frame.xyxy)
    np.testing.assert_array_equal(out.confidence, frame.confidence)
    assert ids_of(out) == [1, 2]


def test_two_objects_crossing_paths_keep_their_ids() -> None:
    tracker = ByteTracker()
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for k in range(60):
        a = (50.0 + 8 * k, 100.0)  # moving right
        b = (530.0 - 8 * k, 115.0)  # moving left, boxes overlap heavily when they pass
        out = tracker.update(dets([a, b], classes=[0, 1]), timestamp_s=k / 15)
        for track_id, x in zip(ids_of(out), out.xyxy[:, 0], strict=True):
            label = "a" if abs(x + SIZE / 2 - a[0]) < 1 else "b"
            first.setdefault(label, track_id)
            last[label] = track_id
    assert first == last
    assert first["a"] != first["b"]
    assert tracker.confirmed_count == 2


@pytest.mark.parametrize("gap_frames", [1, 4, 9])
def test_missed_detections_within_max_lost_keep_the_id(gap_frames: int) -> None:
    tracker = ByteTracker(TrackerConfig(max_lost_s=1.0))
    fps = 10
    seen: set[int] = set()
    for k in range(30):
        if 10 <= k < 10 + gap_frames:
            out = tracker.update(Detections.empty(NAMES), k / fps)
            assert len(out) == 0
            continue
        out = tracker.update(dets([(100 + 12 * k, 300)]), k / fps)
        seen.update(ids_of(out))
    assert seen == {1}


# The next tests keep a box still; a standing vehicle has its own, longer limit (max_lost_stationary_s,
# tested in test_tracker_flicker.py), so they set it equal to the max_lost_s they are about.


def test_missed_detections_beyond_max_lost_give_a_new_id() -> None:
    tracker = ByteTracker(TrackerConfig(max_lost_s=1.0, max_lost_stationary_s=1.0))
    seen_before: set[int] = set()
    seen_after: set[int] = set()
    for k in range(40):
        if 10 <= k < 22:  # 1.2 s without detections at 10 fps
            tracker.update(Detections.empty(NAMES), k / 10)
            continue
        out = tracker.update(dets([(300, 300)]), k / 10)
        (seen_before if k < 10 else seen_after).update(ids_of(out))
    assert seen_before == {1}
    assert seen_after == {2}


def test_lost_time_is_measured_in_seconds_not_frames() -> None:
    # Two updates 0.9 s apart (eight dropped frames) stay within max_lost_s = 1.0.
    tracker = ByteTracker(TrackerConfig(max_lost_s=1.0, max_lost_stationary_s=1.0, min_hits=1))
    assert ids_of(tracker.update(dets([(300, 300)]), 0.0)) == [1]
    tracker.update(Detections.empty(NAMES), 0.1)
    assert ids_of(tracker.update(dets([(300, 300)]), 1.0)) == [1]
    tracker.update(Detections.empty(NAMES), 1.1)
    assert ids_of(tracker.update(dets([(300, 300)]), 2.2)) == [2]


def test_low_score_detections_never_start_tracks() -> None:
    tracker = ByteTracker()
    for k in range(20):  # 0.2 is below the default high_score_threshold (0.3): a low score
        out = tracker.update(dets([(200 + 5 * k, 200)], scores=[0.2]), k * 0.1)
        assert len(out) == 0
    assert tracker.track_count == 0


def test_low_score_detections_extend_an_active_track() -> None:
    tracker = ByteTracker()
    for k in range(10):
        tracker.update(dets([(200 + 5 * k, 200)], scores=[0.9]), k * 0.1)
    for k in range(10, 30):  # occluded: the detector is unsure but the box is where the track goes
        out = tracker.update(dets([(200 + 5 * k, 200)], scores=[0.2]), k * 0.1)
        assert ids_of(out) == [1]
        assert out.confidence[0] == pytest.approx(0.2)


def test_below_low_threshold_is_ignored() -> None:
    tracker = ByteTracker(TrackerConfig(max_lost_s=0.5, max_lost_stationary_s=0.5))
    for k in range(5):
        tracker.update(dets([(200, 200)]), k * 0.1)
    for k in range(5, 20):
        out = tracker.update(dets([(200, 200)], scores=[0.05]), k * 0.1)
        assert len(out) == 0
    assert tracker.track_count == 0


def test_class_vote_keeps_one_class_despite_flicker() -> None:
    tracker = ByteTracker()
    classes_out: list[str] = []
    for k in range(30):
        flicker = 1 if k % 3 == 2 else 0  # van every third frame, at lower confidence
        out = tracker.update(dets([(100 + 5 * k, 100)], scores=[0.6 if flicker else 0.85], classes=[flicker]), k * 0.1)
        classes_out.extend(out.names)
    assert classes_out
    assert set(classes_out) == {"car"}


def test_class_vote_with_decay_follows_a_lasting_change() -> None:
    tracker = ByteTracker(TrackerConfig(class_vote_decay=0.7))
    names: list[str] = []
    for k in range(40):
        cls = 0 if k < 10 else 2  # far away it looked like a car; close up it is clearly a truck
        out = tracker.update(dets([(100 + 5 * k, 100)], classes=[cls]), k * 0.1)
        names.extend(out.names)
    assert names[0] == "car"
    assert names[-1] == "truck"
    assert ids_of(tracker.update(dets([(100 + 5 * 40, 100)], classes=[2]), 4.0)) == [1]


def test_variable_time_steps_use_the_real_dt() -> None:
    # 150 px/s with 40 px boxes: a 0.4 s gap moves the box 60 px, more than its own width,
    # so only a prediction scaled by the real dt still overlaps the detection.
    tracker = ByteTracker(TrackerConfig(max_lost_s=1.0))
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0, 1.1, 1.5, 1.55, 1.6, 2.0, 2.1]
    seen: set[int] = set()
    for t in times:
        out = tracker.update(dets([(100 + 150 * t, 300)]), t)
        seen.update(ids_of(out))
    assert seen == {1}


def test_track_survives_a_gap_while_moving_and_reappears_where_predicted() -> None:
    tracker = ByteTracker(TrackerConfig(max_lost_s=1.0))
    for k in range(10):
        tracker.update(dets([(100 + 20 * k, 300)]), k * 0.1)
    for k in range(10, 16):
        tracker.update(Detections.empty(NAMES), k * 0.1)
    # 0.7 s later the vehicle is 140 px further: far outside its last box.
    out = tracker.update(dets([(100 + 20 * 16, 300)]), 1.6)
    assert ids_of(out) == [1]


def test_many_objects_get_distinct_stable_ids() -> None:
    rng = np.random.default_rng(7)
    starts = rng.uniform(50, 1800, size=(60, 2))
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(6)), axis=-1).reshape(-1, 2) * 120 + 60
    velocity = rng.uniform(-30, 30, size=(60, 2))
    tracker = ByteTracker()
    per_row: dict[int, set[int]] = {i: set() for i in range(60)}
    for k in range(30):
        centers = grid + velocity * k * 0.1
        order = rng.permutation(60)  # detectors return objects in any order
        out = tracker.update(dets([tuple(c) for c in centers[order]]), k * 0.1)
        for track_id, box in zip(ids_of(out), out.xyxy, strict=True):
            row = int(np.argmin(np.linalg.norm(centers - (box[:2] + SIZE / 2), axis=1)))
            per_row[row].add(track_id)
    assert starts.shape == (60, 2)
    assert all(len(ids) == 1 for ids in per_row.values())
    assert len({next(iter(ids)) for ids in per_row.values()}) == 60


def test_max_tracks_bounds_memory_and_counts_refusals() -> None:
    tracker = ByteTracker(TrackerConfig(max_tracks=5, min_hits=1))
    out = tracker.update(dets([(60.0 * i + 30, 100) for i in range(8)]), 0.0)
    assert len(out) == 5
    assert tracker.track_count == 5
    assert tracker.tracks_refused == 3


def test_max_tracks_drops_the_longest_lost_first() -> None:
    tracker = ByteTracker(TrackerConfig(max_tracks=2, min_hits=1, max_lost_s=10))
    tracker.update(dets([(100, 100)]), 0.0)
    tracker.update(dets([(300, 100)]), 1.0)  # id 1 now lost
    tracker.update(dets([(500, 100)]), 2.0)  # room made by dropping id 1
    assert tracker.tracks_refused == 0
    assert ids_of(tracker.update(dets([(300, 100)]), 2.5)) == [2]


def test_timestamps_must_not_go_backwards() -> None:
    tracker = ByteTracker()
    tracker.update(dets([(100, 100)]), 5.0)
    tracker.update(dets([(100, 100)]), 5.0)  # equal is fine (dt = 0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(dets([(100, 100)]), 4.9)


def test_class_names_must_not_change() -> None:
    tracker = ByteTracker()
    tracker.update(dets([(100, 100)]), 0.0)
    with pytest.raises(ValueError, match="class_names"):
        tracker.update(Detections.empty(("car",)), 0.1)


def test_config_rejects_unknown_and_inconsistent_knobs() -> None:
    with pytest.raises(ValidationError):
        TrackerConfig(max_lost_frames=30)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="low_score_threshold"):
        TrackerConfig(low_score_threshold=0.7, high_score_threshold=0.5)
    with pytest.raises(ValidationError, match="new_track_threshold"):
        TrackerConfig(new_track_threshold=0.4, high_score_threshold=0.5)


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0], [0.0, 0.0, 0.0]])


def _merged(centers: list[tuple[float, float]], score: float = 0.9) -> Detections:
    """One box around all the SIZE-sized boxes at ``centers``: neighbours a detector saw as one object."""
    xy = np.array(centers, dtype=np.float32)
    half = SIZE / 2
    box = np.concatenate([xy.min(axis=0) - half, xy.max(axis=0) + half])[None, :]
    return Detections(box, np.array([score], np.float32), np.array([0], np.int64), NAMES)


@pytest.mark.parametrize("split", [True, False])
def test_a_box_over_two_tracked_neighbours_is_split_and_both_tracks_go_on(split: bool) -> None:
    tracker = ByteTracker(TrackerConfig(split_merged=split))

    def lanes(k: int) -> list[tuple[float, float]]:  # two cars side by side
        return [(100.0 + 8 * k, 200.0), (100.0 + 8 * k, 245.0)]

    for k in range(10):
        assert len(tracker.update(dets(lanes(k)), timestamp_s=k * 0.1)) == (0 if k == 0 else 2)
    outputs = [tracker.update(_merged(lanes(k)), timestamp_s=k * 0.1) for k in range(10, 16)]
    if split:
        assert all(sorted(ids_of(o)) == [1, 2] for o in outputs)
        # Each part is the track's own box inside the merged one, so each id keeps its lane.
        last = outputs[-1]
        centre_y = {int(i): float((b[1] + b[3]) / 2) for i, b in zip(last.tracker_id, last.xyxy, strict=True)}
        assert centre_y[1] == pytest.approx(200.0, abs=3)
        assert centre_y[2] == pytest.approx(245.0, abs=3)
    else:
        # The size gate refuses the double-height box to both (the pair is lost while merged) and the box
        # becomes a third "vehicle" of its own.
        assert all(1 not in ids_of(o) and 2 not in ids_of(o) for o in outputs)
        assert ids_of(outputs[-1]) == [3]
    after = tracker.update(dets(lanes(16)), timestamp_s=1.6)
    assert sorted(ids_of(after)) == [1, 2]
    assert tracker.confirmed_count == (2 if split else 3)


def test_split_parts_never_start_tracks() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1, split_merged=True))
    tracker.update(dets([(100, 200), (100, 245)]), timestamp_s=0.0)
    out = tracker.update(_merged([(100, 200), (100, 245)]), timestamp_s=0.1)
    assert sorted(ids_of(out)) == [1, 2]
    # A lone box is never split, and a merged box over tracks that are gone starts one new track, not two.
    later = tracker.update(_merged([(600, 200), (600, 245)]), timestamp_s=5.0)
    assert ids_of(later) == [3]


def test_splitting_merged_boxes_defaults_to_on_for_motion_only() -> None:
    default = TrackerConfig()
    assert default.split_merged is None
    assert default.for_backend("motion").split_merged is True
    assert default.for_backend("ssd_mobilenet_oidv4").split_merged is False
    assert TrackerConfig(split_merged=False).for_backend("motion").split_merged is False
