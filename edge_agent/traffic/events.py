"""Contract events from the traffic stages' values: ``Finding`` -> ViolationEvent, a voted plate -> PlatePassEvent,
``CongestionReport`` -> CongestionEvent.

Pure functions, no I/O. What the contract cannot carry is dropped field by field, never the event: a class
name outside the taxonomy becomes None, and a plate text that is not a normalised plate (``PLATE_PATTERN``)
leaves a violation without its plate (``plate_fits`` says so beforehand, so the caller can count it). A plate
pass needs its plate, so ``plate_pass_event`` returns None for such a text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Protocol

from edge_agent.violations.findings import CongestionReport, Finding
from event_contract import Direction
from event_contract.evidence import MAX_EVIDENCE, EvidenceRef
from event_contract.taxonomy import VEHICLE_CLASSES, VehicleClass
from event_contract.traffic import (
    MAX_RELATED_TRACKS,
    PLATE_PATTERN,
    CongestionEvent,
    PlateColour,
    PlateLayout,
    PlatePassEvent,
    ViolationEvent,
)

_PLATE = re.compile(PLATE_PATTERN)


class VotedPlateLike(Protocol):
    """What the events need of a voted plate (``edge_agent.plates.vote.VotedPlate``)."""

    @property
    def text(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def layout(self) -> PlateLayout | None: ...
    @property
    def format_valid(self) -> bool: ...
    @property
    def plate_colour(self) -> PlateColour | None: ...
    @property
    def reads(self) -> int: ...


def vehicle_class_of(name: str | None) -> VehicleClass | None:
    """The taxonomy class named ``name``, or None for a detector label outside it."""
    return name if name in VEHICLE_CLASSES else None


def plate_fits(plate: VotedPlateLike | None) -> bool:
    """Whether the contract can carry this plate's text (a normalised plate such as 30A-123.45)."""
    return plate is not None and _PLATE.fullmatch(plate.text) is not None


def _confidence(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def violation_event(
    agent_id: str,
    source_id: str,
    finding: Finding,
    *,
    plate: VotedPlateLike | None = None,
    evidence: Sequence[EvidenceRef] = (),
) -> ViolationEvent:
    """The event of one finding, with the plate when it fits the contract and up to ``MAX_EVIDENCE`` references."""
    carried = plate if plate_fits(plate) else None
    started_at = finding.started_at if finding.started_at is None or finding.started_at <= finding.time else None
    return ViolationEvent(
        agent_id=agent_id,
        source_id=source_id,
        time=finding.time,
        violation_type=finding.violation_type,
        category=finding.category,
        track_id=max(0, finding.track_id),
        vehicle_class=vehicle_class_of(finding.vehicle_class),
        line_id=finding.line_id,
        zone_id=finding.zone_id,
        plate=carried.text if carried is not None else None,
        plate_confidence=_confidence(carried.confidence) if carried is not None else None,
        plate_colour=carried.plate_colour if carried is not None else None,
        duration_s=finding.duration_s,
        evidence=tuple(evidence)[:MAX_EVIDENCE],
        rule_id=finding.rule_id,
        started_at=started_at,
        signal_state=finding.signal_state,
        related_track_ids=tuple(t for t in finding.related_track_ids if t >= 0)[:MAX_RELATED_TRACKS],
    )


def plate_pass_event(
    agent_id: str,
    source_id: str,
    *,
    time: dt.datetime,
    track_id: int,
    plate: VotedPlateLike,
    vehicle_class: str | None,
    direction: Direction | None,
    line_id: str | None,
    evidence: Sequence[EvidenceRef] = (),
) -> PlatePassEvent | None:
    """One vehicle's pass with its voted plate; None when the plate text does not fit the contract."""
    if not plate_fits(plate):
        return None
    return PlatePassEvent(
        agent_id=agent_id,
        source_id=source_id,
        time=time,
        plate=plate.text,
        plate_confidence=_confidence(plate.confidence),
        track_id=max(0, track_id),
        vehicle_class=vehicle_class_of(vehicle_class),
        direction=direction,
        line_id=line_id,
        plate_colour=plate.plate_colour,
        evidence=tuple(evidence)[:MAX_EVIDENCE],
        plate_layout=plate.layout,
        format_valid=plate.format_valid,
        reads=min(10_000, max(1, plate.reads)),
    )


def congestion_event(agent_id: str, source_id: str, report: CongestionReport) -> CongestionEvent:
    """A zone's level change or periodic report."""
    return CongestionEvent(
        agent_id=agent_id,
        source_id=source_id,
        time=report.time,
        zone_id=report.zone_id,
        level=report.level,
        previous_level=report.previous_level,
        window_s=report.window_s,
        vehicles=report.vehicles,
        queue_length_ratio=min(1.0, max(0.0, report.queue_length_ratio)),
        occupancy=min(1.0, max(0.0, report.occupancy)),
        speed_ratio=None if report.speed_ratio is None else min(10.0, max(0.0, report.speed_ratio)),
    )
