"""Versioned event models: the only values that cross the network.

Both the edge agent and the central ingest service import this module, so a
field added here is seen by both sides at once. Each event carries a globally
unique ``event_id`` made at the edge (so a re-sent event is recognised), the
``agent_id`` that produced it, the ``source_id`` (camera or sensor), and the
``time`` of the observation in UTC, taken from the source clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from event_contract.ids import new_event_id
from event_contract.taxonomy import VehicleClass

SCHEMA_VERSION: Literal["1.0"] = "1.0"
"""Bumped on any change that an older reader could not parse."""

MAX_BATCH_EVENTS = 5000
"""Upper bound on events in one batch, so one request cannot exhaust memory."""

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""Agent, camera, sensor and line ids: short, printable, safe in URLs and topics."""

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]


def _require_utc(value: dt.datetime) -> dt.datetime:
    """Accept any aware datetime and normalise it to UTC; reject naive ones."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (UTC recommended)")
    return value.astimezone(dt.UTC)


UtcDatetime = Annotated[dt.datetime, AfterValidator(_require_utc)]

Direction = Literal["in", "out"]
"""Crossing direction of a counting line: ``in`` follows the line's arrow."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class EventBase(_Frozen):
    """Fields every event carries."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    event_id: UUID = Field(default_factory=new_event_id, description="Made at the edge; unique forever.")
    agent_id: Identifier
    source_id: Identifier = Field(description="Camera or sensor id, unique within the agent.")
    time: UtcDatetime = Field(description="Observation time in UTC, from the source clock.")


class CountBucket(_Frozen):
    """Crossings of one class in one direction during an interval."""

    vehicle_class: VehicleClass
    direction: Direction
    count: int = Field(ge=0, le=1_000_000)


class CountIntervalEvent(EventBase):
    """Line crossings by class and direction over ``[time, time + interval_s)``."""

    kind: Literal["count_interval"] = "count_interval"
    line_id: Identifier
    interval_s: int = Field(gt=0, le=86_400, description="Length of the interval in seconds.")
    counts: tuple[CountBucket, ...] = Field(
        default=(), max_length=64, description="Empty when nothing crossed: a quiet interval is still reported."
    )

    @model_validator(mode="after")
    def _one_bucket_per_key(self) -> CountIntervalEvent:
        keys = [(b.vehicle_class, b.direction) for b in self.counts]
        if len(keys) != len(set(keys)):
            raise ValueError("counts must hold at most one bucket per (vehicle_class, direction)")
        return self


SourceState = Literal["starting", "connecting", "live", "stalled", "down", "stopped"]


class HealthEvent(EventBase):
    """State and throughput of one source (camera) or of the agent itself."""

    kind: Literal["health"] = "health"
    state: SourceState
    reason: str = Field(default="", max_length=500)
    frames_decoded: int = Field(default=0, ge=0)
    frames_processed: int = Field(default=0, ge=0)
    frames_dropped: int = Field(default=0, ge=0)
    fps: float = Field(default=0.0, ge=0.0)
    uptime_s: float = Field(default=0.0, ge=0.0)


Event = Annotated[CountIntervalEvent | HealthEvent, Field(discriminator="kind")]
"""Any event an agent can send; ``kind`` picks the model."""


class EventBatch(_Frozen):
    """What an agent POSTs: events of one agent, in any order."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
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


class BatchAck(_Frozen):
    """Central's answer to a stored batch."""

    received: int = Field(ge=0)
    stored: int = Field(ge=0, description="Events new to central.")
    duplicates: int = Field(ge=0, description="Events central already had (a re-sent batch).")
