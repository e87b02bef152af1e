"""The union of every event kind, the batch an agent sends, and central's answer."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from event_contract.models import (
    MAX_BATCH_EVENTS,
    SCHEMA_VERSION,
    ContractModel,
    CountIntervalEvent,
    HealthEvent,
    Identifier,
    SchemaVersion,
    ZoneIntervalEvent,
)
from event_contract.progress import ProgressEvent, SiteActivityEvent
from event_contract.sensors import SensorReadingEvent
from event_contract.traffic import CongestionEvent, PlatePassEvent, ViolationEvent

EVENT_MODELS = (
    CountIntervalEvent,
    ZoneIntervalEvent,
    HealthEvent,
    ViolationEvent,
    PlatePassEvent,
    ProgressEvent,
    SensorReadingEvent,
    CongestionEvent,
    SiteActivityEvent,
)

Event = Annotated[
    CountIntervalEvent
    | ZoneIntervalEvent
    | HealthEvent
    | ViolationEvent
    | PlatePassEvent
    | ProgressEvent
    | SensorReadingEvent
    | CongestionEvent
    | SiteActivityEvent,
    Field(discriminator="kind"),
]
"""Any event an agent can send; ``kind`` picks the model."""


class EventBatch(ContractModel):
    """What an agent POSTs (or publishes over MQTT): events of one agent, in any order."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    agent_id: Identifier
    events: tuple[Event, ...] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)

    @model_validator(mode="after")
    def _events_belong_to_agent(self) -> EventBatch:
        for index, event in enumerate(self.events):
            if event.agent_id != self.agent_id:
                raise ValueError(
                    f"events[{index}].agent_id is {event.agent_id!r} but the batch is from {self.agent_id!r}"
                )
        return self


class Rejection(ContractModel):
    """One event of a batch that central refused, and why; it is kept in central's dead-letter table."""

    index: int = Field(ge=0, description="Position of the event in the batch's events list.")
    event_id: str | None = Field(default=None, description="The event's id when it could be read.")
    reason: str


MAX_EVIDENCE_WANTED = 100
"""Most evidence digests one ``BatchAck`` asks for; the rest come in later acks."""

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class BatchAck(ContractModel):
    """Central's answer to a batch: what was new, what it already had, and what it refused (never retry those).

    Unknown fields are ignored (not refused, unlike every other contract model): an ack is read by agents
    of many versions, and a field central adds later must not make an older agent discard the answer.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    received: int = Field(ge=0)
    stored: int = Field(ge=0, description="Events new to central.")
    duplicates: int = Field(ge=0, description="Events central already had (a re-sent batch).")
    rejected: int = Field(default=0, ge=0, description="Events refused; see rejections.")
    rejections: tuple[Rejection, ...] = Field(default=(), description="The first refused events with reasons.")
    evidence_wanted: tuple[Sha256Hex, ...] = Field(
        default=(),
        max_length=MAX_EVIDENCE_WANTED,
        exclude_if=lambda wanted: not wanted,  # an ack without requests is byte-for-byte what older agents read
        description="SHA-256 digests of evidence keyframes an officer asked for: upload them "
        "(PUT /api/v1/evidence/{sha256}) whatever the agent's upload policy. Sent only to agents that announce "
        "the feature (HTTP header X-IOC-Ack-Features: evidence_wanted) and only when non-empty.",
    )
