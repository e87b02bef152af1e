"""The event contract shared by the edge agent and the central ingest service."""

from event_contract.batch import EVENT_MODELS, BatchAck, Event, EventBatch, Rejection
from event_contract.evidence import EvidenceRef
from event_contract.ids import new_event_id
from event_contract.models import (
    MAX_BATCH_EVENTS,
    SCHEMA_VERSION,
    CountBucket,
    CountIntervalEvent,
    DeliveryHealth,
    Direction,
    HealthEvent,
    IntervalQuality,
    SchemaVersion,
    SourceState,
    ZoneClassStats,
    ZoneIntervalEvent,
)
from event_contract.progress import ActivityGroup, ProgressEvent, ProgressMethod, SiteActivityEvent
from event_contract.sensors import METRICS, SensorKind, SensorMetric, SensorReadingEvent
from event_contract.taxonomy import VEHICLE_CLASSES, VehicleClass
from event_contract.traffic import (
    CongestionEvent,
    CongestionLevel,
    PlateColour,
    PlateLayout,
    PlatePassEvent,
    SignalState,
    ViolationCategory,
    ViolationEvent,
    ViolationType,
)

__all__ = [
    "EVENT_MODELS",
    "MAX_BATCH_EVENTS",
    "METRICS",
    "SCHEMA_VERSION",
    "VEHICLE_CLASSES",
    "ActivityGroup",
    "BatchAck",
    "CongestionEvent",
    "CongestionLevel",
    "CountBucket",
    "CountIntervalEvent",
    "DeliveryHealth",
    "Direction",
    "Event",
    "EventBatch",
    "EvidenceRef",
    "HealthEvent",
    "IntervalQuality",
    "PlateColour",
    "PlateLayout",
    "PlatePassEvent",
    "ProgressEvent",
    "ProgressMethod",
    "Rejection",
    "SchemaVersion",
    "SensorKind",
    "SensorMetric",
    "SensorReadingEvent",
    "SignalState",
    "SiteActivityEvent",
    "SourceState",
    "VehicleClass",
    "ViolationCategory",
    "ViolationEvent",
    "ViolationType",
    "ZoneClassStats",
    "ZoneIntervalEvent",
    "new_event_id",
]
