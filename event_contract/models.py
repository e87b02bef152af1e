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

SchemaVersion = Literal["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"]
"""Versions central accepts. 1.1 added ``IntervalQuality`` and ``ZoneIntervalEvent``; 1.2 added violations,
plate passes, progress and sensor readings; 1.3 added the agent's delivery state to health events
(``DeliveryHealth``) and a water-level station's own alert levels; 1.4 added congestion events and the rule,
signal and related-track details of violations and the layout and vote of plate passes; 1.5 added construction
site activity events and the measurement details of camera progress estimates. An event of an older
version is still valid."""

SCHEMA_VERSION: Literal["1.5"] = "1.5"
"""What this code writes. Bumped on any change that an older reader could not parse."""

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


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is a number: JSON cannot carry NaN or infinity, and a parser that accepts them must not."""


def require_schema(schema_version: str, minimum: str, kind: str) -> None:
    """Reject an event kind sent under a schema version older than the one that introduced it."""
    if tuple(int(p) for p in schema_version.split(".")) < tuple(int(p) for p in minimum.split(".")):
        raise ValueError(f"{kind} events exist from schema {minimum} on")


class ContractModel(BaseModel):
    """Every contract value: immutable, unknown fields rejected, surrounding whitespace stripped."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class EventBase(ContractModel):
    """Fields every event carries."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    event_id: UUID = Field(default_factory=new_event_id, description="Made at the edge; unique forever.")
    agent_id: Identifier
    source_id: Identifier = Field(description="Camera or sensor id, unique within the agent.")
    time: UtcDatetime = Field(description="Observation time in UTC, from the source clock.")


class CountBucket(ContractModel):
    """Crossings of one class in one direction during an interval."""

    vehicle_class: VehicleClass
    direction: Direction
    count: int = Field(ge=0, le=1_000_000)


QUALITY_TOLERANCE_S = 0.01
"""Rounding slack allowed when quality fields are checked against each other."""


class IntervalQuality(ContractModel):
    """How much of an interval the analytics really watched (schema 1.1).

    Definitions (the edge agent's ``analytics.coverage`` module computes them):

    - ``analysed_s``: each analysed frame credits the source time since the previous analysed
      frame, capped at the agent's ``max_frame_gap_s`` (default 1 s): the sum of the gaps between
      consecutive analysed frames, each capped, split at interval boundaries. A camera analysed at
      5 frames/s for a whole minute has analysed_s = 60; one that delivered nothing has 0.
    - ``downtime_s``: source time during which the reader reported the source not live
      (connecting, down, stalled) and no frame was analysed, counted from the last analysed frame.
    - ``expected_s``: the seconds the interval should have had analysed: its length.
    - ``coverage``: ``analysed_s / expected_s``, 0..1.

    A quiet road reads ``coverage`` near 1 with zero counts; a dead camera reads ``coverage`` 0
    with ``downtime_s`` near ``expected_s``. Seconds that are neither analysed nor downtime are
    time the source was nominally live but gave no usable frames (e.g. the minutes before a
    stall is detected, or the part of the first interval before the agent started).
    """

    expected_s: float = Field(gt=0, le=86_400, description="Seconds the interval should have had analysed: its length.")
    analysed_s: float = Field(
        ge=0,
        le=86_400,
        description="Sum of the gaps between consecutive analysed frames inside the interval, each gap capped at "
        "the agent's max_frame_gap_s (so a stream that freezes is not counted as watched).",
    )
    frames_analysed: int = Field(ge=0, description="Frames run through detection/tracking/counting in the interval.")
    frames_dropped: int = Field(
        ge=0, description="Frames the reader->analytics mailbox discarded (drop_oldest) during the interval."
    )
    downtime_s: float = Field(
        ge=0,
        le=86_400,
        description="Seconds the source was reported not live (connecting, down, stalled) with no frame analysed, "
        "counted from the last analysed frame.",
    )
    detector_backend: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:+-]+$", description="Detector backend that analysed it."
    )
    coverage: float = Field(ge=0, le=1, description="analysed_s / expected_s: 1 = fully watched, 0 = not at all.")

    @model_validator(mode="after")
    def _consistent(self) -> IntervalQuality:
        if self.analysed_s + self.downtime_s > self.expected_s + QUALITY_TOLERANCE_S:
            raise ValueError(
                f"analysed_s ({self.analysed_s}) + downtime_s ({self.downtime_s}) exceed expected_s ({self.expected_s})"
            )
        if abs(self.coverage - self.analysed_s / self.expected_s) > 0.001:
            raise ValueError(f"coverage {self.coverage} is not analysed_s / expected_s")
        return self


class CountIntervalEvent(EventBase):
    """Line crossings by class and direction over ``[time, time + interval_s)``."""

    kind: Literal["count_interval"] = "count_interval"
    line_id: Identifier
    interval_s: int = Field(gt=0, le=86_400, description="Length of the interval in seconds.")
    counts: tuple[CountBucket, ...] = Field(
        default=(), max_length=64, description="Empty when nothing crossed: a quiet interval is still reported."
    )
    quality: IntervalQuality | None = Field(
        default=None,
        description="How much of the interval was watched (schema 1.1). Absent only in events of schema 1.0 "
        "agents; central stores that as unknown, never as full coverage.",
    )

    @model_validator(mode="after")
    def _one_bucket_per_key(self) -> CountIntervalEvent:
        keys = [(b.vehicle_class, b.direction) for b in self.counts]
        if len(keys) != len(set(keys)):
            raise ValueError("counts must hold at most one bucket per (vehicle_class, direction)")
        if self.quality is not None and self.quality.expected_s > self.interval_s:
            raise ValueError(f"quality.expected_s ({self.quality.expected_s}) exceeds interval_s ({self.interval_s})")
        return self


class ZoneClassStats(ContractModel):
    """One vehicle class in a zone during an interval."""

    vehicle_class: VehicleClass
    entries: int = Field(ge=0, le=1_000_000)
    exits: int = Field(ge=0, le=1_000_000)
    occupancy_mean: float | None = Field(
        ge=0, description="Mean number of this class inside over the analysed frames; null when none was analysed."
    )
    occupancy_max: int | None = Field(ge=0, description="Most of this class inside in one analysed frame.")


class ZoneIntervalEvent(EventBase):
    """Occupancy, entries, exits and dwell times of one zone over ``[time, time + interval_s)`` (schema 1.1).

    - occupancy: vehicles whose anchor point is inside the polygon in an analysed frame;
      ``occupancy_mean`` is the mean over the interval's analysed frames, null when none was analysed.
    - an entry is a track first seen inside (after being outside or unseen); an exit is a track that
      has not been seen inside for the zone's ``exit_grace_s``, dated when it was last seen inside, so a
      track lost for a moment neither leaves nor re-enters.
    - dwell: exit time minus entry time of the tracks that LEFT in this interval (mean, max, p95 by
      nearest rank; null when none left); ``dwell_longest_inside_s`` is the longest stay so far of the
      tracks still inside at the interval's last analysed frame (null when none was inside).
    """

    kind: Literal["zone_interval"] = "zone_interval"
    zone_id: Identifier
    interval_s: int = Field(gt=0, le=86_400, description="Length of the interval in seconds.")
    entries: int = Field(ge=0, le=1_000_000)
    exits: int = Field(ge=0, le=1_000_000)
    occupancy_mean: float | None = Field(ge=0, description="Mean vehicles inside over the analysed frames.")
    occupancy_max: int | None = Field(ge=0, description="Most vehicles inside in one analysed frame.")
    dwell_mean_s: float | None = Field(ge=0, description="Mean dwell of the tracks that left in the interval.")
    dwell_max_s: float | None = Field(ge=0, description="Longest dwell of the tracks that left in the interval.")
    dwell_p95_s: float | None = Field(ge=0, description="95th percentile (nearest rank) of those dwells.")
    dwell_longest_inside_s: float | None = Field(
        ge=0, description="Longest stay so far of the tracks still inside at the interval's last analysed frame."
    )
    classes: tuple[ZoneClassStats, ...] = Field(
        default=(), max_length=64, description="Per-class breakdown; classes never seen in the interval are left out."
    )
    quality: IntervalQuality = Field(description="How much of the interval was watched.")

    @model_validator(mode="after")
    def _consistent(self) -> ZoneIntervalEvent:
        require_schema(self.schema_version, "1.1", "zone_interval")
        if self.quality.expected_s > self.interval_s:
            raise ValueError(f"quality.expected_s ({self.quality.expected_s}) exceeds interval_s ({self.interval_s})")
        classes = [c.vehicle_class for c in self.classes]
        if len(classes) != len(set(classes)):
            raise ValueError("classes must hold at most one entry per vehicle_class")
        if (self.occupancy_mean is None) != (self.occupancy_max is None):
            raise ValueError("occupancy_mean and occupancy_max are both set or both null")
        dwell = (self.dwell_mean_s, self.dwell_max_s, self.dwell_p95_s)
        if any((v is not None) != (self.exits > 0) for v in dwell):
            raise ValueError("dwell_mean_s, dwell_max_s and dwell_p95_s are set exactly when exits > 0")
        mean, longest, p95 = dwell
        if mean is not None and longest is not None and p95 is not None and max(mean, p95) > longest + 0.001:
            raise ValueError("dwell_mean_s and dwell_p95_s cannot exceed dwell_max_s")
        return self


SourceState = Literal["starting", "connecting", "live", "stalled", "down", "stopped"]


class DeliveryHealth(ContractModel):
    """The agent's store-and-forward state, so central can show a backlog and any gap in the data.

    Counters are totals since the spool was created (they survive restarts), so central sees the
    gap even if it missed some health events.
    """

    spool_events: int = Field(ge=0, description="Events waiting in the agent's spool for central.")
    spool_bytes: int = Field(ge=0)
    oldest_pending: UtcDatetime | None = Field(default=None, description="Event time of the oldest waiting event.")
    dropped_events: int = Field(
        default=0, ge=0, description="Events the full spool discarded by its policy (lowest priority, oldest first)."
    )
    dropped_by_kind: dict[str, int] = Field(default_factory=dict, max_length=32)
    dropped_first: UtcDatetime | None = Field(default=None, description="Event time of the oldest dropped event.")
    dropped_last: UtcDatetime | None = Field(default=None, description="Event time of the newest dropped event.")
    memory_held: int = Field(default=0, ge=0, description="Events held in memory while the disk refuses writes.")
    dead_letters: int = Field(default=0, ge=0, description="Inputs the agent refused and kept (bad sensor payloads).")
    state: Literal["ok", "degraded"] = "ok"
    reason: str = Field(default="", max_length=500)


class HealthEvent(EventBase):
    """State and throughput of one source (camera, sensor) or of the agent itself (``source_id`` = agent id)."""

    kind: Literal["health"] = "health"
    state: SourceState
    reason: str = Field(default="", max_length=500)
    frames_decoded: int = Field(default=0, ge=0)
    frames_processed: int = Field(default=0, ge=0)
    frames_dropped: int = Field(default=0, ge=0)
    fps: float = Field(default=0.0, ge=0.0)
    uptime_s: float = Field(default=0.0, ge=0.0)
    delivery: DeliveryHealth | None = Field(
        default=None, description="Only on the agent's own health events (schema 1.3 on)."
    )

    @model_validator(mode="after")
    def _delivery_needs_13(self) -> HealthEvent:
        if self.delivery is not None:
            require_schema(self.schema_version, "1.3", "health.delivery")
        return self
