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
