"""The generated construction site: deterministic, its pictures match its truth, its schedule falls behind."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from devstack import site_render
from devstack.site_scenes import (
    CLOSE_H,
    condition_of,
    default_scenario,
    frame_hours,
    frame_times,
    planned_project,
    progress_config,
    reference_images,
    render_site,
    road_layers,
    site_frames,
    true_alert_day,
    true_gap,
    true_percent,
    true_project,
)
from devstack.site_video import first_frame_time, sample_pts, write_site_video
from edge_agent.progress.daylight import in_daylight

SMALL = (320, 180)


def test_the_same_seed_gives_the_same_pixels_and_another_seed_other_weather() -> None:
    a, b = default_scenario(3, days=4), default_scenario(3, days=4)
    frames_a = [f.image for f in site_frames(a, 6, SMALL)]
    frames_b = [f.image for f in site_frames(b, 6, SMALL)]
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))
    other = [f.image for f in site_frames(default_scenario(4, days=4), 6, SMALL)]
    assert not all(np.array_equal(x, y) for x, y in zip(frames_a, other, strict=True))


@pytest.mark.parametrize("percent", [0.0, 7.5, 33.3, 50.0, 81.0, 100.0])
def test_the_built_share_of_each_region_is_its_true_percent(percent: float) -> None:
    scenario = default_scenario()
    for package in scenario.packages:
        cell = (round(package.cell[0] * SMALL[0]), round(package.cell[1] * SMALL[1]))
        spec = site_render.FillSpec(package.region, "concrete", package.fill, cell)
        rank = site_render.fill_rank(spec, SMALL)
        inside = np.isfinite(rank)
        built = float((rank[inside] < percent / 100 - 1e-9).mean())
        largest_unit = float(np.unique(rank[inside], return_counts=True)[1].max()) / inside.sum()
        assert abs(built - percent / 100) <= largest_unit + 1e-9, (package.id, built, largest_unit)


def test_road_layers_count_base_half_and_asphalt_fully() -> None:
    scenario = default_scenario()
    for percent in (0.0, 10.0, 30.0, 55.0, 60.0, 80.0, 100.0):
        base, asphalt = road_layers(scenario, percent)
        assert 0 <= asphalt <= base <= 1
        assert 50 * (base - asphalt) + 100 * asphalt == pytest.approx(percent)


def test_truth_rises_in_working_hours_only_and_stands_still_in_the_stall() -> None:
    scenario = default_scenario()
    (stall_start, stall_end) = scenario.stalls[0]
    for package in scenario.packages:
        values = [true_percent(scenario, package.id, t) for _, _, t in frame_times(scenario, 12)]
        assert all(b >= a for a, b in itertools.pairwise(values)), package.id
        assert values[0] == 0.0 or package.start_day == 0
        night = [true_percent(scenario, package.id, scenario.local(d, h)) for d in (20,) for h in (18.0, 23.0)]
        assert night[0] == night[1]
        stalled = {true_percent(scenario, package.id, scenario.close_of(d)) for d in range(stall_start, stall_end)}
        assert len(stalled) == 1, package.id
    assert true_project(scenario, scenario.close_of(scenario.days - 1)) < 100


def test_the_true_gap_crosses_ten_points_once_during_the_stall() -> None:
    scenario = default_scenario()
    day = true_alert_day(scenario)
    assert day is not None
    assert scenario.stalls[0][0] <= day < scenario.stalls[0][1]
    # A clear crossing: at least a point on each side, so the day does not hinge on a rounding.
    assert true_gap(scenario, day - 1) <= 9.0
    assert true_gap(scenario, day) >= 11.0
    assert all(true_gap(scenario, d) <= 6.0 for d in range(day - 3))
    assert planned_project(scenario, day) > true_project(scenario, scenario.close_of(day))
    project_points = {p.date: p.planned_pct for p in scenario.plan_points if p.package_id == ""}
    assert project_points[scenario.start + dt.timedelta(days=day)] == pytest.approx(planned_project(scenario, day))


def test_every_condition_occurs_and_night_frames_are_dark_and_outside_daylight() -> None:
    scenario = default_scenario()
    config = progress_config(scenario)
    seen: Counter[str] = Counter()
    for day, hour, t in frame_times(scenario, 12):
        condition = condition_of(scenario, day, hour)
        seen[condition] += 1
        if condition == "night":
            assert not in_daylight(t, config.daylight, config.timezone)
        else:
            assert in_daylight(t, config.daylight, config.timezone), (day, hour, condition)
    assert set(seen) == set(site_render.CONDITIONS), seen
    night = render_site(scenario, scenario.local(5, 23.0), "night", np.random.default_rng(0), SMALL)
    clear = render_site(scenario, scenario.local(5, 11.0), "clear", np.random.default_rng(0), SMALL)
    assert night.image.mean() < 0.1 * 255 < 0.35 * 255 < clear.image.mean()


def test_crowds_and_trucks_come_with_their_boxes_inside_the_picture() -> None:
    scenario = default_scenario()
    crowd = render_site(scenario, scenario.local(20, 11.0), "crowd", np.random.default_rng(1), SMALL)
    truck = render_site(scenario, scenario.local(20, 13.0), "truck_parked", np.random.default_rng(1), SMALL)
    assert len(crowd.occluders) >= 10
    assert crowd.occluders.dtype == np.float32
    assert len(truck.occluders) >= 1
    widest = truck.occluders[np.argmax(truck.occluders[:, 2] - truck.occluders[:, 0])]
    assert widest[2] - widest[0] >= 0.25 * SMALL[0]
    for boxes in (crowd.occluders, truck.occluders):
        assert (boxes[:, 2] > boxes[:, 0]).all()
        assert (boxes[:, 3] > boxes[:, 1]).all()
        assert (boxes[:, 1] >= 0).all()
        assert (boxes[:, 3] <= SMALL[1]).all()
    with pytest.raises(ValueError, match="unknown condition"):
        render_site(scenario, scenario.local(0, 11.0), "snow", np.random.default_rng(0), SMALL)


def test_the_config_names_exactly_the_reference_images() -> None:
    scenario = default_scenario()
    for references in ("setup", "full"):
        config = progress_config(scenario, references=references)
        images = reference_images(scenario, SMALL, references=references)
        assert {r.image for r in config.references} == set(images)
        assert {image.shape for image in images.values()} == {(SMALL[1], SMALL[0], 3)}
        assert [p.id for p in config.packages] == [p.id for p in scenario.packages]
        assert config.daylight.end == "17:30"
    assert CLOSE_H == 17.5
    overridden = progress_config(scenario, sample_every_s=600.0)
    assert overridden.sample_every_s == 600.0


def test_frame_hours_are_spread_over_the_day() -> None:
    assert frame_hours(12) == (1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0, 21.0, 23.0)


def test_the_video_replays_the_sample_times_as_its_timestamps(tmp_path: Path) -> None:
    scenario = default_scenario(days=2)
    path = write_site_video(tmp_path / "site.mp4", scenario, frames_per_day=4, size=SMALL)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = []
        for frame in container.decode(stream):
            assert frame.pts is not None
            assert frame.time_base is not None
            decoded.append((Fraction(frame.pts) * frame.time_base, frame.width, frame.height))
    assert len(decoded) == 8
    assert {(w, h) for _, w, h in decoded} == {SMALL}
    seconds = [s for s, _, _ in decoded]
    expected = [Fraction(p, 1000) for p in sample_pts(scenario, 4)]
    assert seconds == expected
    assert seconds[1] - seconds[0] == 6 * 3600
    origin = first_frame_time(scenario, 4)
    times = [origin + dt.timedelta(seconds=float(s)) for s in seconds]
    assert times == [t for _, _, t in frame_times(scenario, 4)]
