"""Generated construction-site sequences with ground truth: the proof of the progress estimator (issue 8).

A fixed camera watches a building go up (foundation, floor 1, floor 2, roof) and a road being laid across the
foreground (graded earth -> base course -> asphalt). Every package has a weight, an approved plan (the plan
points central's alert reads) and a TRUE schedule that lags it, with a site-wide stall (a material shortage)
while the plan keeps rising: the true gap planned - actual crosses 10 points on a known day
(``true_alert_day``).

Truth is exact by construction: a package's material fills its polygon unit by unit in a fixed order
(``devstack.site_render.fill_rank``), so the built share of the polygon IS the true %. Work happens in working
hours (07:00-17:00 local) on working days (not in a stall); a day's truth is its value at the day's close.

Frames come at ``frames_per_day`` local times a day (night ones too) under a condition drawn per day and hour
from the seed: clear, overcast, dawn/dusk light, rain, fog, night, a worker crowd, a parked truck. Every frame
carries the boxes of its workers and truck (the occluders a tracker would report) and the truth at its instant.

    scenario = default_scenario(seed=0)
    config = progress_config(scenario)                # ProgressCameraConfig matching the references
    refs = reference_images(scenario)                 # {"ref/not_started.png": image, ...}
    for frame in site_frames(scenario): ...           # SiteFrame(time, image, occluders, truth, condition)
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from devstack import site_render as render
from edge_agent.progress.config import PackageRegion, ProgressCameraConfig, ReferenceImage

TIMEZONE = "Asia/Ho_Chi_Minh"
START = dt.date(2026, 3, 2)
WORK_START_H, WORK_END_H = 7.0, 17.0
"""Local hours in which work progresses (truth rises only then)."""
CLOSE_H = 17.5
"""Local hour a day closes (the estimator's default daylight.end, 17:30): the day's truth is taken then."""
SIZE = (640, 360)
PROJECT_ID = "du-an-truong-hoc"
Fill = Literal["any", "bottom_up", "left_right", "right_left", "top_down"]


@dataclass(frozen=True)
class SitePackageTruth:
    """One work package: where it is built, how, its weight, its approved plan and its true schedule.

    ``start_day``/``finish_day`` are WORK days from the scenario start (a stall pushes them later in calendar
    days); ``plan_start``/``plan_finish`` are calendar days of the approved plan (linear between them).
    """

    id: str
    name: str
    weight: float
    region: tuple[tuple[float, float], ...]
    fill: Fill
    start_day: float
    finish_day: float
    plan_start: int
    plan_finish: int
    material: str
    cell: tuple[float, float]
    """(width, height) of one placed unit as a share of the image width/height."""


@dataclass(frozen=True)
class PlanPointSpec:
    """A planned % on a date; package_id '' is the project (weighted sum of the packages)."""

    package_id: str
    date: dt.date
    planned_pct: float


@dataclass(frozen=True)
class SiteScenario:
    packages: tuple[SitePackageTruth, ...]
    start: dt.date
    days: int
    seed: int
    stalls: tuple[tuple[int, int], ...] = ()
    """Calendar day ranges [first, end) in which no work happens (the site waits for material)."""
    plan_points: tuple[PlanPointSpec, ...] = field(default=())
    timezone: str = TIMEZONE
    road_split: tuple[float, float] = (60.0, 50.0)
    """Road package: base covers min(1, p/60) of its length, asphalt p/50 - base (so base 50 %, asphalt 100 %)."""

    def package(self, package_id: str) -> SitePackageTruth:
        for package in self.packages:
            if package.id == package_id:
                return package
        raise KeyError(package_id)

    def weights(self) -> dict[str, float]:
        total = sum(p.weight for p in self.packages)
        return {p.id: p.weight / total for p in self.packages}

    def local(self, day: int, hour: float) -> dt.datetime:
        """UTC instant of local ``hour`` on scenario day ``day``."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        midnight = dt.datetime.combine(self.start + dt.timedelta(days=day), dt.time(0), tzinfo=zone)
        return (midnight + dt.timedelta(hours=hour)).astimezone(dt.UTC)

    def close_of(self, day: int) -> dt.datetime:
        return self.local(day, CLOSE_H)


@dataclass(frozen=True)
class SiteFrame:
    time: dt.datetime
    image: npt.NDArray[np.uint8]
    occluders: npt.NDArray[np.float32]
    """Pixel xyxy boxes (n, 4) of the workers and truck in the picture."""
    truth: Mapping[str, float]
    """True % per package at ``time``."""
    condition: str


# -- the scenario ----------------------------------------------------------------------------------


def _rect(x0: float, y0: float, x1: float, y1: float) -> tuple[tuple[float, float], ...]:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def default_scenario(seed: int = 0, days: int = 60, start: dt.date = START) -> SiteScenario:
    """A school building and its access road over ``days`` days from ``start``; the site stalls on days 27-34."""
    packages = (
        SitePackageTruth("mong", "Móng / Foundation", 0.20, ((0.06, 0.62), (0.66, 0.62), (0.68, 0.72), (0.04, 0.72)),
                         "left_right", 0.0, 18.0, 0, 16, "concrete", (0.03, 0.10)),
        SitePackageTruth("tang-1", "Khung tầng 1 / Floor 1 frame", 0.25, _rect(0.10, 0.44, 0.62, 0.62),
                         "bottom_up", 14.0, 36.0, 10, 32, "brick", (0.03, 0.011)),
        SitePackageTruth("tang-2", "Khung tầng 2 / Floor 2 frame", 0.25, _rect(0.10, 0.26, 0.62, 0.44),
                         "bottom_up", 30.0, 52.0, 24, 44, "brick", (0.03, 0.011)),
        SitePackageTruth("mai", "Mái / Roof", 0.10, ((0.10, 0.26), (0.62, 0.26), (0.56, 0.17), (0.16, 0.17)),
                         "left_right", 48.0, 58.0, 42, 54, "roof", (0.04, 0.09)),
        SitePackageTruth("duong", "Đường nội bộ / Access road", 0.20, _rect(0.02, 0.80, 0.98, 0.96),
                         "left_right", 3.0, 50.0, 4, 48, "road", (0.02, 0.16)),
    )  # fmt: skip
    scenario = SiteScenario(packages, start, days, seed, stalls=((27, 34),))
    return SiteScenario(
        packages,
        start,
        days,
        seed,
        stalls=scenario.stalls,
        plan_points=_plan_points(scenario),
    )


def _plan_points(scenario: SiteScenario) -> tuple[PlanPointSpec, ...]:
    """Each package's plan (two points, linear) and the project's daily weighted sum."""
    points = []
    for p in scenario.packages:
        points.append(PlanPointSpec(p.id, scenario.start + dt.timedelta(days=p.plan_start), 0.0))
        points.append(PlanPointSpec(p.id, scenario.start + dt.timedelta(days=p.plan_finish), 100.0))
    for day in range(scenario.days + 1):
        points.append(
            PlanPointSpec("", scenario.start + dt.timedelta(days=day), round(planned_project(scenario, day), 4))
        )
    return tuple(points)


def planned_package(package: SitePackageTruth, day: int) -> float:
    span = max(package.plan_finish - package.plan_start, 1)
    return 100.0 * min(max((day - package.plan_start) / span, 0.0), 1.0)


def planned_project(scenario: SiteScenario, day: int) -> float:
    weights = scenario.weights()
    return sum(weights[p.id] * planned_package(p, day) for p in scenario.packages)


# -- truth -----------------------------------------------------------------------------------------


def _stalled(scenario: SiteScenario, day: int) -> bool:
    return any(first <= day < end for first, end in scenario.stalls)


def work_days(scenario: SiteScenario, t: dt.datetime) -> float:
    """Working time (in full working days) done on the site by ``t``: stall days and off-hours do not count."""
    local = t.astimezone(zoneinfo.ZoneInfo(scenario.timezone))
    day = (local.date() - scenario.start).days
    if day < 0:
        return 0.0
    hour = local.hour + local.minute / 60 + local.second / 3600
    done = float(sum(1 for d in range(day) if not _stalled(scenario, d)))
    if not _stalled(scenario, day):
        done += min(max((hour - WORK_START_H) / (WORK_END_H - WORK_START_H), 0.0), 1.0)
    return done


def true_percent(scenario: SiteScenario, package_id: str, t: dt.datetime) -> float:
    """True % complete of a package at ``t`` (linear in working time between its start and finish)."""
    package = scenario.package(package_id)
    span = package.finish_day - package.start_day
    share = (work_days(scenario, t) - package.start_day) / span
    return 100.0 * min(max(share, 0.0), 1.0)


def true_project(scenario: SiteScenario, t: dt.datetime) -> float:
    weights = scenario.weights()
    return sum(weights[p.id] * true_percent(scenario, p.id, t) for p in scenario.packages)


def true_gap(scenario: SiteScenario, day: int) -> float:
    """Planned - true project % at the close of ``day``."""
    return planned_project(scenario, day) - true_project(scenario, scenario.close_of(day))


def true_alert_day(scenario: SiteScenario, threshold: float = 10.0) -> int | None:
    """The first day whose true gap at close is above ``threshold`` points (what the alert should fire on)."""
    for day in range(scenario.days):
        if true_gap(scenario, day) > threshold:
            return day
    return None


# -- frames ----------------------------------------------------------------------------------------


def frame_hours(frames_per_day: int) -> tuple[float, ...]:
    """Local hours of the day's frames: evenly spread, centred in their slots (12 a day: 01:00, 03:00, ...)."""
    return tuple((i + 0.5) * 24.0 / frames_per_day for i in range(frames_per_day))


def condition_of(scenario: SiteScenario, day: int, hour: float) -> str:  # noqa: PLR0911 - one rule per line
    """The condition of a frame at local ``hour`` of ``day``: a pure function of the seed, day and hour."""
    if hour < 6.0 or hour >= 18.5:
        return "night"
    rng = np.random.default_rng([scenario.seed, 9_001, day])
    weather = rng.random()
    fog_morning = rng.random() < 0.15
    rain_from, rain_hours = float(rng.uniform(7, 15)), float(rng.uniform(2, 9))
    crowd_hour, truck_hour = float(rng.choice([9.0, 11.0, 13.0])), float(rng.choice([11.0, 13.0, 15.0]))
    crowd, truck = rng.random() < 0.35, rng.random() < 0.3
    slot = 24.0 / 12
    if weather < 0.14 and rain_from <= hour < rain_from + rain_hours:
        return "rain"
    if fog_morning and hour < 10.0:
        return "fog"
    if hour < 8.0:
        return "dawn"
    if hour >= 16.5:
        return "dusk"
    if crowd and abs(hour - crowd_hour) < slot / 2:
        return "crowd"
    if truck and abs(hour - truck_hour) < slot / 2:
        return "truck_parked"
    return "overcast" if weather < 0.4 else "clear"


def road_layers(scenario: SiteScenario, percent: float) -> tuple[float, float]:
    """(base, asphalt) shares of the road's length at ``percent``: base counts 50 %, asphalt 100 %."""
    base_at, asphalt_at = scenario.road_split
    base = min(1.0, percent / base_at)
    return base, min(max(0.0, percent / asphalt_at - base), base)


def _fill_specs(
    scenario: SiteScenario,
    percents: Mapping[str, float],
    size: tuple[int, int],
    layers: Mapping[str, tuple[float, float]] | None = None,
) -> list[tuple[render.FillSpec, float]]:
    width, height = size
    fills: list[tuple[render.FillSpec, float]] = []
    for p in scenario.packages:
        cell = (max(1, round(p.cell[0] * width)), max(1, round(p.cell[1] * height)))
        order = "bottom_up" if p.fill == "bottom_up" else "left_right"
        share = percents[p.id] / 100.0
        if p.material == "road":
            base, asphalt = (layers or {}).get(p.id) or road_layers(scenario, percents[p.id])
            fills.append((render.FillSpec(p.region, "base", order, cell), base))
            fills.append((render.FillSpec(p.region, "asphalt", order, cell), asphalt))
        else:
            fills.append((render.FillSpec(p.region, p.material, order, cell), share))
    return fills


def _people(
    scenario: SiteScenario, condition: str, rng: np.random.Generator, size: tuple[int, int]
) -> tuple[list[render.Figure], render.Truck | None]:
    width, height = size
    count = int(rng.integers(14, 26)) if condition == "crowd" else int(rng.integers(0, 4))
    if condition == "night":
        count = 0
    figures = []
    for _ in range(count):
        # Workers stand on the ground in front of the building, most of them at the foundation.
        y = float(rng.uniform(0.66, 0.80)) * height
        x = float(rng.uniform(0.08, 0.62) if condition == "crowd" else rng.uniform(0.05, 0.95)) * width
        figures.append(render.Figure(x, y, (0.065 + 0.05 * (y / height - 0.6)) * height,
                                     render.HI_VIS_BGR[int(rng.integers(0, 3))]))  # fmt: skip
    figures.sort(key=lambda f: f.y)
    truck = None
    if condition == "truck_parked":
        x0 = float(rng.uniform(0.05, 0.55)) * width
        truck = render.Truck(x0, 0.70 * height, x0 + 0.30 * width, 0.94 * height, (30, 160, 230))
    return figures, truck


def render_site(
    scenario: SiteScenario,
    t: dt.datetime,
    condition: str,
    rng: np.random.Generator,
    size: tuple[int, int] = SIZE,
    *,
    percents: Mapping[str, float] | None = None,
    texture_seed: int | None = None,
    layers: Mapping[str, tuple[float, float]] | None = None,
) -> SiteFrame:
    """The site at ``t`` (truth from the schedule, or ``percents``) under ``condition``."""
    if condition not in render.CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose from {render.CONDITIONS}")
    truth = (
        dict(percents) if percents is not None else {p.id: true_percent(scenario, p.id, t) for p in scenario.packages}
    )
    seed = scenario.seed if texture_seed is None else texture_seed
    base, sky = render.static_view(scenario.seed, size)
    image = base.copy()
    render.draw_fills(image, _fill_specs(scenario, truth, size, layers), seed, size)
    figures, truck = _people(scenario, condition, rng, size)
    boxes = [render.draw_figures(image, [f for f in figures if f.y < 0.7 * size[1]])]
    if truck is not None:
        boxes.append(np.array([render.draw_truck(image, truck)], dtype=np.float32))
    boxes.append(render.draw_figures(image, [f for f in figures if f.y >= 0.7 * size[1]]))
    # Only the sky that is still visible is veiled by the weather: a storey or a roof built up into the sky
    # area must keep its own colour, as it does on site.
    open_sky = sky & ~np.any(image != base, axis=2)
    lit = render.apply_condition(image, open_sky, condition, rng)
    occluders = np.concatenate(boxes).astype(np.float32).reshape(-1, 4)
    return SiteFrame(t, render.to_uint8(lit), occluders, truth, condition)


def frame_times(scenario: SiteScenario, frames_per_day: int = 12) -> Iterator[tuple[int, float, dt.datetime]]:
    for day in range(scenario.days):
        for hour in frame_hours(frames_per_day):
            yield day, hour, scenario.local(day, hour)


def site_frames(scenario: SiteScenario, frames_per_day: int = 12, size: tuple[int, int] = SIZE) -> Iterator[SiteFrame]:
    """Every frame of the scenario in time order, night ones included."""
    for day, hour, t in frame_times(scenario, frames_per_day):
        rng = np.random.default_rng([scenario.seed, day, round(hour * 60)])
        yield render_site(scenario, t, condition_of(scenario, day, hour), rng, size)


# -- references and the camera's config ------------------------------------------------------------

NOT_STARTED = "ref/not_started.png"
DONE = "ref/done.png"
ROAD_BASE = "ref/road_base.png"
References = Literal["setup", "full"]


def reference_images(
    scenario: SiteScenario, size: tuple[int, int] = SIZE, references: References = "full"
) -> dict[str, npt.NDArray[np.uint8]]:
    """Reference pictures keyed by the path the config names them by.

    ``not_started``: the site at setup (day 0, 10:00, clear, no work done). With ``full`` also ``done``: every
    package finished, rendered with OTHER material textures (a technician's picture of a finished similar
    element, not the future frame itself), and ``road_base``: the road with its base course laid (in progress).
    """
    zero = {p.id: 0.0 for p in scenario.packages}
    images = {NOT_STARTED: _still(scenario, zero, size, scenario.seed)}
    if references == "full":
        images[DONE] = _still(scenario, {p.id: 100.0 for p in scenario.packages}, size, scenario.seed + 1_000)
        road = {p.id: (1.0, 0.0) for p in scenario.packages if p.material == "road"}
        images[ROAD_BASE] = _still(scenario, zero, size, scenario.seed + 2_000, road)
    return images


def _still(
    scenario: SiteScenario,
    percents: Mapping[str, float],
    size: tuple[int, int],
    texture_seed: int,
    layers: Mapping[str, tuple[float, float]] | None = None,
) -> npt.NDArray[np.uint8]:
    """A reference picture: clear light, nobody in the picture."""
    base, sky = render.static_view(scenario.seed, size)
    image = base.copy()
    render.draw_fills(image, _fill_specs(scenario, percents, size, layers), texture_seed, size)
    lit = render.apply_condition(image, sky, "clear", np.random.default_rng([scenario.seed, 4_241, texture_seed]))
    return render.to_uint8(lit)


def progress_config(scenario: SiteScenario, references: References = "full", **overrides: Any) -> ProgressCameraConfig:
    """The camera's progress config: package regions and weights as in the scenario, the reference images."""
    refs = [ReferenceImage(image=NOT_STARTED, state="not_started", packages="all")]
    if references == "full":
        road = tuple(p.id for p in scenario.packages if p.material == "road")
        others = tuple(p.id for p in scenario.packages if p.material != "road")
        refs.append(ReferenceImage(image=DONE, state="done", packages="all"))
        if road:
            refs.append(ReferenceImage(image=ROAD_BASE, state="in_progress", packages=road))
            refs.append(ReferenceImage(image=ROAD_BASE, state="not_started", packages=others))
    packages = tuple(
        PackageRegion(id=p.id, name=p.name, region=p.region, weight=p.weight, fill=p.fill) for p in scenario.packages
    )
    fields: dict[str, Any] = {
        "project_id": PROJECT_ID,
        "timezone": scenario.timezone,
        "packages": packages,
        "references": tuple(refs),
        **overrides,
    }
    return ProgressCameraConfig(**fields)
