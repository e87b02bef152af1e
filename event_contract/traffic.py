"""Traffic-police events (schema 1.2): violations and incidents, and vehicle passes with a read plate.

The rules that produce them run at the edge (see the police issue); central stores them,
counts violations per junction for the "vi phạm tăng 20%" alert, and serves pass history.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from event_contract.evidence import MAX_EVIDENCE, EvidenceRef
from event_contract.models import Direction, EventBase, FiniteFloat, Identifier, require_schema
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

    @model_validator(mode="after")
    def _consistent(self) -> ViolationEvent:
        require_schema(self.schema_version, "1.2", "violation")
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

    @model_validator(mode="after")
    def _schema(self) -> PlatePassEvent:
        require_schema(self.schema_version, "1.2", "plate_pass")
        return self
