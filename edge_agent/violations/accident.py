"""Possible accident: two tracks touch while one brakes far harder than driving does, then both stay stopped.

Exact semantics:

- A SHARP STOP of a track at time t: its short-window speed (anchor displacement over ``FAST_WINDOW_S``, box
  sizes per second) was at least ``min_speed_before`` within the last ``BRAKE_LOOKBACK_S`` and has dropped since
  at a rate of at least ``min_decel`` (box sizes/s^2). Drivers brake at up to about 1 box size/s^2 (a car at
  ~5 m/s^2); a collision stops a vehicle in a few tenths of a second.
- CONTACT of two tracks: their boxes overlap or are at most ``contact_gap_boxes`` (of the smaller box) apart,
  both anchors inside ``zone`` (if any).
- A CANDIDATE pair: a contact and a sharp stop of either track within ``contact_window_s`` of each other.
- It FIRES when both tracks of a candidate have been stopped (shared stopped state) for ``stopped_for_s``;
  the finding names the track that braked sharply, with the other as the related track, for an operator to
  confirm. A candidate whose vehicles drive on is dropped. Each track takes part in at most one finding.
- Two vehicles passing close do not stop; a queue forms with ordinary braking: neither fires.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.violations.base import Clock, SignalTimeline, Visits
from edge_agent.violations.config import PossibleAccidentRuleConfig
from edge_agent.violations.findings import Finding
from edge_agent.violations.shapes import to_pixels
from edge_agent.violations.tracks import FrameView, TrackState

FAST_WINDOW_S = 0.3
"""Speed window for braking: short, so a stop within a few tenths of a second shows as one."""
BRAKE_LOOKBACK_S = 1.0
CANDIDATE_TIMEOUT_S = 4.0
"""A candidate whose vehicles are not both stopped this long after it (plus stopped_for_s) is dropped."""


@dataclass(slots=True)
class _Memory:
    speeds: deque[tuple[float, float]] = field(default_factory=deque)
    sharp_stop_at: float | None = None
    contacts: dict[int, float] = field(default_factory=dict)
    """Other track id -> last time in contact."""
    fired: bool = False


@dataclass(slots=True)
class _Candidate:
    braked: int
    other: int
    since: float


def fast_speed(state: TrackState, t: float) -> float | None:
    """Box sizes per second over the last FAST_WINDOW_S (None when the track is younger than that)."""
    index = state.sample_index_at(t - FAST_WINDOW_S)
    if index < 0:
        return None
    t0 = state.times[index]
    if t0 >= t or t - t0 > 3 * FAST_WINDOW_S:
        return None
    x0, y0, s0 = state.points[index]
    x1, y1, s1 = state.points[-1]
    return math.hypot(x1 - x0, y1 - y0) / (t - t0) / ((s0 + s1) / 2)


class PossibleAccidentRule:
    def __init__(self, config: PossibleAccidentRuleConfig, frame_width: int, frame_height: int) -> None:
        self.rule_id = config.id
        self._config = config
        polygon = None if config.zone is None else to_pixels(config.zone, frame_width, frame_height)
        self._area: Visits[None] = Visits(polygon, 0.0)
        self._memory: dict[int, _Memory] = {}
        self._candidates: list[_Candidate] = []
        self._states: dict[int, TrackState] = {}

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]:
        cfg = self._config
        t = view.t
        rows = self._area.inside(view).nonzero()[0]
        for row in rows.tolist():
            track_id = int(view.ids[row])
            memory = self._memory.setdefault(track_id, _Memory())
            self._states[track_id] = view.states[row]
            speed = fast_speed(view.states[row], t)
            if speed is None:
                continue
            memory.speeds.append((t, speed))
            while memory.speeds and memory.speeds[0][0] < t - BRAKE_LOOKBACK_S:
                memory.speeds.popleft()
            decel = max(
                (
                    (before - speed) / (t - when)
                    for when, before in memory.speeds
                    if when < t and before >= cfg.min_speed_before
                ),
                default=0.0,
            )
            if decel >= cfg.min_decel:
                memory.sharp_stop_at = t
        self._contacts(view, rows)
        self._new_candidates(t)
        return self._judge(view, clock)

    def _contacts(self, view: FrameView, rows: npt.NDArray[np.intp]) -> None:
        if len(rows) < 2:
            return
        boxes = view.boxes[rows]
        dx = np.maximum(boxes[:, None, 0], boxes[None, :, 0]) - np.minimum(boxes[:, None, 2], boxes[None, :, 2])
        dy = np.maximum(boxes[:, None, 1], boxes[None, :, 1]) - np.minimum(boxes[:, None, 3], boxes[None, :, 3])
        gap = np.hypot(np.clip(dx, 0, None), np.clip(dy, 0, None))
        sizes = view.sizes[rows]
        limit = self._config.contact_gap_boxes * np.minimum(sizes[:, None], sizes[None, :])
        touching = np.triu(gap <= limit, k=1)
        for i, j in zip(*touching.nonzero(), strict=True):
            a, b = int(view.ids[rows[i]]), int(view.ids[rows[j]])
            self._memory[a].contacts[b] = view.t
            self._memory[b].contacts[a] = view.t

    def _new_candidates(self, t: float) -> None:
        window = self._config.contact_window_s
        pending = {(c.braked, c.other) for c in self._candidates}
        for track_id, memory in self._memory.items():
            stale = [other for other, when in memory.contacts.items() if t - when > 2 * window]
            for other in stale:
                del memory.contacts[other]
            if memory.fired or memory.sharp_stop_at is None or t - memory.sharp_stop_at > window:
                continue
            for other, when in memory.contacts.items():
                other_memory = self._memory.get(other)
                if other_memory is None or other_memory.fired or abs(when - memory.sharp_stop_at) > window:
                    continue
                if (track_id, other) not in pending and (other, track_id) not in pending:
                    self._candidates.append(_Candidate(track_id, other, t))
                    pending.add((track_id, other))

    def _judge(self, view: FrameView, clock: Clock) -> list[Finding]:
        cfg = self._config
        t = view.t
        findings: list[Finding] = []
        keep: list[_Candidate] = []
        for candidate in self._candidates:
            a, b = self._states.get(candidate.braked), self._states.get(candidate.other)
            memory_a, memory_b = self._memory.get(candidate.braked), self._memory.get(candidate.other)
            if a is None or b is None or memory_a is None or memory_b is None or memory_a.fired or memory_b.fired:
                continue
            both = a.stopped and b.stopped and a.stopped_since is not None and b.stopped_since is not None
            if both and a.stopped_since is not None and b.stopped_since is not None:
                since = max(a.stopped_since, b.stopped_since)
                if t - since >= cfg.stopped_for_s:
                    memory_a.fired = memory_b.fired = True
                    findings.append(self._finding(view, a, b, since, clock))
                    continue
            if t - candidate.since > CANDIDATE_TIMEOUT_S + cfg.stopped_for_s:
                continue
            keep.append(candidate)
        self._candidates = keep
        return findings

    def _finding(self, view: FrameView, braked: TrackState, other: TrackState, since: float, clock: Clock) -> Finding:
        return Finding(
            rule_id=self.rule_id,
            violation_type="possible_accident",
            category="incident",
            track_id=braked.track_id,
            vehicle_class=braked.vehicle_class,
            time=view.time,
            started_at=min(clock.at(since), view.time),
            line_id=None,
            zone_id=None if self._config.zone is None else self.rule_id,
            signal_state=None,
            duration_s=round(view.t - since, 3),
            related_track_ids=(other.track_id,),
            box_xyxy=braked.box,
        )

    def forget(self, track_ids: Iterable[int]) -> None:
        for track_id in track_ids:
            self._memory.pop(track_id, None)
            self._states.pop(track_id, None)
            for memory in self._memory.values():
                memory.contacts.pop(track_id, None)
        alive = self._memory.keys()
        self._candidates = [c for c in self._candidates if c.braked in alive and c.other in alive]

    def renamed(self, old: int, new: int) -> None:
        if old in self._memory:
            self._memory[new] = self._memory.pop(old)
        self._states.pop(old, None)
        for memory in self._memory.values():
            if old in memory.contacts:
                memory.contacts[new] = memory.contacts.pop(old)
        for candidate in self._candidates:
            if candidate.braked == old:
                candidate.braked = new
            if candidate.other == old:
                candidate.other = new
