"""What every rule shares: the signal timeline it reads, the rule interface, and per-visit bookkeeping.

A rule keeps state per track id, bounded because the engine tells it which ids the ``TrackBook`` forgot;
``renamed`` carries state over when a new id continues a vanished, stopped track.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.geometry import points_in_polygon
from edge_agent.violations.findings import Finding
from edge_agent.violations.tracks import FrameView
from event_contract.traffic import SignalState


class SignalTimeline:
    """Current state of each signal and since when (as observed frame by frame): red onset for the grace."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[SignalState, float]] = {}

    def observe(self, signals: Mapping[str, SignalState], t: float) -> None:
        for signal_id, state in signals.items():
            previous = self._states.get(signal_id)
            if previous is None or previous[0] != state:
                self._states[signal_id] = (state, t)
        for signal_id in [s for s in self._states if s not in signals]:
            if self._states[signal_id][0] != "unknown":
                self._states[signal_id] = ("unknown", t)

    def state(self, signal_id: str) -> SignalState:
        entry = self._states.get(signal_id)
        return "unknown" if entry is None else entry[0]

    def red_for(self, signal_id: str, t: float) -> float | None:
        """Seconds the signal has been red at ``t``, None when it is not red."""
        entry = self._states.get(signal_id)
        if entry is None or entry[0] != "red":
            return None
        return t - entry[1]


class Clock:
    """Seconds since the engine's first frame <-> UTC datetimes."""

    def __init__(self, epoch: dt.datetime) -> None:
        self.epoch = epoch

    def seconds(self, when: dt.datetime) -> float:
        return (when - self.epoch).total_seconds()

    def at(self, t: float) -> dt.datetime:
        return self.epoch + dt.timedelta(seconds=t)


class Rule(Protocol):
    """One configured rule of one camera."""

    rule_id: str

    def update(self, view: FrameView, signals: SignalTimeline, clock: Clock) -> list[Finding]: ...

    def forget(self, track_ids: Iterable[int]) -> None: ...

    def renamed(self, old: int, new: int) -> None: ...


VisitT = TypeVar("VisitT")


@dataclass(slots=True)
class Visit(Generic[VisitT]):
    """A track's stay in one rule's area: from first seen inside to ``exit_grace_s`` after last seen inside."""

    entered: float
    last_inside: float
    fired: bool
    data: VisitT


class Visits(Generic[VisitT]):
    """Visits of tracks to one polygon (pixels), with the exit grace, keyed by track id."""

    def __init__(self, polygon: npt.NDArray[np.float64] | None, exit_grace_s: float) -> None:
        self._polygon = polygon
        self._grace = exit_grace_s
        self._visits: dict[int, Visit[VisitT]] = {}

    def inside(self, view: FrameView) -> npt.NDArray[np.bool_]:
        if len(view) == 0:
            return np.zeros(0, dtype=np.bool_)
        if self._polygon is None:
            return np.ones(len(view), dtype=np.bool_)
        return points_in_polygon(view.anchors, self._polygon)

    def get(self, track_id: int) -> Visit[VisitT] | None:
        return self._visits.get(track_id)

    def enter(self, track_id: int, t: float, data: VisitT) -> Visit[VisitT]:
        visit = self._visits.get(track_id)
        if visit is None:
            visit = Visit(t, t, False, data)
            self._visits[track_id] = visit
        visit.last_inside = t
        return visit

    def expire(self, t: float) -> None:
        for track_id in [k for k, v in self._visits.items() if t - v.last_inside > self._grace]:
            del self._visits[track_id]

    def forget(self, track_ids: Iterable[int]) -> None:
        for track_id in track_ids:
            self._visits.pop(track_id, None)

    def renamed(self, old: int, new: int) -> None:
        visit = self._visits.pop(old, None)
        if visit is not None:
            self._visits[new] = visit

    def items(self) -> list[tuple[int, Visit[VisitT]]]:
        return list(self._visits.items())

    def __len__(self) -> int:
        return len(self._visits)
