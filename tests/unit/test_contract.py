"""The event contract: validation rules, ids, and the exported schema file."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from pydantic import ValidationError

from event_contract import CountBucket, CountIntervalEvent, EventBatch, HealthEvent, new_event_id
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


def test_schema_file_describes_both_event_kinds() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert {"CountIntervalEvent", "HealthEvent"} <= set(schema["$defs"])


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
