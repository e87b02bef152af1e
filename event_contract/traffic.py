"""Traffic-police events: violations and incidents, vehicle passes with a read plate (schema 1.2), congestion (1.4).

The rules that produce them run at the edge (see the police issue); central stores them,
counts violations per junction for the "vi phạm tăng 20%" alert, and serves pass history.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from event_contract.evidence import MAX_EVIDENCE, EvidenceRef
from event_contract.models import Direction, EventBase, FiniteFloat, Identifier, UtcDatetime, require_schema
from event_contract.taxonomy import VehicleClass

ViolationType = Literal[
    "red_light",
    "wrong_way",
    "illegal_stopping",
    "lane_violation",
    "speeding",
    "no_helmet",
    "stopped_in_lane",
    "queue_growth",
    "possible_accident",
    "other",
]
"""What rule a track broke, or what incident it was part of."""

ViolationCategory = Literal["violation", "incident"]
"""``violation``: a traffic offence; ``incident``: something for an operator to check (accidents among them)."""

INCIDENT_TYPES: frozenset[str] = frozenset({"stopped_in_lane", "queue_growth", "possible_accident"})
"""Types that are incidents, not offences; every other type is a violation ("other" may be either)."""

PLATE_PATTERN = r"^[0-9A-Z][0-9A-Z.-]{3,15}$"
"""A normalised plate: upper-case letters and digits with the dash and dot of the printed form, e.g. 30A-123.45."""

PlateText = Annotated[str, Field(pattern=PLATE_PATTERN)]
Confidence = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
PlateColour = Literal["white", "yellow", "blue", "red", "green", "other"]
"""Background colour of a Vietnamese plate: white private, yellow commercial, blue state, red military, ..."""
PlateLayout = Literal["one_line", "two_line"]
"""One-line plates (cars, long format) or two-line plates (motorbikes, square car plates)."""
SignalState = Literal["red", "amber", "green", "dark", "unknown"]
"""State of the signal head that governs a lane when the rule was judged (``dark``: switched off or flashing)."""
CongestionLevel = Literal["free", "light", "moderate", "heavy", "jammed"]
"""Congestion level of a zone, from free flow to standstill (levels and thresholds configured per zone)."""
MAX_RELATED_TRACKS = 8


def _at_least_1_4(schema_version: str, kind: str, *fields: object) -> None:
    if any(value not in (None, ()) for value in fields):
        require_schema(schema_version, "1.4", kind)


class ViolationEvent(EventBase):
    """A track broke a rule, or took part in an incident, at ``time`` (schema 1.2)."""

    kind: Literal["violation"] = "violation"
    violation_type: ViolationType
    category: ViolationCategory
    track_id: int = Field(ge=0, description="The edge tracker's id of the vehicle, unique per camera and run.")
    vehicle_class: VehicleClass | None = None
    line_id: Identifier | None = Field(default=None, description="The line involved (a stop line), if any.")
    zone_id: Identifier | None = Field(default=None, description="The zone or lane involved, if any.")
    plate: PlateText | None = None
    plate_confidence: Confidence | None = None
    duration_s: FiniteFloat | None = Field(default=None, ge=0, le=86_400, description="Dwell or stop length.")
    evidence: tuple[EvidenceRef, ...] = Field(default=(), max_length=MAX_EVIDENCE)
    rule_id: Identifier | None = Field(default=None, description="The configured rule that fired (schema 1.4).")
    started_at: UtcDatetime | None = Field(
        default=None,
        description="When the behaviour began (entered the zone, stopped); ``time`` is when it was judged.",
    )
    signal_state: SignalState | None = Field(default=None, description="Signal state at the crossing (red light).")
    related_track_ids: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(), max_length=MAX_RELATED_TRACKS, description="Other vehicles involved (a possible accident)."
    )
    plate_colour: PlateColour | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ViolationEvent:
        require_schema(self.schema_version, "1.2", "violation")
        _at_least_1_4(
            self.schema_version,
            "violation rule/signal/related-track fields",
            self.rule_id,
            self.started_at,
            self.signal_state,
            self.related_track_ids,
            self.plate_colour,
        )
        if self.started_at is not None and self.started_at > self.time:
            raise ValueError("started_at is after time: a behaviour is judged after it began")
        if self.violation_type != "other":
            expected = "incident" if self.violation_type in INCIDENT_TYPES else "violation"
            if self.category != expected:
                raise ValueError(f"violation_type {self.violation_type!r} is a(n) {expected}, not {self.category!r}")
        if (self.plate is None) != (self.plate_confidence is None):
            raise ValueError("plate and plate_confidence are both set or both null")
        return self


class PlatePassEvent(EventBase):
    """A vehicle passed the camera and its plate was read (schema 1.2); personal data, see the police issue."""

    kind: Literal["plate_pass"] = "plate_pass"
    plate: PlateText
    plate_confidence: Confidence
    track_id: int = Field(ge=0)
    vehicle_class: VehicleClass | None = None
    direction: Direction | None = None
    line_id: Identifier | None = None
    vehicle_colour: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    plate_colour: PlateColour | None = None
    evidence: tuple[EvidenceRef, ...] = Field(default=(), max_length=MAX_EVIDENCE)
    plate_layout: PlateLayout | None = Field(default=None, description="One- or two-line plate (schema 1.4).")
    format_valid: bool | None = Field(
        default=None,
        description="True when the text matches a Vietnamese plate format; False for a read kept although it does "
        "not (schema 1.4).",
    )
    reads: int | None = Field(
        default=None, ge=1, le=10_000, description="How many frames were read and voted on for this plate (1.4)."
    )

    @model_validator(mode="after")
    def _schema(self) -> PlatePassEvent:
        require_schema(self.schema_version, "1.2", "plate_pass")
        _at_least_1_4(
            self.schema_version, "plate_pass layout/format/reads", self.plate_layout, self.format_valid, self.reads
        )
        return self


class CongestionEvent(EventBase):
    """A zone's congestion level changed, or its periodic report (schema 1.4); ``time`` is the end of the window.

    The measures are over the last ``window_s`` seconds: ``queue_length_ratio`` is the share of the zone's
    length (along traffic) covered by stopped or crawling vehicles, ``occupancy`` the share of frames'
    zone area covered by vehicle boxes, ``speed_ratio`` the median speed of moving vehicles over the zone's
    configured free-flow speed (a proxy: pixels, not km/h).
    """

    kind: Literal["congestion"] = "congestion"
    zone_id: Identifier
    level: CongestionLevel
    previous_level: CongestionLevel | None = Field(default=None, description="Set when this event is a change.")
    window_s: FiniteFloat = Field(gt=0, le=3600)
    vehicles: int = Field(ge=0, le=100_000, description="Distinct tracked vehicles in the zone during the window.")
    queue_length_ratio: FiniteFloat = Field(ge=0, le=1)
    occupancy: FiniteFloat = Field(ge=0, le=1)
    speed_ratio: FiniteFloat | None = Field(default=None, ge=0, le=10, description="None when nothing moved.")

    @model_validator(mode="after")
    def _schema(self) -> CongestionEvent:
        require_schema(self.schema_version, "1.4", "congestion")
        return self
