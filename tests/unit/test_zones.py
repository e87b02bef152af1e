"""Zones on plain arrays: polygon validation, inside test, occupancy by class, entries, exits, dwell."""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.analytics.geometry import points_in_polygon, polygon_area, self_intersection
from edge_agent.analytics.zones import Zone, ZoneConfig, ZoneObservation
from edge_agent.perception.types import Detections

NAMES = ("motorbike", "car", "bus")
T0 = dt.datetime(2026, 2, 9, 17, 30, tzinfo=dt.UTC)
WIDTH, HEIGHT = 1000, 800
SQUARE = ((0.2, 0.25), (0.6, 0.25), (0.6, 0.75), (0.2, 0.75))  # pixels x 200..600, y 200..600
HALF = 10.0


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def tracked(rows: list[tuple[int, float, float, int]]) -> Detections:
    """(track_id, anchor x, anchor y, class index): boxes built so that their CENTER is the anchor."""
    if not rows:
        return Detections.empty(NAMES)
    centres = np.array([[x, y] for _, x, y, _ in rows], dtype=np.float32)
    return Detections(
        xyxy=np.concatenate([centres - HALF, centres + HALF], axis=1),
        confidence=np.full(len(rows), 0.8, dtype=np.float32),
        class_id=np.array([c for *_, c in rows], dtype=np.int64),
        class_names=NAMES,
        tracker_id=np.array([tid for tid, *_ in rows], dtype=np.int64),
    )


def zone(**overrides: object) -> Zone:
    config = ZoneConfig.model_validate({"id": "stop-1", "polygon": SQUARE, "anchor": "center", **overrides})
    return Zone(config, WIDTH, HEIGHT)


def run(z: Zone, frames: list[tuple[float, list[tuple[int, float, float, int]]]]) -> list[ZoneObservation]:
    return [z.update(tracked(rows), at(seconds)) for seconds, rows in frames]


# -- polygons --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        (((0.1, 0.1), (0.9, 0.1)), "3 to 64 points"),
        (((0.1, 0.1), (0.9, 0.1), (0.5, 1.2)), "point 2"),
        (((0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)), "edges 0 .* and 2 .* cross"),  # a bow tie
        (((0.1, 0.1), (0.5, 0.5), (0.9, 0.9)), "cross or overlap"),  # all on one line: edges fold back
        (((0.1, 0.1), (0.1, 0.1), (0.9, 0.1), (0.9, 0.9)), "cross or overlap"),  # a repeated point
        (((0.1, 0.1), (0.9, 0.1), (0.5, 0.1001)), "area"),  # a sliver
        (tuple((0.5 + 0.4 * np.cos(a), 0.5 + 0.4 * np.sin(a)) for a in np.linspace(0, 6, 65)), "3 to 64"),
    ],
)
def test_bad_polygons_are_refused_with_a_reason(polygon: tuple[tuple[float, float], ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ZoneConfig(id="z", polygon=polygon)


def test_good_polygons_in_either_orientation_and_concave_ones_are_accepted() -> None:
    ZoneConfig(id="square", polygon=SQUARE)
    ZoneConfig(id="reversed", polygon=tuple(reversed(SQUARE)))
    ZoneConfig(id="l-shape", polygon=((0.1, 0.1), (0.5, 0.1), (0.5, 0.3), (0.3, 0.3), (0.3, 0.6), (0.1, 0.6)))
    with pytest.raises(ValidationError, match="Extra inputs"):
        ZoneConfig.model_validate({"id": "z", "polygon": SQUARE, "colour": "red"})


def test_polygon_helpers() -> None:
    assert polygon_area(SQUARE) == pytest.approx(0.2)
    assert self_intersection(SQUARE) is None
    assert self_intersection(((0, 0), (2, 2), (2, 0), (0, 2))) == (0, 2)


def test_inside_test_agrees_with_opencv_on_a_concave_polygon() -> None:
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    radii = np.where(np.arange(10) % 2 == 0, 300.0, 120.0)  # a five-pointed star
    star = np.stack([500 + radii * np.cos(angles), 400 + radii * np.sin(angles)], axis=1)
    points = np.random.default_rng(4).uniform([150, 50], [850, 750], size=(5000, 2)).astype(np.float32)
    contour = star.astype(np.float32).reshape(-1, 1, 2)
    signed = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points])
    clear = np.abs(signed) > 1e-3  # leave out points on the boundary itself
    assert clear.sum() > 4900
    ours = points_in_polygon(points, star)
    assert np.array_equal(ours[clear], signed[clear] > 0)
    assert 0.1 < ours.mean() < 0.6


# -- occupancy, entries, exits, dwell -------------------------------------------------------------


def test_occupancy_counts_tracked_anchors_inside_by_class() -> None:
    z = zone()
    rows = [
        (1, 300.0, 300.0, 0),
        (2, 310.0, 400.0, 0),
        (3, 500.0, 500.0, 1),
        (4, 700.0, 400.0, 2),
        (5, 100.0, 100.0, 1),
    ]
    (obs,) = run(z, [(0.0, rows)])
    assert obs.occupancy == (("car", 1), ("motorbike", 2))
    assert obs.occupancy_total == 3
    assert [(e.track_id, e.vehicle_class) for e in obs.entries] == [(1, "motorbike"), (2, "motorbike"), (3, "car")]
    box = np.array([[290, 290, 310, 310]], np.float32)
    untracked = Detections(box, np.array([0.9], np.float32), np.array([0], np.int64), NAMES)
    assert z.update(untracked, at(0.1)).occupancy == ()


def test_bottom_center_anchor_is_the_default() -> None:
    config = ZoneConfig(id="z", polygon=SQUARE)
    assert config.anchor == "bottom_center"
    z = Zone(config, WIDTH, HEIGHT)
    # The box's centre is 5 px above the zone's bottom edge, its bottom 5 px below: outside.
    assert z.update(tracked([(1, 400, 595, 1)]), at(0)).occupancy == ()


def test_a_vehicle_that_stops_in_the_zone_dwells_from_entry_to_its_last_sighting() -> None:
    z = zone(exit_grace_s=2.0)
    frames = [(0.5 * k, [(7, 110.0 + 50 * k, 400.0, 1)]) for k in range(5)]  # drives in: inside from x=210 (k=2)
    frames += [(2.5 + 0.5 * k, [(7, 300.0, 400.0, 1)]) for k in range(20)]  # stopped for 10 s, until 12.0
    frames += [(12.5 + 0.5 * k, [(7, 300.0 + 110 * (k + 1), 400.0, 1)]) for k in range(3)]  # leaves: x=410,520,630
    frames += [(14.0 + 0.5 * k, [(7, 700.0, 400.0, 1)]) for k in range(6)]  # outside
    observations = run(z, frames)
    entries = [e for o in observations for e in o.entries]
    exits = [e for o in observations for e in o.exits]
    assert [(e.track_id, e.timestamp) for e in entries] == [(7, at(1.0))]
    assert len(exits) == 1
    assert (exits[0].entered, exits[0].exited, exits[0].dwell_s) == (at(1.0), at(13.0), 12.0)
    decided = next(o for o in observations if o.exits)
    assert decided.timestamp == at(15.5)  # first frame more than exit_grace_s after the last sighting inside
    assert max(o.longest_inside_s or 0.0 for o in observations) == 14.0  # at 15.0, just before the exit


def test_brief_loss_and_edge_jitter_neither_exit_nor_re_enter() -> None:
    z = zone(exit_grace_s=1.0)
    frames: list[tuple[float, list[tuple[int, float, float, int]]]] = []
    for k in range(40):
        x = 205.0 + (-10 if k % 3 == 0 else 10)  # wobbling over the left edge at x=200
        frames.append((0.1 * k, [] if k % 7 == 6 else [(3, x, 400.0, 0)]))  # and lost one frame in seven
    observations = run(z, frames)
    assert sum(len(o.entries) for o in observations) == 1
    assert sum(len(o.exits) for o in observations) == 0
    assert z.inside == 1


def test_expire_ends_visits_when_no_frames_come() -> None:
    z = zone(exit_grace_s=2.0)
    run(z, [(0.0, [(1, 300.0, 300.0, 1)]), (1.0, [(1, 300.0, 300.0, 1), (2, 400.0, 400.0, 0)])])
    assert z.expire(at(2.5)).exits == ()
    later = z.expire(at(3.5))
    assert [(e.track_id, e.dwell_s) for e in later.exits] == [(1, 1.0), (2, 0.0)]
    assert later.occupancy is None
    assert later.occupancy_total is None
    assert later.longest_inside_s is None
    assert z.inside == 0


def test_visits_are_capped_at_max_tracks() -> None:
    z = zone(max_tracks=3)
    run(z, [(0, [(i, 250.0 + 20 * i, 300.0, 1) for i in range(8)])])
    assert z.inside == 3
    assert z.visits_evicted == 5


def test_bad_input_is_refused() -> None:
    z = zone()
    with pytest.raises(ValueError, match="twice"):
        z.update(tracked([(1, 300, 300, 0), (1, 310, 310, 0)]), at(0))
    with pytest.raises(ValueError, match="timezone"):
        z.update(tracked([]), dt.datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="frame size"):
        Zone(ZoneConfig(id="z", polygon=SQUARE), 0, 10)
    assert zone().polygon_px == ((200.0, 200.0), (600.0, 200.0), (600.0, 600.0), (200.0, 600.0))
