"""Stops: illegal stopping in a no-stopping zone (violation) and a vehicle stopped in a travel lane (incident).

Both read the shared stopped/moving state (``TrackBook``: speed over a window, with hysteresis), so a vehicle
moving slowly through never counts as stopped, and box jitter of a parked one never counts as moving.

- ``illegal_stopping``: fires when a vehicle inside the zone has been stopped for longer than ``max_stop_s``
  (counted from ``stopped_since``, and only from when it was inside); once per visit of the zone.
- ``stopped_in_lane``: the same clock, but it runs only while the vehicle is NOT queued: queued means a slow or
  stopped vehicle is in the lane just ahead of it (along the flow, sharing half its width across the lane, front gap at
  most ``queue_gap_boxes``), or it is first in the queue within ``head_distance_boxes`` of the stop line while
  its signal is not green. Any queued moment restarts the clock, so traffic waiting at a light never fires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.geometry import side_of_line
from edge_agent.violations.base import Clock, SignalTimeline, Visits
from edge_agent.violations.config import IllegalStoppingRuleConfig, StoppedInLaneRuleConfig
from edge_agent.violations.findings import Finding
from edge_agent.violations.shapes import project, to_pixels, unit_vector
from edge_agent.violations.tracks import FrameView
from event_contract.traffic import ViolationCategory, ViolationType


@dataclass(slots=True)
class _Stop:
    since: float | None = None
    """illegal_stopping: start of the stop that counts (stopped and inside)."""
    excused_at: float = -np.inf
    """stopped_in_lane: the last time the vehicle was queued; its clock starts after it."""


def _finding(
    *,
    rule_id: str,
    kind: ViolationType,
    category: ViolationCategory,
    view: FrameView,
    row: int,
    since: float,
    clock: Clock,
) -> Finding:
    return Finding(
        rule_id=rule_id,
        violation_type=kind,
        category=category,
        track_id=int(view.ids[row]),
        vehicle_class=view.classes[row],
        time=view.time,
        started_at=min(clock.at(since), view.time),
        line_id=None,
        zone_id=rule_id,
        signal_state=None,
        duration_s=round(max(0.0, view.t - since), 3),
        related_track_ids=(),
        box_xyxy=view.box_of(row),
    )


class IllegalStoppingRule:
    def __init__(self, config: IllegalStoppingRuleConfig, frame_width: int, frame_height: int) -> None:
        self.rule_id = config.id
        self._config = config
        self._visits: Visits[_Stop] = Visits(to_pixels(config.zone, frame_width, frame_height), config.exit_grace_s)

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        findings: list[Finding] = []
        inside = self._visits.inside(view)
        for row in inside.nonzero()[0].tolist():
            visit = self._visits.enter(int(view.ids[row]), view.t, _Stop())
            since = view.states[row].stopped_since if view.stopped[row] else None
            visit.data.since = None if since is None else max(since, visit.entered)
            if visit.fired or visit.data.since is None:
                continue
            if view.t - visit.data.since > self._config.max_stop_s:
                visit.fired = True
                findings.append(
                    _finding(
                        rule_id=self.rule_id,
                        kind="illegal_stopping",
                        category="violation",
                        view=view,
                        row=row,
                        since=visit.data.since,
                        clock=clock,
                    )
                )
        self._visits.expire(view.t)
        return findings

    def forget(self, track_ids: Iterable[int]) -> None:
        self._visits.forget(track_ids)

    def renamed(self, old: int, new: int) -> None:
        self._visits.renamed(old, new)


class StoppedInLaneRule:
    def __init__(
        self, config: StoppedInLaneRuleConfig, frame_width: int, frame_height: int, *, moving_speed: float
    ) -> None:
        self.rule_id = config.id
        self._moving_speed = moving_speed
        self._config = config
        arrow = to_pixels((config.flow.start, config.flow.end), frame_width, frame_height)
        self._origin = (float(arrow[0, 0]), float(arrow[0, 1]))
        self._flow = unit_vector(self._origin, (float(arrow[1, 0]), float(arrow[1, 1])))
        self._across = (-self._flow[1], self._flow[0])
        self._line: tuple[tuple[float, float], tuple[float, float], float] | None = None
        if config.stop_line is not None:
            start = (config.stop_line.start[0] * frame_width, config.stop_line.start[1] * frame_height)
            end = (config.stop_line.end[0] * frame_width, config.stop_line.end[1] * frame_height)
            self._line = (start, end, float(np.hypot(end[0] - start[0], end[1] - start[1])))
        self._visits: Visits[_Stop] = Visits(to_pixels(config.lane, frame_width, frame_height), config.exit_grace_s)

    def _queued(self, view: FrameView, inside: npt.NDArray[np.bool_], signals: SignalTimeline) -> npt.NDArray[np.bool_]:
        """Which rows stand in a queue: behind a slow vehicle in the lane, or first at the stop line on red."""
        cfg = self._config
        rows = inside.nonzero()[0]
        queued = np.zeros(len(view), dtype=np.bool_)
        if len(rows) == 0:
            return queued
        boxes = view.boxes[rows]
        corners = np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1).reshape(
            -1, 2
        )
        along = project(corners, self._origin, self._flow).reshape(-1, 4)
        across = project(corners, self._origin, self._across).reshape(-1, 4)
        front, back = along.max(axis=1), along.min(axis=1)
        left, right = across.min(axis=1), across.max(axis=1)
        sizes = view.sizes[rows]
        slow = view.speeds[rows] <= self._moving_speed  # NaN (too young to tell) is not a queue
        # j ahead of i: j's back is beyond i's back, i's front is within the gap of j's back, and they share at
        # least half the narrower one's width across the lane (a neighbour in the next lane is not ahead).
        ahead = back[None, :] > back[:, None]
        close = back[None, :] - front[:, None] <= cfg.queue_gap_boxes * sizes[:, None]
        span = right - left
        width = np.minimum(span[:, None], span[None, :])
        shared = np.minimum(right[:, None], right[None, :]) - np.maximum(left[:, None], left[None, :])
        overlap = shared >= 0.5 * width
        behind_slow = (ahead & close & overlap & slow[None, :]).any(axis=1)
        queued[rows] = behind_slow
        if self._line is not None:
            state = "unknown" if cfg.signal_id is None else signals.state(cfg.signal_id)
            if cfg.signal_id is None or state != "green":
                start, end, length = self._line
                distance = -side_of_line(view.anchors[rows], start, end) / length / sizes
                # Before the line, on either side of it by orientation: the head is near the line.
                head = np.abs(distance) <= cfg.head_distance_boxes
                queued[rows] |= head
        return queued

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        findings: list[Finding] = []
        inside = self._visits.inside(view)
        queued = self._queued(view, inside, signals)
        for row in inside.nonzero()[0].tolist():
            visit = self._visits.enter(int(view.ids[row]), view.t, _Stop())
            stopped_since = view.states[row].stopped_since
            if queued[row]:
                visit.data.excused_at = view.t
            if not view.stopped[row] or queued[row] or stopped_since is None:
                continue
            since = max(stopped_since, visit.entered, visit.data.excused_at)
            if not visit.fired and view.t - since > self._config.max_stop_s:
                visit.fired = True
                findings.append(
                    _finding(
                        rule_id=self.rule_id,
                        kind="stopped_in_lane",
                        category="incident",
                        view=view,
                        row=row,
                        since=since,
                        clock=clock,
                    )
                )
        self._visits.expire(view.t)
        return findings

    def forget(self, track_ids: Iterable[int]) -> None:
        self._visits.forget(track_ids)

    def renamed(self, old: int, new: int) -> None:
        self._visits.renamed(old, new)
