"""What the engine reports: findings (violations, incidents) and congestion reports, as plain immutable values.

Part of the edge pipeline turns them into ``ViolationEvent`` / ``CongestionEvent`` (with evidence and plate);
nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from event_contract.traffic import CongestionLevel, SignalState, ViolationCategory, ViolationType


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation or incident, judged at ``time``."""

    rule_id: str
    violation_type: ViolationType
    category: ViolationCategory
    track_id: int
    vehicle_class: str | None
    time: dt.datetime
    started_at: dt.datetime | None
    """When the behaviour began (crossed the line, stopped, entered the lane); never after ``time``."""
    line_id: str | None
    zone_id: str | None
    signal_state: SignalState | None
    duration_s: float | None
    related_track_ids: tuple[int, ...]
    box_xyxy: tuple[float, float, float, float]
    """The vehicle's pixel box at ``time`` (for the evidence keyframe)."""


@dataclass(frozen=True, slots=True)
class CongestionReport:
    """A level change (``previous_level`` set) or the periodic report of one zone."""

    zone_id: str
    time: dt.datetime
    level: CongestionLevel
    previous_level: CongestionLevel | None
    window_s: float
    vehicles: int
    queue_length_ratio: float
    occupancy: float
    speed_ratio: float | None


@dataclass(frozen=True, slots=True)
class ViolationStep:
    """What one ``update`` (or ``expire``) decided."""

    findings: tuple[Finding, ...] = ()
    congestion: tuple[CongestionReport, ...] = ()
