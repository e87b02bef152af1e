"""Wrong-way driving: sustained net motion against the lane's allowed direction.

Exact semantics: while a track's anchor is in the lane (a visit, see ``Visits``), take its net displacement
over the last ``min_duration_s`` (from the latest sample at least that old within the visit, to now). It fires
when that displacement, in box sizes (mean of the two ends' boxes), goes at least ``min_distance_boxes``
against the flow arrow AND points within ``max_angle_deg`` of the reverse flow. Net displacement over seconds
is blind to box jitter; the angle and the duration keep a vehicle crossing the lane or turning briefly from
firing. Once per visit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_agent.violations.base import Clock, SignalTimeline, Visits
from edge_agent.violations.config import WrongWayRuleConfig
from edge_agent.violations.findings import Finding
from edge_agent.violations.shapes import to_pixels, unit_vector
from edge_agent.violations.tracks import FrameView


class WrongWayRule:
    def __init__(self, config: WrongWayRuleConfig, frame_width: int, frame_height: int) -> None:
        self.rule_id = config.id
        self._config = config
        arrow = to_pixels((config.flow.start, config.flow.end), frame_width, frame_height)
        self._flow = unit_vector((arrow[0, 0], arrow[0, 1]), (arrow[1, 0], arrow[1, 1]))
        self._cos = math.cos(math.radians(config.max_angle_deg))
        self._visits: Visits[None] = Visits(to_pixels(config.lane, frame_width, frame_height), config.exit_grace_s)

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        cfg = self._config
        findings: list[Finding] = []
        inside = self._visits.inside(view)
        for row in inside.nonzero()[0].tolist():
            track_id = int(view.ids[row])
            visit = self._visits.enter(track_id, view.t, None)
            if visit.fired:
                continue
            state = view.states[row]
            then = view.t - cfg.min_duration_s
            if then < visit.entered:
                continue
            index = state.sample_index_at(then)
            if index < 0:
                continue
            x0, y0, s0 = state.points[index]
            x1, y1, s1 = state.points[-1]
            dx, dy = x1 - x0, y1 - y0
            size = (s0 + s1) / 2
            against = -(dx * self._flow[0] + dy * self._flow[1])
            if against < cfg.min_distance_boxes * size or against < self._cos * math.hypot(dx, dy):
                continue
            visit.fired = True
            findings.append(
                Finding(
                    rule_id=self.rule_id,
                    violation_type="wrong_way",
                    category="violation",
                    track_id=track_id,
                    vehicle_class=view.classes[row],
                    time=view.time,
                    started_at=clock.at(state.times[index]),
                    line_id=None,
                    zone_id=self.rule_id,
                    signal_state=None,
                    duration_s=round(view.t - state.times[index], 3),
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
