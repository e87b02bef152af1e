"""Red-light running: the anchor crosses the stop-line segment, into the junction, while the signal is red.

Exact semantics (``docs/violations.md``):

- Signed distance ``d`` of the anchor from the stop line, in box sizes, positive on the junction side (the
  configured ``direction``). A track is ARMED once seen at ``d <= -arm_margin_boxes``: one first seen past the
  line, or past it when the light turned red, never fires.
- The CROSSING is the first frame with ``d > 0`` after the last frame with ``d < 0``, and only if the motion
  between those two anchors meets the segment (not its extension). Going back before the line cancels it.
- A crossing is COMMITTED when ``d >= commit_margin_boxes``: jitter of a box standing on the line never commits.
- The signal state that counts is the one at the crossing, or, for a vehicle that stood still ON the line
  (within ``on_line_boxes`` past it: box jitter of a vehicle stopped at the line) between crossing and commit,
  the one when it moved off again. A vehicle that stopped clearly past the line had crossed already.
- It fires when that state is ``red`` held for at least ``grace_s``; amber, green, dark and unknown never fire.
- At most once per track: after a commit (fired or not) the track is done with this line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edge_agent.analytics.geometry import Point, segments_intersect, side_of_line
from edge_agent.violations.base import Clock, SignalTimeline
from edge_agent.violations.config import RedLightRuleConfig
from edge_agent.violations.findings import Finding
from edge_agent.violations.tracks import FrameView


@dataclass(slots=True)
class _State:
    armed: bool = False
    done: bool = False
    last_before: Point | None = None
    crossed_at: float | None = None
    red_at_crossing: bool = False
    held: bool = False
    """Stood still since crossing: judged again when it moves off."""


class RedLightRule:
    def __init__(self, config: RedLightRuleConfig, frame_width: int, frame_height: int) -> None:
        self.rule_id = config.id
        self._config = config
        line = config.stop_line
        self._start: Point = (line.start[0] * frame_width, line.start[1] * frame_height)
        self._end: Point = (line.end[0] * frame_width, line.end[1] * frame_height)
        self._length = float(np.hypot(self._end[0] - self._start[0], self._end[1] - self._start[1]))
        self._sign = 1.0 if config.direction == "in" else -1.0
        self._tracks: dict[int, _State] = {}

    def _red_ok(self, signals: SignalTimeline, t: float) -> bool:
        red_for = signals.red_for(self._config.signal_id, t)
        return red_for is not None and red_for >= self._config.grace_s

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        if len(view) == 0:
            return []
        distance = self._sign * side_of_line(view.anchors, self._start, self._end) / self._length / view.sizes
        findings: list[Finding] = []
        for row, track_id in enumerate(view.ids.tolist()):
            state = self._tracks.get(track_id)
            if state is None:
                state = self._tracks[track_id] = _State()
            if not state.done and self._step(state, view, row, float(distance[row]), signals):
                assert state.crossed_at is not None
                findings.append(self._finding(view, row, state.crossed_at, clock))
        return findings

    def _step(self, state: _State, view: FrameView, row: int, d: float, signals: SignalTimeline) -> bool:
        """Advance one track by one frame; True when it has just committed a crossing made at red."""
        cfg = self._config
        anchor: Point = (float(view.anchors[row, 0]), float(view.anchors[row, 1]))
        if d < 0:
            state.last_before = anchor
            state.crossed_at = None
            state.held = False
            state.armed = state.armed or d <= -cfg.arm_margin_boxes
            return False
        if not state.armed or d == 0:
            return False
        if state.crossed_at is None:
            if state.last_before is None or not segments_intersect(state.last_before, anchor, self._start, self._end):
                state.done = True  # passed beyond the segment's end: not this stop line
                return False
            state.crossed_at = view.t
            state.red_at_crossing = self._red_ok(signals, view.t)
        if bool(view.stopped[row]) and d < cfg.on_line_boxes:
            state.held = True
        elif state.held:
            # Stood on the line since crossing: it is judged when it moves off.
            state.held = False
            state.crossed_at = view.t
            state.red_at_crossing = self._red_ok(signals, view.t)
        if d < cfg.commit_margin_boxes:
            return False
        state.done = True
        return state.red_at_crossing

    def _finding(self, view: FrameView, row: int, crossed_at: float, clock: Clock) -> Finding:
        return Finding(
            rule_id=self.rule_id,
            violation_type="red_light",
            category="violation",
            track_id=int(view.ids[row]),
            vehicle_class=view.classes[row],
            time=view.time,
            started_at=min(clock.at(crossed_at), view.time),
            line_id=self.rule_id,
            zone_id=None,
            signal_state="red",
            duration_s=None,
            related_track_ids=(),
            box_xyxy=view.box_of(row),
        )

    def forget(self, track_ids: Iterable[int]) -> None:
        for track_id in track_ids:
            self._tracks.pop(track_id, None)

    def renamed(self, old: int, new: int) -> None:
        state = self._tracks.pop(old, None)
        if state is not None:
            self._tracks[new] = state
