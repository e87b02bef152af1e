"""Congestion levels per zone: queue length, occupancy and a speed proxy over a window, with a hold time.

Per frame, for the tracked vehicles whose anchor is in the zone: the queue length ratio (``QueueMeter``), the
occupancy (sum of their box areas over the zone's area, at most 1: a pixel proxy of the share of road covered)
and the median speed of the MOVING ones (box sizes/s). Over the last ``window_s``: the mean queue ratio, the
mean occupancy, the median of the per-frame median speeds over ``free_flow_speed`` (``speed_ratio``, None when
nothing moved) and the distinct vehicles seen.

The level is the highest whose thresholds ANY measure crosses. A new level is reported (``previous_level``
set) only after it has been the level continuously for ``hold_s``, so levels do not flap; besides, every
``report_every_s`` a periodic report (``previous_level`` None) gives the current level and measures. The
first level is reported, periodically, once it has held ``hold_s``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from edge_agent.analytics.geometry import points_in_polygon, polygon_area
from edge_agent.violations.config import CongestionZoneConfig, LevelThresholds
from edge_agent.violations.findings import CongestionReport
from edge_agent.violations.queue import QueueMeter
from edge_agent.violations.tracks import FrameView
from event_contract.traffic import CongestionLevel

LEVELS: tuple[CongestionLevel, ...] = ("free", "light", "moderate", "heavy", "jammed")


def _meets(thresholds: LevelThresholds, queue: float, occupancy: float, speed_ratio: float | None) -> bool:
    return (
        (thresholds.queue_length_ratio is not None and queue >= thresholds.queue_length_ratio)
        or (thresholds.occupancy is not None and occupancy >= thresholds.occupancy)
        or (speed_ratio is not None and thresholds.speed_ratio is not None and speed_ratio <= thresholds.speed_ratio)
    )


def _unit(value: float) -> float:
    """Clip to 0..1 (running sums may drift just below 0 by rounding)."""
    return min(1.0, max(0.0, value))


class CongestionZone:
    """Levels of one zone. Not thread-safe."""

    def __init__(self, config: CongestionZoneConfig, frame_width: int, frame_height: int, *, moving_speed: float):
        self.zone_id = config.id
        self._config = config
        self._moving = moving_speed
        self._meter = QueueMeter(
            config.zone,
            (config.flow.start, config.flow.end),
            frame_width,
            frame_height,
            gap_boxes=config.queue_gap_boxes,
            moving_speed=moving_speed,
        )
        self._area = max(polygon_area([(float(x), float(y)) for x, y in self._meter.polygon]), 1.0)
        self._samples: deque[tuple[float, float, float, float | None]] = deque()
        self._queue_sum = 0.0
        self._occupancy_sum = 0.0
        self._vehicles: dict[int, float] = {}
        self._level: CongestionLevel | None = None
        self._candidate: CongestionLevel | None = None
        self._candidate_since = 0.0
        self._last_report: float | None = None

    @property
    def level(self) -> CongestionLevel | None:
        """The reported level (None until the first has held ``hold_s``)."""
        return self._level

    def update(self, view: FrameView) -> CongestionReport | None:
        t = view.t
        inside = points_in_polygon(view.anchors, self._meter.polygon) if len(view) else np.zeros(0, dtype=np.bool_)
        queue = self._meter.measure(view, inside).ratio
        boxes = view.boxes[inside]
        occupancy = min(1.0, float(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()) / self._area)
        speeds = view.speeds[inside]
        moving = speeds[speeds > self._moving]
        median_speed = float(np.median(moving)) if len(moving) else None
        for track_id in view.ids[inside].tolist():
            self._vehicles[int(track_id)] = t
        self._samples.append((t, queue, occupancy, median_speed))
        self._queue_sum += queue
        self._occupancy_sum += occupancy
        self._trim(t)
        return self._decide(view)

    def _trim(self, t: float) -> None:
        cutoff = t - self._config.window_s
        while self._samples and self._samples[0][0] <= cutoff:
            _, q, o, _ = self._samples.popleft()
            self._queue_sum -= q
            self._occupancy_sum -= o
        for track_id in [k for k, seen in self._vehicles.items() if seen <= cutoff]:
            del self._vehicles[track_id]

    def _measures(self) -> tuple[float, float, float | None]:
        n = max(len(self._samples), 1)
        speeds = [s for *_, s in self._samples if s is not None]
        ratio = None if not speeds else min(10.0, float(np.median(speeds)) / self._config.free_flow_speed)
        return _unit(self._queue_sum / n), _unit(self._occupancy_sum / n), ratio

    def _decide(self, view: FrameView) -> CongestionReport | None:
        cfg = self._config
        t = view.t
        queue, occupancy, speed_ratio = self._measures()
        level: CongestionLevel = "free"
        for name in LEVELS[1:]:
            if _meets(getattr(cfg.levels, name), queue, occupancy, speed_ratio):
                level = name
        if level != self._candidate:
            self._candidate, self._candidate_since = level, t
        previous = self._level
        changed = level != previous and t - self._candidate_since >= cfg.hold_s
        if changed:
            self._level = level
        due = self._level is not None and (self._last_report is None or t - self._last_report >= cfg.report_every_s)
        if not (changed or due) or self._level is None:
            return None
        self._last_report = t
        return CongestionReport(
            zone_id=self.zone_id,
            time=view.time,
            level=self._level,
            previous_level=previous if changed else None,
            window_s=cfg.window_s,
            vehicles=len(self._vehicles),
            queue_length_ratio=round(queue, 4),
            occupancy=round(occupancy, 4),
            speed_ratio=None if speed_ratio is None else round(speed_ratio, 4),
        )

    def expire(self, t: float) -> None:
        """No frame: the window moves on (a dead camera reports nothing, its old measures age out)."""
        self._trim(t)
