"""The event contract: validation rules, ids, and the exported schema file."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from pydantic import TypeAdapter, ValidationError

from event_contract import (
    SCHEMA_VERSION,
    CountBucket,
    CountIntervalEvent,
    Event,
    EventBatch,
    HealthEvent,
    IntervalQuality,
    PlatePassEvent,
    ProgressEvent,
    SensorReadingEvent,
    ViolationEvent,
    ZoneIntervalEvent,
    new_event_id,
)
from event_contract.schema_export import SCHEMA_PATH, render_schema

T0 = dt.datetime(2026, 11, 25, 7, 0, tzinfo=dt.UTC)


def count_event(**overrides: object) -> CountIntervalEvent:
    fields: dict[str, object] = {
        "agent_id": "agent-1",
        "source_id": "cam-1",
        "time": T0,
        "line_id": "line-a",
        "interval_s": 60,
        "counts": [{"vehicle_class": "car", "direction": "in", "count": 3}],
    }
    fields.update(overrides)
    return CountIntervalEvent.model_validate(fields)


def test_schema_file_is_current() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "schemas/event_batch.schema.json is stale: run python -m event_contract.schema_export"
    )


def test_schema_file_describes_every_event_kind() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    kinds = {"CountIntervalEvent", "ZoneIntervalEvent", "HealthEvent", "IntervalQuality", "ViolationEvent"}
    kinds |= {
        "PlatePassEvent",
        "ProgressEvent",
        "SensorReadingEvent",
        "EvidenceRef",
        "DeliveryHealth",
        "CongestionEvent",
    }
    assert kinds <= set(schema["$defs"])
    assert schema["$id"] == "urn:ioc-edge:event-batch:1.5"
    assert "capped" in schema["$defs"]["IntervalQuality"]["properties"]["analysed_s"]["description"]


def test_event_ids_are_unique_time_ordered_uuid7() -> None:
    ids = [new_event_id(unix_ms=1_700_000_000_000 + i) for i in range(100)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len({new_event_id() for _ in range(1000)}) == 1000


def test_time_is_normalised_to_utc_and_naive_time_rejected() -> None:
    ict = dt.timezone(dt.timedelta(hours=7))
    event = count_event(time=dt.datetime(2026, 11, 25, 14, 0, tzinfo=ict))
    assert event.time == T0
    assert event.time.utcoffset() == dt.timedelta(0)
    with pytest.raises(ValidationError, match="timezone"):
        count_event(time=dt.datetime(2026, 11, 25, 7, 0))  # noqa: DTZ001 - the naive value is the point


def test_events_round_trip_through_json() -> None:
    batch = EventBatch(
        agent_id="agent-1",
        events=(count_event(), HealthEvent(agent_id="agent-1", source_id="cam-1", time=T0, state="live", fps=12.5)),
    )
    again = EventBatch.model_validate_json(batch.model_dump_json())
    assert again == batch
    assert isinstance(again.events[1], HealthEvent)


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"counts": [{"vehicle_class": "car", "direction": "in", "count": -1}]}, "counts.0.count"),
        ({"counts": [{"vehicle_class": "spaceship", "direction": "in", "count": 1}]}, "counts.0.vehicle_class"),
        ({"source_id": "cam 1; drop table"}, "source_id"),
        ({"interval_s": 0}, "interval_s"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_fields_are_rejected_with_their_path(overrides: dict[str, object], path: str) -> None:
    with pytest.raises(ValidationError) as raised:
        count_event(**overrides)
    locations = {".".join(str(p) for p in error["loc"]) for error in raised.value.errors()}
    assert path in locations


def test_duplicate_buckets_are_rejected() -> None:
    bucket = CountBucket(vehicle_class="car", direction="in", count=1)
    with pytest.raises(ValidationError, match="one bucket per"):
        count_event(counts=[bucket, bucket])


def test_batch_rejects_events_of_another_agent() -> None:
    with pytest.raises(ValidationError, match=r"events\[0\]\.agent_id"):
        EventBatch(agent_id="agent-2", events=(count_event(),))


def test_events_are_immutable() -> None:
    event = count_event()
    with pytest.raises(ValidationError):
        event.interval_s = 30  # type: ignore[misc]


QUALITY = {
    "expected_s": 60.0,
    "analysed_s": 59.2,
    "frames_analysed": 296,
    "frames_dropped": 4,
    "downtime_s": 0.0,
    "detector_backend": "ssd_mobilenet_oidv4",
    "coverage": 0.986667,
}


def zone_event(**overrides: object) -> ZoneIntervalEvent:
    fields: dict[str, object] = {
        "agent_id": "agent-1",
        "source_id": "cam-1",
        "time": T0,
        "zone_id": "bus-stop",
        "interval_s": 60,
        "entries": 3,
        "exits": 2,
        "occupancy_mean": 1.4,
        "occupancy_max": 3,
        "dwell_mean_s": 20.0,
        "dwell_max_s": 31.5,
        "dwell_p95_s": 31.5,
        "dwell_longest_inside_s": 44.0,
        "classes": [{"vehicle_class": "bus", "entries": 3, "exits": 2, "occupancy_mean": 1.4, "occupancy_max": 3}],
        "quality": QUALITY,
    }
    fields.update(overrides)
    return ZoneIntervalEvent.model_validate(fields)


def test_version_1_1_events_carry_quality_and_1_0_events_still_validate() -> None:
    assert SCHEMA_VERSION == "1.5"
    new = count_event(quality=QUALITY)
    assert new.schema_version == "1.5"
    assert new.quality is not None
    assert new.quality.coverage == pytest.approx(59.2 / 60, abs=1e-3)
    legacy = {
        "kind": "count_interval",
        "schema_version": "1.0",
        "agent_id": "agent-1",
        "source_id": "cam-1",
        "time": "2026-11-25T07:00:00Z",
        "line_id": "line-a",
        "interval_s": 60,
        "counts": [],
    }
    old = EventBatch.model_validate({"schema_version": "1.0", "agent_id": "agent-1", "events": [legacy]})
    assert old.events[0].schema_version == "1.0"
    assert isinstance(old.events[0], CountIntervalEvent)
    assert old.events[0].quality is None
    with pytest.raises(ValidationError, match="schema_version"):
        count_event(schema_version="2.0")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"coverage": 0.5}, "coverage"),
        ({"downtime_s": 10.0}, "exceed expected_s"),
        ({"frames_dropped": -1}, "greater than or equal"),
        ({"detector_backend": "yolo; drop"}, "pattern"),
        ({"expected_s": 0}, "greater than 0"),
    ],
)
def test_quality_fields_must_agree(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IntervalQuality.model_validate(QUALITY | changes)
    with pytest.raises(ValidationError, match="exceeds interval_s"):
        count_event(interval_s=30, quality=QUALITY)


def test_zone_event_round_trips_and_its_rules_hold() -> None:
    event = zone_event()
    batch = EventBatch(agent_id="agent-1", events=(event, count_event(quality=QUALITY)))
    again = EventBatch.model_validate_json(batch.model_dump_json())
    assert again == batch
    assert isinstance(again.events[0], ZoneIntervalEvent)
    quiet = zone_event(entries=0, exits=0, dwell_mean_s=None, dwell_max_s=None, dwell_p95_s=None, classes=[])
    assert quiet.dwell_max_s is None
    with pytest.raises(ValidationError, match="exactly when exits > 0"):
        zone_event(exits=0)
    with pytest.raises(ValidationError, match="exactly when exits > 0"):
        zone_event(dwell_p95_s=None)
    with pytest.raises(ValidationError, match="cannot exceed dwell_max_s"):
        zone_event(dwell_mean_s=40.0)
    with pytest.raises(ValidationError, match="both set or both null"):
        zone_event(occupancy_mean=None)
    with pytest.raises(ValidationError, match=r"from schema 1\.1"):
        zone_event(schema_version="1.0")
    with pytest.raises(ValidationError, match="quality"):
        zone_event(quality=None)
    bus = {"vehicle_class": "bus", "entries": 1, "exits": 1, "occupancy_mean": 1.0, "occupancy_max": 1}
    with pytest.raises(ValidationError, match="one entry per vehicle_class"):
        zone_event(classes=[bus, bus])


def _parse(event: dict[str, object]) -> object:
    return TypeAdapter(Event).validate_python(event)


BASE = {"agent_id": "agent-1", "source_id": "src-1", "time": "2026-11-25T07:00:00Z"}


def test_violation_category_must_match_its_type_and_plate_comes_with_confidence() -> None:
    ok = _parse(BASE | {"kind": "violation", "violation_type": "red_light", "category": "violation", "track_id": 7})
    assert isinstance(ok, ViolationEvent)
    with pytest.raises(ValidationError, match="'possible_accident' is a\\(n\\) incident, not 'violation'"):
        _parse(
            BASE | {"kind": "violation", "violation_type": "possible_accident", "category": "violation", "track_id": 1}
        )
    with pytest.raises(ValidationError, match="plate and plate_confidence are both set or both null"):
        _parse(
            BASE
            | {
                "kind": "violation",
                "violation_type": "wrong_way",
                "category": "violation",
                "track_id": 1,
                "plate": "30A-123.45",
            }
        )


def test_plate_pass_progress_and_sensor_reading_validate_their_values() -> None:
    plate = _parse(BASE | {"kind": "plate_pass", "plate": "30A-123.45", "plate_confidence": 0.93, "track_id": 3})
    assert isinstance(plate, PlatePassEvent)
    with pytest.raises(ValidationError, match="should match pattern"):
        _parse(BASE | {"kind": "plate_pass", "plate": "30a 123", "plate_confidence": 0.9, "track_id": 3})
    progress = _parse(
        BASE | {"kind": "progress", "project_id": "p-1", "percent_complete": 42.5, "method": "manual", "confidence": 1}
    )
    assert isinstance(progress, ProgressEvent)
    assert progress.package_id is None
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        _parse(
            BASE
            | {"kind": "progress", "project_id": "p-1", "percent_complete": 101, "method": "manual", "confidence": 1}
        )
    reading = _parse(
        BASE | {"kind": "sensor_reading", "sensor_kind": "environment", "values": {"pm2_5": 35.5, "vn_aqi": 88}}
    )
    assert isinstance(reading, SensorReadingEvent)
    assert reading.values == {"pm2_5": 35.5, "vn_aqi": 88.0}
    with pytest.raises(ValidationError, match="a water_level station does not report 'pm2_5'"):
        _parse(BASE | {"kind": "sensor_reading", "sensor_kind": "water_level", "values": {"pm2_5": 1}})
    with pytest.raises(ValidationError, match="finite number"):
        _parse(
            BASE | {"kind": "sensor_reading", "sensor_kind": "water_level", "values": {"water_level_m": float("nan")}}
        )


def test_schema_1_3_adds_delivery_health_and_station_alert_levels() -> None:
    water = BASE | {"kind": "sensor_reading", "sensor_kind": "water_level", "values": {"water_level_m": 3.2}}
    reading = _parse(water | {"alert_levels_m": [3.0, 4.0, 5.0]})
    assert isinstance(reading, SensorReadingEvent)
    assert reading.alert_levels_m == (3.0, 4.0, 5.0)
    with pytest.raises(ValidationError, match="strictly ascending"):
        _parse(water | {"alert_levels_m": [3.0, 3.0, 5.0]})
    with pytest.raises(ValidationError, match=r"exist from schema 1\.3"):
        _parse(water | {"alert_levels_m": [3.0, 4.0, 5.0], "schema_version": "1.2"})
    with pytest.raises(ValidationError, match="water_level stations only"):
        _parse(
            BASE
            | {"kind": "sensor_reading", "sensor_kind": "environment", "values": {"pm10": 3}}
            | {"alert_levels_m": [1, 2, 3]}
        )
    delivery = {"spool_events": 12, "spool_bytes": 3400, "dropped_events": 5, "dropped_by_kind": {"count_interval": 5}}
    health = _parse(BASE | {"kind": "health", "state": "live", "delivery": delivery})
    assert isinstance(health, HealthEvent)
    assert health.delivery is not None
    assert health.delivery.dropped_by_kind == {"count_interval": 5}
    with pytest.raises(ValidationError, match=r"exist from schema 1\.3"):
        _parse(BASE | {"kind": "health", "state": "live", "delivery": delivery, "schema_version": "1.2"})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        _parse(BASE | {"kind": "health", "state": "live", "delivery": delivery | {"spool_events": -1}})
