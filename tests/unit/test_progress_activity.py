"""Site activity windows: clock alignment, coverage with capped gaps, zones by the objects' feet, per-group counts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from edge_agent.perception.types import Detections
from edge_agent.progress.activity import ActivityMeter, ActivityWindow, window_start, working_hours
from edge_agent.progress.config import ActivityConfig, ActivityZone

NAMES = ("person", "truck", "other_vehicle", "dog")
W, H = 1000, 500
T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 08:00 local: an hour boundary


def dets(*objects: tuple[str, float, float]) -> Detections:
    """Objects as (class name, x of the box centre, y of its bottom), boxes 20 x 40 px."""
    if not objects:
        return Detections.empty(NAMES)
    xyxy = np.array([[x - 10, y - 40, x + 10, y] for _, x, y in objects], dtype=np.float32)
    return Detections(
        xyxy=xyxy,
        confidence=np.full(len(objects), 0.9, dtype=np.float32),
        class_id=np.array([NAMES.index(name) for name, _, _ in objects], dtype=np.int64),
        class_names=NAMES,
    )


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_window_start_is_aligned_on_the_epoch() -> None:
    assert window_start(dt.datetime(2026, 3, 2, 1, 59, 59, tzinfo=dt.UTC), 3600) == T0
    assert window_start(dt.datetime(2026, 3, 2, 1, 7, tzinfo=dt.UTC), 900) == dt.datetime(
        2026, 3, 2, 1, 0, tzinfo=dt.UTC
    )
    assert window_start(dt.datetime(2026, 3, 2, 1, 17, tzinfo=dt.UTC), 900) == dt.datetime(
        2026, 3, 2, 1, 15, tzinfo=dt.UTC
    )


def test_one_window_per_hour_with_counts_and_index() -> None:
    meter = ActivityMeter(ActivityConfig())
    frames = [
        dets(("person", 100, 400), ("person", 200, 400), ("truck", 500, 450)),
        dets(("person", 100, 400)),
        dets(),
        dets(("dog", 300, 300)),  # not in any group
    ]
    closed: list[ActivityWindow] = []
    for i, d in enumerate(frames):
        closed += meter.update(d, at(10 * i), W, H)
    assert closed == []
    closed += meter.update(dets(), at(60), W, H)  # the next hour's first frame closes the first hour
    assert len(closed) == 1
    window = closed[0]
    assert (window.zone_id, window.start, window.end, window.frames) == ("site", T0, at(60), 4)
    assert window.activity_index == pytest.approx(0.5)
    assert window.mean_present == {"worker": 0.75, "machine": 0.0, "truck": 0.25}
    assert window.peak_present == {"worker": 2, "machine": 0, "truck": 1}
    # Each frame holds until the next one, at most 60 s: 4 frames x 60 s.
    assert window.covered_s == pytest.approx(240.0)
    assert window.active_s == pytest.approx(120.0)


def test_coverage_follows_the_frames_and_spills_into_the_next_window() -> None:
    meter = ActivityMeter(ActivityConfig(window_s=3600), max_frame_gap_s=120.0)
    meter.update(dets(("person", 10, 10)), at(0), W, H)
    meter.update(dets(("person", 10, 10)), at(0.5), W, H)  # 30 s later
    meter.update(dets(("person", 10, 10)), at(59.5), W, H)  # the first frame's gap is capped at 120 s
    closed = meter.update(dets(), at(61), W, H)  # 90 s gap: 30 s in the first hour, 60 s spill into the second
    assert closed[0].covered_s == pytest.approx(30 + 120 + 30)
    assert closed[0].active_s == pytest.approx(30 + 120 + 30)
    second = meter.flush(at(62))  # the last frame holds 60 s
    assert len(second) == 1
    assert second[0].start == at(60)
    assert second[0].covered_s == pytest.approx(60 + 60)
    assert second[0].active_s == pytest.approx(60)  # the spill came from a frame with a worker, the last had none
    assert second[0].frames == 1


def test_a_camera_that_goes_down_still_reports_the_hour_it_was_seen_in() -> None:
    meter = ActivityMeter(ActivityConfig(window_s=3600), max_frame_gap_s=120.0)
    meter.update(dets(("person", 10, 10)), at(50), W, H)
    meter.update(dets(), at(51), W, H)
    assert meter.expire(at(59)) == ()  # the hour is still open
    assert meter.expire(at(61)) == ()  # its last frame could still stand for time up to 61:00 + a late one
    (window,) = meter.expire(at(62.5))  # past the end by more than a frame can cover: closed without a frame
    assert (window.start, window.end, window.frames) == (T0, at(60), 2)
    assert window.covered_s == pytest.approx(60 + 120)
    assert window.active_s == pytest.approx(60)
    assert meter.expire(at(200)) == ()  # nothing open any more


def test_zones_use_the_bottom_centre_of_each_box() -> None:
    zones = (
        ActivityZone(id="left", polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))),
        ActivityZone(id="right", polygon=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))),
    )
    meter = ActivityMeter(ActivityConfig(zones=zones))
    # A worker whose box straddles the middle but stands at x=490 is on the left.
    meter.update(dets(("person", 490, 400), ("other_vehicle", 800, 300)), at(0), W, H)
    windows = {w.zone_id: w for w in meter.flush(at(1))}
    assert set(windows) == {"left", "right"}
    assert windows["left"].peak_present == {"worker": 1, "machine": 0, "truck": 0}
    assert windows["right"].peak_present == {"worker": 0, "machine": 1, "truck": 0}
    assert windows["left"].activity_index == windows["right"].activity_index == 1.0


def test_gaps_without_frames_send_no_window_and_old_frames_are_ignored() -> None:
    meter = ActivityMeter(ActivityConfig())
    meter.update(dets(), at(0), W, H)
    closed = meter.update(dets(), at(180), W, H)  # three hours later: only the first hour closes
    assert [w.start for w in closed] == [T0]
    assert meter.update(dets(("person", 1, 1)), at(100), W, H) == ()
    assert meter.frames_out_of_order == 1
    assert meter.flush(at(181))[0].frames == 1
    assert meter.flush(at(182)) == ()


def test_working_hours_counts_windows_over_the_threshold() -> None:
    def window(index: float) -> ActivityWindow:
        return ActivityWindow("site", T0, at(60), 10, 600.0, index, 0.0, {}, {})

    assert working_hours([window(0.5), window(0.1), window(0.2)], threshold=0.2) == pytest.approx(2.0)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ActivityMeter(ActivityConfig()).update(dets(), dt.datetime(2026, 3, 2), W, H)  # noqa: DTZ001
