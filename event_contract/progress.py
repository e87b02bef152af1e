"""Construction progress events: a project's or a work package's % complete on a day (schema 1.2), the
measurement details of a camera estimate (1.5), and a site zone's activity over an hour (1.5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from event_contract.evidence import MAX_EVIDENCE, EvidenceRef
from event_contract.models import EventBase, FiniteFloat, Identifier, UtcDatetime, require_schema

ProgressMethod = Literal["camera_visual", "activity", "manual", "survey"]
"""How the figure was obtained; ``manual`` and ``survey`` figures are entered by people."""

ActivityGroup = Literal["worker", "machine", "truck"]
"""What counts as work on a site: people, machinery (excavators, cranes...), trucks."""


class ProgressEvent(EventBase):
    """Estimated or confirmed % complete of a project (``package_id`` null) or one work package at ``time``."""

    kind: Literal["progress"] = "progress"
    project_id: Identifier
    package_id: Identifier | None = Field(default=None, description="Null: the project as a whole.")
    percent_complete: float = Field(ge=0, le=100, allow_inf_nan=False)
    method: ProgressMethod
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False, description="1 for a confirmed figure.")
    confirmed: bool = Field(default=False, description="A person confirmed or entered the figure; it wins.")
    note: str = Field(default="", max_length=1000)
    evidence: tuple[EvidenceRef, ...] = Field(default=(), max_length=MAX_EVIDENCE)
    raw_percent: float | None = Field(
        default=None, ge=0, le=100, allow_inf_nan=False,
        description="Schema 1.5: the day's estimate before smoothing over days (camera estimates only).",
    )  # fmt: skip
    frames_used: int | None = Field(
        default=None, ge=0, le=100_000, description="Schema 1.5: analysed frames that passed the quality checks."
    )
    frames_rejected: int | None = Field(
        default=None, ge=0, le=100_000, description="Schema 1.5: sampled frames rejected (night, dark, blur, fog...)."
    )
    quality: float | None = Field(
        default=None, ge=0, le=1, allow_inf_nan=False, description="Schema 1.5: mean quality score of used frames."
    )

    @model_validator(mode="after")
    def _schema(self) -> ProgressEvent:
        require_schema(self.schema_version, "1.2", "progress")
        details = (self.raw_percent, self.frames_used, self.frames_rejected, self.quality)
        if any(value is not None for value in details):
            require_schema(self.schema_version, "1.5", "progress measurement details")
        return self


class SiteActivityEvent(EventBase):
    """Work seen in one zone of a construction site camera over ``[start, time)`` (schema 1.5).

    ``activity_index`` is the share of analysed frames in the window with at least one worker, machine or
    truck in the zone; ``active_s`` is that share of the analysed (covered) seconds, so a day's working hours
    are the sum of ``active_s`` over its windows divided by 3600.
    """

    kind: Literal["site_activity"] = "site_activity"
    project_id: Identifier
    zone_id: Identifier
    start: UtcDatetime = Field(description="Window start; ``time`` is its end.")
    frames: int = Field(ge=0, le=1_000_000, description="Analysed frames in the window.")
    covered_s: FiniteFloat = Field(ge=0, le=86_400, description="Seconds of the window the frames stand for.")
    activity_index: FiniteFloat = Field(ge=0, le=1)
    active_s: FiniteFloat = Field(ge=0, le=86_400)
    mean_present: dict[ActivityGroup, FiniteFloat] = Field(
        default_factory=dict, description="Mean count in the zone per analysed frame, per group."
    )
    peak_present: dict[ActivityGroup, int] = Field(
        default_factory=dict, description="Most seen at once in the zone, per group."
    )

    @model_validator(mode="after")
    def _schema(self) -> SiteActivityEvent:
        require_schema(self.schema_version, "1.5", "site_activity")
        if self.start >= self.time:
            raise ValueError("start must be before time")
        if self.active_s > self.covered_s + 1e-6:
            raise ValueError("active_s cannot exceed covered_s")
        if any(v < 0 for v in self.mean_present.values()) or any(v < 0 for v in self.peak_present.values()):
            raise ValueError("counts cannot be negative")
        return self
