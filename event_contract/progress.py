"""Construction progress events (schema 1.2): a project's or a work package's % complete on a day."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from event_contract.evidence import MAX_EVIDENCE, EvidenceRef
from event_contract.models import EventBase, Identifier, require_schema

ProgressMethod = Literal["camera_visual", "activity", "manual", "survey"]
"""How the figure was obtained; ``manual`` and ``survey`` figures are entered by people."""


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

    @model_validator(mode="after")
    def _schema(self) -> ProgressEvent:
        require_schema(self.schema_version, "1.2", "progress")
        return self
