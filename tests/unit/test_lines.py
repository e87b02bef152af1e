"""CountingLine on plain arrays: directions, segment ends, jitter, late appearance, bounded memory."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.analytics.lines import CountingLine, Crossing, LineConfig
from edge_agent.perception.types import Detections

NAMES = ("motorbike", "car", "truck")
T0 = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)
WIDTH, HEIGHT = 1000, 800
HALF = 10.0


def at(k: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=k / 10)


def tracked(rows: list[tuple[int, float, float]], classes: list[int] | None = None) -> Detections:
    """Rows of (track_id, anchor x, anchor y) in pixels; boxes are built around the CENTER anchor."""
    if not rows:
        return Detections.empty(NAMES)
    arr = np.array([[x, y] for _, x, y in rows], dtype=np.float32)
    return Detections(
        xyxy=np.concatenate([arr - HALF, arr + HALF], axis=1),
        confidence=np.full(len(rows), 0.9, dtype=np.float32),
        class_id=np.array(classes if classes is not None else [1] * len(rows), dtype=np.int64),
        class_names=NAMES,
        tracker_id=np.array([tid for tid, _, _ in rows], dtype=np.int64),
    )


def horizontal_line(**overrides: object) -> CountingLine:
    # From x=200 to x=800 at y=400 px, drawn left to right: moving DOWN the image is "in".
    config = LineConfig.model_validate(
        {"id": "gate-1", "start": (0.2, 0.5), "end": (0.8, 0.5), "anchor": "center", **overrides}
    )
    return CountingLine(config, WIDTH, HEIGHT)


def run(line: CountingLine, path: list[tuple[float, float]], track_id: int = 7) -> list[Crossing]:
    crossings: list[Crossing] = []
    for k, (x, y) in enumerate(path):
        crossings.extend(line.update(tracked([(track_id, x, y)]), at(k)))
    return crossings


def test_crossing_downwards_is_in() -> None:
    crossings = run(horizontal_line(), [(500, 300 + 20 * k) for k in range(10)])
    assert len(crossings) == 1
    c = crossings[0]
    assert (c.line_id, c.track_id, c.vehicle_class, c.direction) == ("gate-1", 7, "car", "in")
    assert c.timestamp == at(6)  # y=400 at k=5 is ON the line: the crossing is decided when it leaves it


def test_crossing_upwards_is_out() -> None:
    crossings = run(horizontal_line(), [(500, 500 - 20 * k) for k in range(10)])
    assert [c.direction for c in crossings] == ["out"]


def test_reversed_line_swaps_directions() -> None:
    line = horizontal_line(start=(0.8, 0.5), end=(0.2, 0.5))
    assert [c.direction for c in run(line, [(500, 300 + 20 * k) for k in range(10)])] == ["out"]


def test_passing_beside_the_segment_end_is_not_counted() -> None:
    assert run(horizontal_line(), [(850, 300 + 20 * k) for k in range(10)]) == []
    # A diagonal motion whose step passes just beyond the end (x=800) is not counted either.
    assert run(horizontal_line(), [(790 + 10 * k, 380 + 10 * k) for k in range(5)], track_id=8) == []


def test_jitter_on_the_line_is_counted_once() -> None:
    path = [(500.0, 340.0 + 15 * k) for k in range(4)]  # approach from above
    path += [(500.0, 400.0 + (6 if k % 2 else -6)) for k in range(30)]  # wobble across the line
    path += [(500.0, 420.0 + 15 * k) for k in range(4)]  # leave below
    crossings = run(horizontal_line(), path)
    assert [c.direction for c in crossings] == ["in"]


def test_track_that_appears_past_the_line_is_not_counted() -> None:
    assert run(horizontal_line(), [(500, 420 + 20 * k) for k in range(10)]) == []


def test_crossing_while_the_track_was_not_reported_is_counted_on_return() -> None:
    line = horizontal_line()
    assert line.update(tracked([(3, 500, 350)]), at(0)) == ()
    assert line.update(tracked([(3, 500, 380)]), at(1)) == ()
    assert line.update(tracked([]), at(2)) == ()  # lost for a moment while crossing
    assert [c.direction for c in line.update(tracked([(3, 500, 440)]), at(3))] == ["in"]


def test_several_tracks_in_one_frame_and_class_from_the_detections() -> None:
    line = horizontal_line()
    line.update(tracked([(1, 300, 390), (2, 600, 410), (3, 900, 390)], classes=[0, 2, 0]), at(0))
    out = line.update(tracked([(1, 300, 410), (2, 600, 390), (3, 900, 410)], classes=[0, 2, 0]), at(1))
    assert sorted((c.track_id, c.vehicle_class, c.direction) for c in out) == [
        (1, "motorbike", "in"),
        (2, "truck", "out"),
    ]


def test_bottom_center_anchor_counts_when_the_wheels_cross() -> None:
    # Box 20 px tall: its bottom crosses y=400 one step before its center does.
    center = run(horizontal_line(anchor="center"), [(500, 385), (500, 395)])
    bottom = run(horizontal_line(anchor="bottom_center"), [(500, 385), (500, 395)])
    assert center == []
    assert [c.direction for c in bottom] == ["in"]


def test_min_track_hits_delays_counting() -> None:
    line = horizontal_line(min_track_hits=3)
    assert run(line, [(500, 390), (500, 410), (500, 430)]) == []  # crossed on its 2nd sighting
    assert len(run(line, [(400, 370), (400, 390), (400, 410)], track_id=9)) == 1


def test_untracked_rows_are_ignored() -> None:
    line = horizontal_line()
    raw = Detections(
        xyxy=np.array([[490, 380, 510, 400]], dtype=np.float32),
        confidence=np.array([0.9], dtype=np.float32),
        class_id=np.array([1]),
        class_names=NAMES,
    )
    assert line.update(raw, at(0)) == ()
    assert line.remembered_tracks == 0


def test_state_is_forgotten_after_forget_after_s() -> None:
    line = horizontal_line(forget_after_s=2.0)
    for k in range(50):
        line.update(tracked([(100 + k, 500, 300)]), at(k))  # one new track every 0.1 s, each seen once
    assert line.remembered_tracks == 21  # seen within the last 2.0 s, both ends included
    line.update(tracked([]), at(200))
    assert line.remembered_tracks == 0


def test_state_is_capped_at_max_tracks() -> None:
    line = horizontal_line(max_tracks=10)
    line.update(tracked([(i, 20.0 * i, 300) for i in range(25)]), at(0))
    assert line.remembered_tracks == 10
    assert line.tracks_evicted == 15


def test_a_forgotten_track_is_not_counted_on_return() -> None:
    line = horizontal_line(forget_after_s=1.0)
    line.update(tracked([(4, 500, 380)]), at(0))
    line.update(tracked([]), at(30))
    assert line.update(tracked([(4, 500, 420)]), at(31)) == ()


def test_duplicate_track_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        horizontal_line().update(tracked([(1, 10, 10), (1, 20, 20)]), at(0))


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        horizontal_line().update(tracked([]), dt.datetime(2026, 1, 1))  # noqa: DTZ001


def test_segment_is_scaled_to_the_frame() -> None:
    assert horizontal_line().segment_px == ((200.0, 400.0), (800.0, 400.0))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": (1.2, 0.5)}, "0..1"),
        ({"end": (0.5, -0.1)}, "0..1"),
        ({"end": (0.2, 0.5)}, "same point"),
        ({"id": "bad id!"}, "pattern"),
        ({"min_track_hits": 1}, "greater than or equal"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_config_is_validated(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LineConfig.model_validate({"id": "gate-1", "start": (0.2, 0.5), "end": (0.8, 0.5), **overrides})


def test_frame_size_must_be_positive() -> None:
    config = LineConfig(id="l1", start=(0.0, 0.0), end=(1.0, 1.0))
    with pytest.raises(ValueError, match="frame size"):
        CountingLine(config, 0, 480)
    assert config.anchor == "bottom_center"
    assert config.display_name == "l1"


# -- once per line: jitter, brief loss, the segment's extension ---------------------------------


def run_frames(line: CountingLine, frames: list[list[tuple[int, float, float]]]) -> list[Crossing]:
    """One update per frame of (track_id, x, y) rows, 0.1 s apart."""
    crossings: list[Crossing] = []
    for k, rows in enumerate(frames):
        crossings.extend(line.update(tracked(rows), at(k)))
    return crossings


def test_jitter_on_the_line_with_brief_losses_is_counted_once() -> None:
    frames: list[list[tuple[int, float, float]]] = [[(5, 500.0, 340.0 + 20 * k)] for k in range(3)]
    for k in range(40):  # stopped on the line: the box wobbles across it and the detector misses a frame in 4
        frames.append([] if k % 4 == 3 else [(5, 500.0 + k % 3, 400.0 + (7 if k % 2 else -7))])
    frames += [[(5, 500.0, 430.0 + 20 * k)] for k in range(3)]
    assert [c.direction for c in run_frames(horizontal_line(), frames)] == ["in"]


def test_lost_after_crossing_and_refound_behind_the_line_is_not_counted_again() -> None:
    line = horizontal_line()
    frames = [[(6, 500.0, 360.0)], [(6, 500.0, 380.0)], [(6, 500.0, 410.0)]]  # crossed: counted
    frames += [[]] * 8  # lost for 0.8 s
    frames += [[(6, 500.0, 390.0)], [(6, 500.0, 410.0)], [(6, 500.0, 395.0)], [(6, 500.0, 440.0)]]  # re-found
    assert [c.direction for c in run_frames(line, frames)] == ["in"]


def test_touching_or_crossing_only_the_extension_never_counts() -> None:
    line = horizontal_line()  # segment x 200..800 at y 400
    touch = [(900.0, 360.0), (900.0, 390.0), (900.0, 400.0), (900.0, 390.0), (900.0, 360.0)]
    assert run(line, touch, track_id=1) == []
    across_beyond_the_end = [(860.0, 360.0 + 20 * k) for k in range(5)]
    assert run(line, across_beyond_the_end, track_id=2) == []
    wobble_on_the_extension = [(150.0, 400.0 + (5 if k % 2 else -5)) for k in range(20)]
    assert run(line, wobble_on_the_extension, track_id=3) == []
    along_the_extension_into_the_end = [(900.0 - 20 * k, 400.0) for k in range(5)]  # stops at x=820
    assert run(line, along_the_extension_into_the_end, track_id=4) == []
    # The same motion as ``touch`` but 200 px to the left, over the segment itself, is one crossing.
    assert len(run(line, [(500.0, y) for y in (360.0, 390.0, 410.0, 430.0)], track_id=5)) == 1


# -- ID switches ---------------------------------------------------------------------------------


def switch_frames(new_id_path: list[tuple[float, float]]) -> list[list[tuple[int, float, float]]]:
    """Track 1 drives down over the line at 200 px/s and vanishes at y=440; 0.5 s later id 2 appears."""
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 360.0 + 20 * k)] for k in range(5)]  # to y=440
    frames += [[]] * 4
    frames += [[(2, x, y)] for x, y in new_id_path]
    return frames


# Id 2 appears near where track 1 would be (y=540 after 0.5 s at 200 px/s) and moves on, then its box
# jumps back over the line and forward again: without the hand-over that would count the car again.
WOBBLING_SUCCESSOR = [(500.0, 520.0), (500.0, 530.0), (500.0, 390.0), (500.0, 420.0), (500.0, 460.0)]


def test_a_new_id_continuing_a_counted_track_is_not_counted_again() -> None:
    line = horizontal_line()
    assert [(c.track_id, c.direction) for c in run_frames(line, switch_frames(WOBBLING_SUCCESSOR))] == [(1, "in")]
    assert line.id_switches == 1


def test_without_the_hand_over_the_same_tracks_count_twice() -> None:
    line = horizontal_line(id_switch_max_gap_s=0)
    crossings = run_frames(line, switch_frames(WOBBLING_SUCCESSOR))
    assert [(c.track_id, c.direction) for c in crossings] == [(1, "in"), (2, "out")]
    assert line.id_switches == 0


def test_a_new_id_far_away_or_late_is_another_vehicle() -> None:
    far = [(760.0, 520.0 - 40 * k) for k in range(5)]  # 260 px away: more than one box (20 px) from the path
    line = horizontal_line()
    assert [(c.track_id, c.direction) for c in run_frames(line, switch_frames(far))] == [(1, "in"), (2, "out")]
    late = horizontal_line(id_switch_max_gap_s=0.3)  # id 2 comes 0.5 s after track 1 vanished
    crossings = run_frames(late, switch_frames(WOBBLING_SUCCESSOR))
    assert [(c.track_id, c.direction) for c in crossings] == [(1, "in"), (2, "out")]


def test_a_vehicle_following_close_behind_still_counts() -> None:
    # Car A crosses and vanishes; car B's track starts right behind where A was last seen, on the near side.
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 360.0 + 20 * k)] for k in range(5)]  # A to y=440
    frames += [[(2, 500.0, 395.0 + 15 * k)] for k in range(5)]  # B from y=395 (near side) over the line
    line = horizontal_line(id_switch_radius=3.0)  # generous radius: B starts 45 px (2.25 boxes) from A
    assert [(c.track_id, c.direction) for c in run_frames(line, frames)] == [(1, "in"), (2, "in")]


def test_an_id_switch_during_the_crossing_counts_the_vehicle_once() -> None:
    # Track 1 vanishes just before the line; id 2 appears just past it: neither id saw both sides.
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 330.0 + 20 * k)] for k in range(3)]  # to 370
    frames += [[]] * 2
    frames += [[(2, 500.0, 430.0 + 20 * k)] for k in range(4)]
    assert [(c.track_id, c.direction) for c in run_frames(horizontal_line(), frames)] == [(2, "in")]
    assert run_frames(horizontal_line(id_switch_max_gap_s=0), frames) == []


def test_a_vanished_track_is_continued_once_by_the_closest_new_id() -> None:
    line = horizontal_line()
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 360.0 + 20 * k)] for k in range(5)]
    frames.append([(2, 500.0, 460.0), (3, 505.0, 462.0)])  # two new ids next to the vanished counted track
    frames.append([(2, 500.0, 470.0), (3, 505.0, 472.0)])
    frames += [[(2, 500.0, 390.0), (3, 505.0, 390.0)], [(2, 500.0, 420.0), (3, 505.0, 420.0)]]
    crossings = run_frames(line, frames)
    # Id 2 (closest) continues track 1 and is never counted; id 3 is a track of its own.
    assert [(c.track_id, c.direction) for c in crossings] == [(1, "in"), (3, "out")]
    assert line.id_switches == 1


def test_oncoming_traffic_near_a_vanished_track_keeps_its_own_count() -> None:
    # Car 1 drives down over the line and vanishes at y=440; right there car 2's track starts, driving UP.
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 360.0 + 20 * k)] for k in range(5)]
    frames += [[(2, 505.0, 450.0 - 20 * k)] for k in range(5)]  # 450, 430, 410, 390 (crossed), 370
    line = horizontal_line()
    assert [(c.track_id, c.direction) for c in run_frames(line, frames)] == [(1, "in"), (2, "out")]
    assert line.id_switches == 0


def test_a_stopped_vehicle_whose_id_switches_is_not_counted_again() -> None:
    # Stopped just past the line (a red light); its id switches, and the new id's box wobbles over the line.
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 370.0 + 15 * k)] for k in range(3)]  # to 400
    frames += [[(1, 500.0, 402.0 + (k % 2))] for k in range(20)]  # stopped at y=402..403: counted "in"
    frames += [[]] * 3
    frames += [[(2, 500.0, 402.0 + (-4 if k % 2 else 0))] for k in range(30)]  # new id: 402, 398, 402, ...
    line = horizontal_line()
    assert [(c.track_id, c.direction) for c in run_frames(line, frames)] == [(1, "in")]
    assert line.id_switches == 1
    assert len(run_frames(horizontal_line(id_switch_max_gap_s=0), frames)) == 2


def test_a_track_still_present_is_never_continued() -> None:
    line = horizontal_line()
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 360.0 + 20 * k)] for k in range(5)]
    frames.append([(1, 500.0, 460.0), (2, 503.0, 462.0)])  # a duplicate track beside a present one
    frames += [[(1, 500.0, 480.0), (2, 503.0, 390.0)], [(1, 500.0, 500.0), (2, 503.0, 420.0)]]
    crossings = run_frames(line, frames)
    assert [(c.track_id, c.direction) for c in crossings] == [(1, "in"), (2, "out")]
    assert line.id_switches == 0


def test_a_hidden_vehicle_that_reappears_under_its_own_id_is_counted_too() -> None:
    # Car 1 drives down towards the line and is hidden (occluded) at y=370; car 2's track starts where
    # car 1 would be, drives on and crosses: taken for car 1's new id, it is counted for their shared passage.
    # Then car 1 comes out from behind under its own id: the link was wrong, and car 1 counts as well.
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 330.0 + 10 * k)] for k in range(5)]  # to y=370
    frames += [[(2, 500.0, 385.0 + 10 * k)] for k in range(4)]  # 385 .. 415: crosses at 405
    frames += [[(2, 500.0, 425.0 + 10 * k), (1, 500.0, 375.0 + 10 * k)] for k in range(6)]  # 1 crosses at 405
    line = horizontal_line()
    crossings = run_frames(line, frames)
    assert [(c.track_id, c.direction) for c in crossings] == [(2, "in"), (1, "in")]
    assert (line.id_switches, line.links_undone) == (0, 1)


def test_a_link_undone_before_it_was_decided_releases_the_held_crossing() -> None:
    # As above, but car 2 crosses at once (its crossing is held while the link is undecided) and car 1
    # reappears before car 2 has moved far enough for a decision: car 2's held crossing is counted then.
    frames: list[list[tuple[int, float, float]]] = [[(1, 500.0, 350.0 + 10 * k)] for k in range(5)]  # to y=390
    frames += [[(2, 500.0, 395.0)], [(2, 500.0, 401.0)]]  # crossed by 6 px: less than a quarter box
    frames += [[(2, 500.0, 402.0 + 10 * k), (1, 500.0, 385.0 + 10 * k)] for k in range(4)]
    line = horizontal_line()
    crossings = run_frames(line, frames)
    assert [(c.track_id, c.direction) for c in crossings] == [(2, "in"), (1, "in")]
    assert line.links_undone == 1
