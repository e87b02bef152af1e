"""The event contract shared by the edge agent and the central ingest service."""

from event_contract.ids import new_event_id
from event_contract.models import (
    MAX_BATCH_EVENTS,
    SCHEMA_VERSION,
    BatchAck,
    CountBucket,
    CountIntervalEvent,
    Direction,
    Event,
    EventBatch,
    HealthEvent,
    IntervalQuality,
    SchemaVersion,
    SourceState,
    ZoneClassStats,
    ZoneIntervalEvent,
)
from event_contract.taxonomy import VEHICLE_CLASSES, VehicleClass

__all__ = [
    "MAX_BATCH_EVENTS",
    "SCHEMA_VERSION",
    "VEHICLE_CLASSES",
    "BatchAck",
    "CountBucket",
    "CountIntervalEvent",
    "Direction",
    "Event",
    "EventBatch",
    "HealthEvent",
    "IntervalQuality",
    "SchemaVersion",
    "SourceState",
    "VehicleClass",
    "ZoneClassStats",
    "ZoneIntervalEvent",
    "new_event_id",
]
