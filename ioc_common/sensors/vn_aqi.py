"""The Vietnamese hourly air quality index (AQI giờ, VN_AQI) per Quyết định 1459/QĐ-TCMT (2019).

Method (Tổng cục Môi trường, 2019), as implemented here:

- each parameter's sub-index is interpolated linearly in its breakpoint table
  ``AQI_x = (I[i+1] - I[i]) / (BP[i+1] - BP[i]) * (C_x - BP[i]) + I[i]`` for ``BP[i] <= C_x < BP[i+1]``,
  rounded to an integer (half up); a concentration on a breakpoint gets that breakpoint's index, one
  above the table's last breakpoint caps at 500 (O3 8 h is not defined above 400 ug/m3: None);
- gases (CO, SO2, NO2, O3) use their mean of the most recent hour;
- PM2.5 and PM10 use the NowCast of the last 12 hourly means ``c_1`` (most recent) .. ``c_12``:
  ``w* = c_min / c_max`` over the hours with data, ``w = w*`` if ``w* > 1/2`` else ``1/2``, and
  ``NowCast = sum(w**(i-1) * c_i) / sum(w**(i-1))`` over the hours with data; it needs data in at least
  2 of the 3 most recent hours (the Decision writes the ``w = 1/2`` case as ``sum((1/2)**i * c_i)``,
  which is the same up to the missing-hour normalisation used here);
- the hourly AQI is the largest sub-index, and exists only when PM2.5 or PM10 has one.

All concentrations are ug/m3 at 25 degC, 1 atm (``units.py`` converts ppm/ppb). The pure functions
work on hourly means; ``VnAqiAccumulator`` builds those means from a station's readings.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

AqiParameter = Literal["co", "so2", "no2", "o3", "o3_8h", "pm10", "pm2_5"]

INDEX_LEVELS: Final = (0, 50, 100, 150, 200, 300, 400, 500)
"""I_i of the breakpoint table (Bảng 1 of the Decision)."""

BREAKPOINTS: Final[dict[AqiParameter, tuple[float, ...]]] = {
    "co": (0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000),  # 1 h mean, ug/m3
    "so2": (0, 125, 350, 550, 800, 1_600, 2_100, 2_630),  # 1 h
    "no2": (0, 100, 200, 700, 1_200, 2_350, 3_100, 3_850),  # 1 h
    "o3": (0, 160, 200, 300, 400, 800, 1_000, 1_200),  # 1 h
    "o3_8h": (0, 100, 120, 170, 210, 400),  # 8 h; not defined above 400 (the 1 h value is used there)
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),  # 24 h table, applied to the hourly NowCast
    "pm2_5": (0, 25, 50, 80, 150, 250, 350, 500),
}
"""BP_i in ug/m3 for each index level I_i."""

MAX_AQI: Final = 500
GASES: Final = ("co", "so2", "no2", "o3")
PARTICLES: Final = ("pm2_5", "pm10")
POLLUTANTS: Final = (*PARTICLES, *GASES)
NOWCAST_HOURS: Final = 12


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def sub_index(parameter: AqiParameter, concentration: float) -> int | None:
    """The parameter's AQI for ``concentration`` ug/m3 (500 above the table; None where it is undefined)."""
    if not math.isfinite(concentration) or concentration < 0:
        raise ValueError(f"{parameter} concentration {concentration} ug/m3 must be a number >= 0")
    points = BREAKPOINTS[parameter]
    top = len(points) - 1
    if concentration >= points[top]:
        if concentration == points[top]:
            return INDEX_LEVELS[top]
        return MAX_AQI if top == len(INDEX_LEVELS) - 1 else None
    i = next(k for k in range(top) if concentration < points[k + 1])
    low, high = INDEX_LEVELS[i], INDEX_LEVELS[i + 1]
    return _round_half_up((high - low) / (points[i + 1] - points[i]) * (concentration - points[i]) + low)


def nowcast(hourly_means: Sequence[float | None]) -> float | None:
    """NowCast of up to 12 hourly means, most recent first (None: no data that hour); None without enough data."""
    recent = hourly_means[:NOWCAST_HOURS]
    if sum(c is not None for c in recent[:3]) < 2:
        return None
    present = [(i, c) for i, c in enumerate(recent) if c is not None]
    c_max = max(c for _, c in present)
    if c_max <= 0:
        return 0.0
    ratio = min(c for _, c in present) / c_max
    w = ratio if ratio > 0.5 else 0.5
    weights = [(w**i, c) for i, c in present]
    return sum(weight * c for weight, c in weights) / sum(weight for weight, _ in weights)


@dataclass(frozen=True, slots=True)
class HourlyAqi:
    """The hourly VN_AQI with each parameter's sub-index (``dominant``: the parameter that set it)."""

    aqi: int
    sub_indices: Mapping[str, int]
    dominant: str


def hourly_aqi(hourly_means: Mapping[str, Sequence[float | None]]) -> HourlyAqi | None:
    """Hourly VN_AQI from each pollutant's hourly means (ug/m3, most recent hour first); None if PM is missing."""
    subs: dict[str, int] = {}
    for gas in GASES:
        means = hourly_means.get(gas, ())
        if means and means[0] is not None:
            value = sub_index(gas, means[0])
            if value is not None:
                subs[gas] = value
    for particle in PARTICLES:
        concentration = nowcast(hourly_means.get(particle, ()))
        if concentration is not None:
            value = sub_index(particle, concentration)
            if value is not None:
                subs[particle] = value
    if not any(p in subs for p in PARTICLES):
        return None
    dominant = max(subs, key=lambda name: subs[name])
    return HourlyAqi(subs[dominant], subs, dominant)


def _hour_of(time: dt.datetime) -> int:
    return math.floor(time.timestamp() / 3600)


class VnAqiAccumulator:
    """One station's hourly means over the last 12 clock hours, and the hourly AQI they give.

    Hours are clock hours (UTC hours are Vietnamese hours too: UTC+7 has no half hours). ``aqi_at(t)``
    uses the COMPLETED hours before the hour of ``t``: the hour in progress is not a mean yet. So a
    fresh accumulator (after a start or restart) gives None until two of the three hours before the
    current one have PM data: about two hours after the first reading.
    """

    def __init__(self) -> None:
        self._hours: dict[int, dict[str, list[float]]] = {}
        self._cached: tuple[int, HourlyAqi | None] | None = None

    def add(self, time: dt.datetime, values: Mapping[str, float]) -> None:
        """Fold one reading's pollutant values (ug/m3) into its hour's mean; other metrics are ignored."""
        hour = _hour_of(time)
        newest = max(self._hours, default=hour)
        if hour < newest - NOWCAST_HOURS:
            return  # older than any hour an AQI can still use
        bucket = self._hours.setdefault(hour, {})
        for name in POLLUTANTS:
            value = values.get(name)
            if value is not None:
                total = bucket.setdefault(name, [0.0, 0.0])
                total[0] += value
                total[1] += 1.0
        newest = max(newest, hour)
        for old in [h for h in self._hours if h < newest - NOWCAST_HOURS]:
            del self._hours[old]
        if self._cached is not None and hour < self._cached[0]:
            self._cached = None  # a completed hour changed

    def hourly_means(self, time: dt.datetime) -> dict[str, list[float | None]]:
        """Each pollutant's means of the 12 completed hours before ``time``'s hour, most recent first."""
        current = _hour_of(time)
        means: dict[str, list[float | None]] = {}
        for name in POLLUTANTS:
            series: list[float | None] = []
            for back in range(1, NOWCAST_HOURS + 1):
                total = self._hours.get(current - back, {}).get(name)
                series.append(None if total is None else total[0] / total[1])
            means[name] = series
        return means

    def aqi_at(self, time: dt.datetime) -> HourlyAqi | None:
        """The hourly AQI as published at ``time`` (from the completed hours); None without enough data."""
        current = _hour_of(time)
        if self._cached is not None and self._cached[0] == current:
            return self._cached[1]
        result = hourly_aqi(self.hourly_means(time))
        self._cached = (current, result)
        return result
