"""Queue length of a zone along its flow, and the ``queue_growth`` incident.

Queue length ratio (the contract's ``queue_length_ratio``): the share of the zone's length along the flow arrow
covered by stopped or crawling vehicles (speed at most the motion config's ``moving_speed``) inside it. Each
such vehicle covers its box's extent along the flow; gaps between them up to ``queue_gap_boxes`` (the space
drivers leave in a queue) count as covered. A pixel proxy: a zone drawn along an oblique camera's road weighs
the near end more, which is fine for thresholds set per camera.

``queue_growth`` fires when the ratio (median over ``smooth_s``) exceeds its minimum over the last
``within_s`` by at least ``min_growth``. The finding names the queue's last (most upstream) vehicle, with the
other queued vehicles as related tracks. After firing it re-arms only once the ratio has fallen back by
``min_growth`` from where it fired: one incident per spill-back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.violations.base import Clock, SignalTimeline, Visits
from edge_agent.violations.config import QueueGrowthRuleConfig
from edge_agent.violations.findings import Finding
from edge_agent.violations.shapes import NormalisedPoint, project, to_pixels, unit_vector
from edge_agent.violations.tracks import FrameView
from event_contract.traffic import MAX_RELATED_TRACKS


@dataclass(frozen=True, slots=True)
class QueueMeasure:
    ratio: float
    queued_rows: npt.NDArray[np.intp]
    """Rows of the view that are queued, most upstream first."""


class QueueMeter:
    """Measures the queue length ratio of one zone in one frame."""

    def __init__(
        self,
        polygon: tuple[NormalisedPoint, ...],
        flow: tuple[NormalisedPoint, NormalisedPoint],
        frame_width: int,
        frame_height: int,
        *,
        gap_boxes: float,
        moving_speed: float,
    ) -> None:
        self.polygon = to_pixels(polygon, frame_width, frame_height)
        arrow = to_pixels(flow, frame_width, frame_height)
        self._origin = (float(arrow[0, 0]), float(arrow[0, 1]))
        self._unit = unit_vector(self._origin, (float(arrow[1, 0]), float(arrow[1, 1])))
        along = project(self.polygon, self._origin, self._unit)
        self._low, self._high = float(along.min()), float(along.max())
        self._gap = gap_boxes
        self._moving = moving_speed

    def measure(self, view: FrameView, inside: npt.NDArray[np.bool_]) -> QueueMeasure:
        slow = inside & (view.speeds <= self._moving)  # NaN (too young to tell) is not queued
        rows = slow.nonzero()[0]
        if len(rows) == 0:
            return QueueMeasure(0.0, rows)
        boxes = view.boxes[rows]
        corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1)
        along = project(corners.reshape(-1, 2), self._origin, self._unit).reshape(-1, 4)
        back = np.clip(along.min(axis=1), self._low, self._high)
        front = np.clip(along.max(axis=1), self._low, self._high)
        order = np.argsort(back)
        sizes = view.sizes[rows]
        covered = 0.0
        start, end, size = float(back[order[0]]), float(front[order[0]]), float(sizes[order[0]])
        for k in order[1:].tolist():
            b, f, s = float(back[k]), float(front[k]), float(sizes[k])
            if b - end <= self._gap * (size + s) / 2:
                end = max(end, f)
            else:
                covered += end - start
                start, end = b, f
            size = s
        covered += end - start
        ratio = min(1.0, covered / max(self._high - self._low, 1e-9))
        return QueueMeasure(ratio, rows[order])


class QueueGrowthRule:
    def __init__(
        self, config: QueueGrowthRuleConfig, frame_width: int, frame_height: int, *, moving_speed: float
    ) -> None:
        self.rule_id = config.id
        self._config = config
        self._meter = QueueMeter(
            config.zone,
            (config.flow.start, config.flow.end),
            frame_width,
            frame_height,
            gap_boxes=config.queue_gap_boxes,
            moving_speed=moving_speed,
        )
        self._area: Visits[None] = Visits(self._meter.polygon, 0.0)
        self._raw: deque[tuple[float, float]] = deque()
        self._smoothed: deque[tuple[float, float]] = deque()
        self._fired_at_ratio: float | None = None

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        cfg = self._config
        measure = self._meter.measure(view, self._area.inside(view))
        t = view.t
        self._raw.append((t, measure.ratio))
        while self._raw and self._raw[0][0] < t - cfg.smooth_s:
            self._raw.popleft()
        ratio = float(np.median([r for _, r in self._raw]))
        self._smoothed.append((t, ratio))
        while self._smoothed and self._smoothed[0][0] < t - cfg.within_s:
            self._smoothed.popleft()
        if self._fired_at_ratio is not None:
            if ratio <= self._fired_at_ratio - cfg.min_growth:
                self._fired_at_ratio = None
            return []
        low_t, low = min(self._smoothed, key=lambda pair: pair[1])
        if ratio - low < cfg.min_growth or len(measure.queued_rows) == 0:
            return []
        self._fired_at_ratio = ratio
        tail = int(measure.queued_rows[0])
        related = tuple(int(view.ids[r]) for r in measure.queued_rows[1:].tolist())[:MAX_RELATED_TRACKS]
        return [
            Finding(
                rule_id=self.rule_id,
                violation_type="queue_growth",
                category="incident",
                track_id=int(view.ids[tail]),
                vehicle_class=view.classes[tail],
                time=view.time,
                started_at=min(clock.at(low_t), view.time),
                line_id=None,
                zone_id=self.rule_id,
                signal_state=None,
                duration_s=round(t - low_t, 3),
                related_track_ids=related,
                box_xyxy=view.box_of(tail),
            )
        ]

    def forget(self, track_ids: Iterable[int]) -> None:
        del track_ids  # no per-track state

    def renamed(self, old: int, new: int) -> None:
        del old, new
