"""From a day's frame readings to the published daily figure, and from day to day.

Work goes on while the frames are taken, so a plain median of the day's frames describes mid-day, and a plain
median of the last days describes the day before yesterday: on a package built in ten days that is 15 points
behind. Both medians are therefore taken over values PROJECTED to the figure's instant along a robust, never
negative trend, which removes the lag without giving up the medians' robustness:

- Day figure (``day_figure``): quality-weighted median of ``p_i + s * (close - t_i)`` over the day's readings,
  where ``s`` is the Theil-Sen slope of the readings (median of pairwise slopes), clipped to [0, cap]. A flat
  day has s ~ 0 and gives the plain weighted median; a few bad frames move neither s nor the median.
- Published figure (``DaySmoother``): median over the last ``window_days`` day figures of ``r_i + s * (d - d_i)``
  where ``s`` is the SMALLEST day-to-day rise in the window (clipped at 0): one odd high day cannot create a
  trend, a stall stops the projection at once (no overshoot while the site waits), steady work is not lagged.
  Then the rise over the previous published figure is capped at ``max_increase_points_per_day`` per day and the
  figure never falls more than ``max_decrease_points`` below its highest value so far.
- A day with too few usable frames carries the last figure (raw None) with its confidence scaled down.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.progress.config import SmoothingConfig


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value at half the total weight (lower median on an exact tie); equal weights if all are <= 0."""
    if not values:
        raise ValueError("weighted median of nothing")
    v = np.asarray(values, dtype=np.float64)
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    if len(w) != len(v):
        raise ValueError(f"{len(v)} values but {len(w)} weights")
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.ones_like(v)
    order = np.argsort(v, kind="stable")
    cumulative = np.cumsum(w[order])
    index = int(np.searchsorted(cumulative, cumulative[-1] / 2.0))
    return float(v[order][min(index, len(v) - 1)])


def theil_sen_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Median of the pairwise slopes (pairs with distinct x); 0 with fewer than two distinct x."""
    slopes = [(y[j] - y[i]) / (x[j] - x[i]) for i, j in itertools.combinations(range(len(x)), 2) if x[j] != x[i]]
    return float(np.median(slopes)) if slopes else 0.0


def day_figure(
    readings: Sequence[tuple[dt.datetime, float, float]], close: dt.datetime, max_rise_per_day: float
) -> float:
    """The day's raw figure at ``close`` from (time, percent, weight) readings (see the module doc)."""
    if not readings:
        raise ValueError("day figure of no readings")
    hours = [(t - close).total_seconds() / 3600.0 for t, _, _ in readings]
    percents = [p for _, p, _ in readings]
    # Work happens in roughly ten hours a day: a rise over that pace is noise, not work.
    slope = float(np.clip(theil_sen_slope(hours, percents), 0.0, max_rise_per_day / 10.0))
    projected = [p - slope * h for p, h in zip(percents, hours, strict=True)]
    return float(np.clip(weighted_median(projected, [w for _, _, w in readings]), 0.0, 100.0))


@dataclass(frozen=True, slots=True)
class Smoothed:
    percent: float
    carried: bool


class DaySmoother:
    """Day-to-day state of one package's figure."""

    def __init__(self, config: SmoothingConfig) -> None:
        self._config = config
        self._recent: deque[tuple[int, float]] = deque(maxlen=config.window_days)  # (day ordinal, raw)
        self._peak: float | None = None
        self._last: float | None = None
        self._last_day: int | None = None

    @property
    def last(self) -> float | None:
        return self._last

    @property
    def peak(self) -> float | None:
        return self._peak

    def add_day(self, day: dt.date, raw: float | None) -> Smoothed:
        """The published figure of ``day`` whose raw figure is ``raw`` (None: too few frames, carry)."""
        c = self._config
        if raw is None:
            return Smoothed(percent=self._last if self._last is not None else 0.0, carried=True)
        today = day.toordinal()
        self._recent.append((today, float(np.clip(raw, 0.0, 100.0))))
        days = [d for d, _ in self._recent]
        values = [r for _, r in self._recent]
        rises = [(values[i + 1] - values[i]) / max(days[i + 1] - days[i], 1) for i in range(len(values) - 1)]
        slope = max(0.0, min(rises)) if rises else 0.0
        value = float(np.median([r + slope * (today - d) for d, r in self._recent]))
        if self._last is not None and self._last_day is not None:
            value = min(value, self._last + c.max_increase_points_per_day * max(today - self._last_day, 1))
        if self._peak is not None:
            value = max(value, self._peak - c.max_decrease_points)
        value = float(np.clip(value, 0.0, 100.0))
        self._last, self._last_day = value, today
        self._peak = value if self._peak is None else max(self._peak, value)
        return Smoothed(percent=value, carried=False)

    def export(self) -> dict[str, object]:
        return {
            "recent": [[dt.date.fromordinal(d).isoformat(), r] for d, r in self._recent],
            "peak": self._peak,
            "last": self._last,
            "last_day": None if self._last_day is None else dt.date.fromordinal(self._last_day).isoformat(),
        }

    def restore(self, state: Mapping[str, object]) -> None:
        """Restore an ``export``; raises ValueError on anything malformed (and then changes nothing)."""
        recent_state = state.get("recent")
        if not isinstance(recent_state, list):
            raise ValueError(f"smoothing state 'recent' must be a list, got {recent_state!r}")
        recent: list[tuple[int, float]] = []
        for item in recent_state:
            if not (isinstance(item, list | tuple) and len(item) == 2 and _is_percent(item[1])):
                raise ValueError(f"smoothing state 'recent' items must be [date, percent], got {item!r}")
            recent.append((_ordinal(item[0], "recent"), float(item[1])))
        numbers: dict[str, float | None] = {}
        for name in ("peak", "last"):
            value = state.get(name)
            if value is not None and not _is_percent(value):
                raise ValueError(f"smoothing state {name!r} must be a percent or null, got {value!r}")
            numbers[name] = None if value is None else float(value)  # type: ignore[arg-type]
        last_day = state.get("last_day")
        self._recent = deque(recent, maxlen=self._config.window_days)
        self._peak, self._last = numbers["peak"], numbers["last"]
        self._last_day = None if last_day is None else _ordinal(last_day, "last_day")


def _ordinal(value: object, name: str) -> int:
    try:
        return dt.date.fromisoformat(str(value)).toordinal()
    except ValueError as error:
        raise ValueError(f"smoothing state {name!r}: {value!r} is not a date") from error


def _is_percent(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= float(value) <= 100.0
