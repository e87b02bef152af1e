"""Traffic for the synthetic scene: lanes, arrivals and a car-following simulation with a signal.

Each lane is simulated on its own (vehicles never change lane). Drivers follow the
Intelligent Driver Model (Treiber et al., 2000): they keep a time gap to the vehicle ahead
and a standstill gap in queues. A lane that obeys the signal stops at red: the first vehicle
brakes to a standstill at its own stop position (where the scene puts its anchor right at the
counting line), the others queue behind it; at green the queue drives off.

Everything is a pure function of the parameters and the random generator handed in, so the
same seed gives the same traffic. Positions are sampled at frame times; the simulation takes
``SUBSTEPS`` steps per frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from devstack.scene_meshes import VehicleKind, vehicle_length_m

Heading = Literal["towards", "away"]
"""Towards the camera (down the image, the counting line's 'in') or away from it ('out')."""

SUBSTEPS = 4
A_MAX = 1.5
"""IDM maximum acceleration, m/s^2."""
B_COMFORT = 2.5
"""IDM comfortable deceleration, m/s^2; also the braking a driver plans for a red light."""
B_MAX = 5.0
"""Hardest braking a driver accepts for a red light; closer than that, the driver goes on (amber)."""
TIME_GAP_S = 1.1
STANDSTILL_GAP_M: dict[VehicleKind, float] = {"car": 2.0, "van": 2.0, "truck": 2.5, "bus": 2.5, "motorbike": 1.0}


def _cars_only() -> dict[VehicleKind, float]:
    return {"car": 1.0}


class LaneSpec(BaseModel):
    """One lane of the road and the traffic in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x_m: float = Field(ge=-7.0, le=7.0, description="Lane centre across the road, metres (road is 14 m wide).")
    heading: Heading = Field(description="'towards' the camera (counted 'in') or 'away' from it ('out').")
    speed_mps: float = Field(gt=0, le=30, description="Mean desired speed.")
    speed_spread: float = Field(
        default=0.1, ge=0, lt=1, description="Each driver's desired speed is speed_mps times U(1-s, 1+s)."
    )
    share: float = Field(default=1.0, gt=0, description="Share of the scene's arrival rate that uses this lane.")
    mix: dict[VehicleKind, float] = Field(
        default_factory=_cars_only, description="Relative frequency of each vehicle kind."
    )
    lateral_spread_m: float = Field(
        default=0.0, ge=0, le=1.2, description="Drivers keep a random offset up to this from the lane centre."
    )
    stops_at_signal: bool = Field(default=False, description="Vehicles stop at the counting line while red.")

    @field_validator("mix")
    @classmethod
    def _positive_mix(cls, mix: dict[VehicleKind, float]) -> dict[VehicleKind, float]:
        if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("mix needs at least one kind with a positive weight and no negative weights")
        return mix

    @property
    def direction(self) -> int:
        """+1 when moving to larger ground y (away from the camera), -1 towards it."""
        return 1 if self.heading == "away" else -1


class SignalSpec(BaseModel):
    """A fixed-time traffic signal at the counting line, for lanes with ``stops_at_signal``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_red_s: float = Field(ge=0, description="When the first red phase starts.")
    red_s: float = Field(gt=0, description="Length of each red phase.")
    green_s: float = Field(gt=0, description="Length of each green phase.")

    def is_red(self, t: float) -> bool:
        if t < self.first_red_s:
            return False
        return (t - self.first_red_s) % (self.red_s + self.green_s) < self.red_s


@dataclass(frozen=True, slots=True)
class Arrival:
    """A vehicle that a lane's traffic source sends into the view."""

    lane: int
    kind: VehicleKind
    planned_s: float
    """When it would like to enter; it waits (out of view) while the lane's entry is blocked."""
    desired_speed: float
    lateral_m: float
    paint: tuple[int, int, int]
    accent: tuple[int, int, int]
    stop_offset_px: float
    """At red, the first vehicle's anchor stops this many pixels before the counting line."""


@dataclass(frozen=True, slots=True)
class LaneGeometry:
    """Where one kind of vehicle enters and leaves one lane's view, and stops at red, in lane coordinates.

    Lane coordinate p = direction * ground y: it grows along the direction of travel.
    """

    enter_p: float
    exit_p: float
    stop_p: float | None


PAINTS_BGR: tuple[tuple[int, int, int], ...] = (
    (235, 235, 235),  # white (the most common car colour in Vietnam)
    (236, 234, 228),
    (190, 190, 195),  # silver
    (30, 30, 32),  # black
    (95, 95, 100),  # grey
    (40, 40, 170),  # red
    (120, 60, 20),  # blue
    (200, 215, 225),  # beige
    (60, 60, 140),  # dark red
    (70, 45, 25),  # navy
)
ACCENTS_BGR: tuple[tuple[int, int, int], ...] = (
    (200, 200, 205),
    (40, 120, 200),
    (150, 90, 40),
    (60, 150, 80),
    (50, 50, 60),
    (170, 170, 60),
)


def plan_arrivals(
    lanes: tuple[LaneSpec, ...],
    rng: np.random.Generator,
    *,
    vehicles_per_minute: float,
    min_gap_m: float,
    last_arrival_s: float,
    max_stop_offset_px: float,
) -> list[Arrival]:
    """Poisson arrivals per lane, at least one vehicle length plus ``min_gap_m`` apart at the desired speed."""
    total_share = sum(lane.share for lane in lanes)
    arrivals: list[Arrival] = []
    for index, lane in enumerate(lanes):
        rate = vehicles_per_minute / 60.0 * lane.share / total_share
        kinds = sorted(lane.mix)
        weights = np.array([lane.mix[k] for k in kinds], dtype=np.float64)
        t = float(rng.uniform(0.0, 1.0 / rate))
        while t < last_arrival_s:
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            speed = lane.speed_mps * float(rng.uniform(1 - lane.speed_spread, 1 + lane.speed_spread))
            lateral = float(rng.uniform(-lane.lateral_spread_m, lane.lateral_spread_m))
            paint = PAINTS_BGR[int(rng.integers(len(PAINTS_BGR)))]
            accent = ACCENTS_BGR[int(rng.integers(len(ACCENTS_BGR)))]
            offset = round(float(rng.uniform(0.25, max(max_stop_offset_px, 0.25))), 3)
            arrivals.append(Arrival(index, kind, round(t, 4), speed, round(lateral, 3), paint, accent, offset))
            t += (vehicle_length_m(kind) + min_gap_m) / speed + float(rng.exponential(1.0 / rate))
    arrivals.sort(key=lambda a: (a.planned_s, a.lane))
    return arrivals


@dataclass(slots=True)
class _Driver:
    """Mutable simulation state of one vehicle; never leaves this module."""

    index: int
    arrival: Arrival
    geometry: LaneGeometry
    length: float
    p: float = math.nan
    v: float = 0.0
    state: Literal["waiting", "driving", "gone"] = "waiting"
    passed_stop: bool = False


def simulate(
    lanes: tuple[LaneSpec, ...],
    arrivals: list[Arrival],
    geometry: Callable[[Arrival], LaneGeometry],
    signal: SignalSpec | None,
    *,
    fps: int,
    n_frames: int,
) -> list[npt.NDArray[np.float64]]:
    """Ground y of every arrival's centre at every frame (NaN while out of the simulated stretch)."""
    positions = [np.full(n_frames, np.nan) for _ in arrivals]
    by_lane: dict[int, list[_Driver]] = {}
    for i, arrival in enumerate(arrivals):
        driver = _Driver(i, arrival, geometry(arrival), vehicle_length_m(arrival.kind))
        by_lane.setdefault(arrival.lane, []).append(driver)
    dt = 1.0 / (fps * SUBSTEPS)
    for lane_index, drivers in by_lane.items():
        lane = lanes[lane_index]
        first = 0  # vehicles never overtake within a lane, so they leave in arrival order
        for frame in range(n_frames):
            while first < len(drivers) and drivers[first].state == "gone":
                first += 1
            for driver in drivers[first:]:
                if driver.state == "waiting":
                    break
                positions[driver.index][frame] = lane.direction * driver.p
            for sub in range(SUBSTEPS):
                t = (frame * SUBSTEPS + sub) / (fps * SUBSTEPS)
                red = signal is not None and lane.stops_at_signal and signal.is_red(t)
                _step(drivers, first, t, dt, red)
    return positions


def _step(drivers: list[_Driver], first: int, t: float, dt: float, red: bool) -> None:
    """Advance one lane by ``dt``: move every driving vehicle, front first, then let the next one in."""
    leader: _Driver | None = None
    for driver in drivers[first:]:
        if driver.state == "gone":
            continue
        if driver.state == "waiting":
            if t < driver.arrival.planned_s or not _may_enter(driver, leader):
                break  # the ones behind wait too: a lane's traffic source is first in, first out
            driver.state = "driving"
            driver.p = driver.geometry.enter_p
            driver.v = driver.arrival.desired_speed if leader is None else min(driver.arrival.desired_speed, leader.v)
        _move(driver, leader, dt, red)
        if driver.p >= driver.geometry.exit_p:
            driver.state = "gone"
        else:
            leader = driver


def _gap(driver: _Driver, leader: _Driver) -> float:
    return (leader.p - leader.length / 2) - (driver.p + driver.length / 2)


def _may_enter(driver: _Driver, leader: _Driver | None) -> bool:
    if leader is None:
        return True
    standstill = STANDSTILL_GAP_M[driver.arrival.kind]
    gap = (leader.p - leader.length / 2) - (driver.geometry.enter_p + driver.length / 2)
    return gap >= standstill + TIME_GAP_S * min(driver.arrival.desired_speed, leader.v)


def _move(driver: _Driver, leader: _Driver | None, dt: float, red: bool) -> None:
    v, v0 = driver.v, driver.arrival.desired_speed
    accel = A_MAX * (1.0 - (v / v0) ** 4)
    limit = math.inf
    if leader is not None:
        gap = max(_gap(driver, leader), 0.05)
        standstill = STANDSTILL_GAP_M[driver.arrival.kind]
        wanted = standstill + max(0.0, v * TIME_GAP_S + v * (v - leader.v) / (2 * math.sqrt(A_MAX * B_COMFORT)))
        accel -= A_MAX * (wanted / gap) ** 2
        limit = leader.p - leader.length / 2 - driver.length / 2 - 0.3
    stop_p = driver.geometry.stop_p
    if stop_p is not None and not driver.passed_stop:
        distance = stop_p - driver.p
        if distance < 0:
            driver.passed_stop = True
        elif red and (v * v <= 2 * B_MAX * distance or v < 0.1):
            # Brake at a constant rate that ends exactly at the stop position, once it reaches B_COMFORT.
            if distance > 0 and v * v / (2 * distance) >= B_COMFORT:
                accel = min(accel, -v * v / (2 * distance))
            limit = min(limit, stop_p)
    new_v = max(0.0, v + accel * dt)
    new_p = driver.p + (v + new_v) / 2 * dt
    if new_p >= limit:
        # Never into the vehicle ahead, never past a red light: stand at the limit.
        new_p = max(driver.p, limit)
        new_v = 0.0 if limit == stop_p or leader is None else min(new_v, leader.v)
    driver.p, driver.v = new_p, new_v
