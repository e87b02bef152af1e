"""Batch validation: every error is reported with its field path; limits from the settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from central_ingest.ingest.batch import InvalidBatchError, field_path, parse_batch


def _interval(count: int = 1, **changes: Any) -> dict[str, Any]:
    event = {
        "kind": "count_interval",
        "agent_id": "agent-1",
        "source_id": "cam-1",
        "line_id": "line-1",
        "time": "2025-01-01T00:00:00Z",
        "interval_s": 60,
        "counts": [{"vehicle_class": "motorbike", "direction": "in", "count": count}],
    }
    return event | changes


def _body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"agent_id": "agent-1", "events": events}).encode()


def _errors(data: bytes, max_events: int = 100) -> list[str]:
    with pytest.raises(InvalidBatchError) as caught:
        parse_batch(data, max_events)
    return [str(e) for e in caught.value.errors]


def test_valid_batch_parses() -> None:
    batch = parse_batch(_body([_interval(), _interval()]), 100)
    assert len(batch.events) == 2


def test_error_in_the_last_event_names_its_path() -> None:
    events = [_interval() for _ in range(9)] + [_interval(count=-1)]
    assert _errors(_body(events)) == ["events.9.counts.0.count: Input should be greater than or equal to 0"]


def test_every_error_is_listed_without_union_tags() -> None:
    health = {"kind": "health", "agent_id": "agent-1", "source_id": "cam-1", "time": "2025-01-01T00:00:00Z"}
    errors = _errors(_body([_interval(interval_s=0), health]))
    assert errors[0] == "events.0.interval_s: Input should be greater than 0"
    assert errors[1] == "events.1.state: Field required"
    assert len(errors) == 2


def test_unknown_kind_and_bad_json_are_reported() -> None:
    assert _errors(_body([{"kind": "teleport", "agent_id": "agent-1"}]))[0].startswith("events.0: Input tag 'teleport'")
    assert _errors(b"{not json")[0].startswith("(batch): Invalid JSON")


def test_server_limit_on_events_per_batch() -> None:
    assert _errors(_body([_interval()] * 3), max_events=2) == ["events: at most 2 events per batch on this server"]


def test_field_path_keeps_real_fields_named_like_tags() -> None:
    assert field_path(("events", 3, "count_interval", "counts", 0, "count")) == "events.3.counts.0.count"
    assert field_path(("agent_id",)) == "agent_id"
    assert field_path(()) == "(batch)"


def test_zone_event_errors_name_their_path_and_version_1_0_still_parses() -> None:
    quality = {
        "expected_s": 60,
        "analysed_s": 30,
        "frames_analysed": 150,
        "frames_dropped": 0,
        "downtime_s": 30,
        "detector_backend": "yolo",
        "coverage": 0.5,
    }
    zone = {
        "kind": "zone_interval",
        "agent_id": "agent-1",
        "source_id": "cam-1",
        "zone_id": "stop",
        "time": "2025-01-01T00:00:00Z",
        "interval_s": 60,
        "entries": 1,
        "exits": 0,
        "occupancy_mean": 0.5,
        "occupancy_max": 1,
        "dwell_mean_s": None,
        "dwell_max_s": None,
        "dwell_p95_s": None,
        "dwell_longest_inside_s": 12.0,
        "quality": quality | {"coverage": 0.9},
    }
    assert _errors(_body([zone])) == ["events.0.quality: Value error, coverage 0.9 is not analysed_s / expected_s"]
    old = json.dumps({"schema_version": "1.0", "agent_id": "agent-1", "events": [_interval(schema_version="1.0")]})
    (event,) = parse_batch(old.encode(), 100).events
    assert (event.schema_version, getattr(event, "quality", "missing")) == ("1.0", None)
