"""References to evidence kept at the edge (keyframes, short clips), carried by events that need proof."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from event_contract.models import ContractModel, UtcDatetime

MAX_EVIDENCE = 8
"""Most evidence references on one event; the media itself stays at the edge until asked for."""


class EvidenceRef(ContractModel):
    """Where a keyframe or clip can be fetched from (agent-relative path or URL), and what it shows."""

    kind: Literal["keyframe", "clip"]
    uri: str = Field(min_length=1, max_length=500, pattern=r"^\S+$", description="No whitespace; opaque to central.")
    time: UtcDatetime | None = Field(default=None, description="Source time of the keyframe or clip start.")
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="Digest of the media, so a later upload can be checked."
    )


Evidence = tuple[EvidenceRef, ...]
