"""The police search's own settings: how wide a search may be, and how long its evidence stays viewable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from central_ingest.plates.evidence_requests import EvidenceRequestSettings

MAX_SEARCH_DAYS = 400
"""The widest range any search may be configured to cover (``plates.search.MAX_RANGE``)."""


class PoliceSettings(BaseModel):
    """``Settings.police`` (environment ``IOC_CENTRAL_POLICE__...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search_max_days: int = Field(
        default=90, ge=1, le=MAX_SEARCH_DAYS, description="Widest time range one search may cover (purpose limitation)."
    )
    evidence_view_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="How long after a search its officer may open the evidence images it returned; later, search "
        "again (with a reason).",
    )
    evidence_requests: EvidenceRequestSettings = Field(
        default_factory=EvidenceRequestSettings,
        description="Officers' requests for evidence still at the edge: expiry, per-agent cap, resend interval.",
    )
