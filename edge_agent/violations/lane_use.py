"""Lane violations: a vehicle class that is not allowed in a lane (optionally only in given local hours).

Exact semantics: during a visit of the lane, a vehicle is judged once all of these hold at one frame: the
tracker's class vote has held the same class for ``class_stable_s``; the vehicle has been in the lane for
``min_in_lane_s`` and moved at least ``min_distance_boxes`` in it since it entered (net, in box sizes); the
restriction is active at that frame's local time (``hours`` in ``timezone``). It fires if the class is not
allowed; once per visit. A class that flickers at the lane's edge is not judged until the vote settles, and a
vehicle cutting across a corner of the lane is gone before it has been in long enough.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_agent.violations.base import Clock, SignalTimeline, Visits
from edge_agent.violations.config import LaneViolationRuleConfig
from edge_agent.violations.findings import Finding
from edge_agent.violations.shapes import to_pixels
from edge_agent.violations.tracks import FrameView


class LaneViolationRule:
    def __init__(self, config: LaneViolationRuleConfig, frame_width: int, frame_height: int) -> None:
        self.rule_id = config.id
        self._config = config
        self._visits: Visits[tuple[float, float] | None] = Visits(
            to_pixels(config.lane, frame_width, frame_height), config.exit_grace_s
        )

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        cfg = self._config
        findings: list[Finding] = []
        inside = self._visits.inside(view)
        active: bool | None = None  # decided once per frame, only when needed
        for row in inside.nonzero()[0].tolist():
            track_id = int(view.ids[row])
            anchor = (float(view.anchors[row, 0]), float(view.anchors[row, 1]))
            visit = self._visits.enter(track_id, view.t, anchor)
            if visit.fired or visit.data is None:
                continue
            state = view.states[row]
            if not cfg.forbids(view.classes[row]):
                continue
            if view.t - state.class_since < cfg.class_stable_s or view.t - visit.entered < cfg.min_in_lane_s:
                continue
            moved = math.dist(visit.data, anchor) / float(view.sizes[row])
            if moved < cfg.min_distance_boxes:
                continue
            if active is None:
                active = cfg.active_at(view.time)
            if not active:
                continue
            visit.fired = True
            findings.append(
                Finding(
                    rule_id=self.rule_id,
                    violation_type="lane_violation",
                    category="violation",
                    track_id=track_id,
                    vehicle_class=view.classes[row],
                    time=view.time,
                    started_at=min(clock.at(visit.entered), view.time),
                    line_id=None,
                    zone_id=self.rule_id,
                    signal_state=None,
                    duration_s=round(view.t - visit.entered, 3),
                    related_track_ids=(),
                    box_xyxy=view.box_of(row),
                )
            )
        self._visits.expire(view.t)
        return findings

    def forget(self, track_ids: Iterable[int]) -> None:
        self._visits.forget(track_ids)

    def renamed(self, old: int, new: int) -> None:
        self._visits.renamed(old, new)
