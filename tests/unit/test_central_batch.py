"""Batch checking: a bad envelope refuses the batch with field paths; a bad event refuses only itself."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from central_ingest.ingest.batch import InvalidBatchError, field_path
from central_ingest.ingest.validate import CheckedBatch, ClockPolicy, check_batch
from central_ingest.settings import RetentionSettings

NOW = dt.datetime(2025, 1, 1, 0, 5, tzinfo=dt.UTC)
CLOCK = ClockPolicy(max_future=dt.timedelta(minutes=10), retention=RetentionSettings())


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


def _body(events: list[dict[str, Any]], **envelope: Any) -> bytes:
    return json.dumps({"agent_id": "agent-1", "events": events} | envelope).encode()


def _check(data: bytes, max_events: int = 100, clock: ClockPolicy = CLOCK) -> CheckedBatch:
    return check_batch(data, max_events=max_events, clock=clock, now=NOW)


def _envelope_errors(data: bytes, max_events: int = 100) -> list[str]:
    with pytest.raises(InvalidBatchError) as caught:
        _check(data, max_events)
    return [str(e) for e in caught.value.errors]


def _reasons(data: bytes) -> list[tuple[int, str]]:
    return [(r.position, r.reason) for r in _check(data).refused]


def test_valid_batch_keeps_every_event() -> None:
    checked = _check(_body([_interval(), _interval()]))
    assert (checked.agent_id, checked.received, len(checked.events), checked.refused) == ("agent-1", 2, 2, ())


def test_bad_last_event_is_refused_alone_with_its_path_and_raw_json() -> None:
    events = [_interval() for _ in range(9)] + [_interval(count=-1, event_id="0190f5c4-0000-7000-8000-000000000009")]
    checked = _check(_body(events))
    assert len(checked.events) == 9
    (refused,) = checked.refused
    assert (refused.position, refused.event_id) == (9, "0190f5c4-0000-7000-8000-000000000009")
    assert refused.reason == "counts.0.count: Input should be greater than or equal to 0"
    assert json.loads(refused.raw) == events[9]


def test_every_bad_event_gets_its_own_reason_without_union_tags() -> None:
    health = {"kind": "health", "agent_id": "agent-1", "source_id": "cam-1", "time": "2025-01-01T00:00:00Z"}
    teleport = {"kind": "teleport", "agent_id": "agent-1"}
    assert _reasons(_body([_interval(interval_s=0), health, teleport, _interval()])) == [
        (0, "interval_s: Input should be greater than 0"),
        (1, "state: Field required"),
        (
            2,
            "(event): Input tag 'teleport' found using 'kind' does not match any of the expected tags: "
            "'count_interval', 'zone_interval', 'health', 'violation', 'plate_pass', 'progress', 'sensor_reading', "
            "'congestion', 'site_activity'",
        ),
    ]


def test_event_of_another_agent_is_refused() -> None:
    assert _reasons(_body([_interval(agent_id="agent-2"), _interval()])) == [
        (0, "agent_id: 'agent-2' is not the batch's agent 'agent-1'")
    ]


def test_clock_sanity_refuses_future_and_expired_events_with_reasons() -> None:
    future = _interval(time="2025-01-01T00:15:01Z")
    ok_future = _interval(time="2025-01-01T00:15:00Z")
    expired = _interval(time="2024-10-01T00:00:00Z")  # counts are kept 90 days
    reasons = _reasons(_body([future, ok_future, expired]))
    assert reasons == [
        (
            0,
            "time: 2025-01-01T00:15:01+00:00 is 601 s ahead of central's clock (at most 600 s allowed); "
            "check the agent's NTP",
        ),
        (2, "time: 2024-10-01T00:00:00+00:00 is older than the count_interval retention of 90 days"),
    ]


def test_clock_sanity_also_applies_on_the_fast_path() -> None:
    strict = ClockPolicy(max_future=dt.timedelta(0), retention=RetentionSettings())
    checked = _check(_body([_interval(time="2025-01-01T00:05:01Z"), _interval()]), clock=strict)
    assert [r.position for r in checked.refused] == [0]
    assert len(checked.events) == 1


def test_bad_envelope_refuses_the_batch() -> None:
    assert _envelope_errors(b"{not json")[0].startswith("(batch): Invalid JSON")
    assert _envelope_errors(_body([])) == ["events: List should have at least 1 item after validation, not 0"]
    assert _envelope_errors(json.dumps({"events": [_interval()]}).encode()) == ["agent_id: Field required"]


def test_server_limit_on_events_per_batch() -> None:
    assert _envelope_errors(_body([_interval()] * 3), max_events=2) == [
        "events: at most 2 events per batch on this server, got 3"
    ]
    assert _envelope_errors(_body([_interval()] * 2 + [{}]), max_events=2) == [
        "events: at most 2 events per batch on this server, got 3"
    ]


def test_field_path_keeps_real_fields_named_like_tags() -> None:
    assert field_path(("events", 3, "count_interval", "counts", 0, "count")) == "events.3.counts.0.count"
    assert field_path(("events", 3, "sensor_reading", "values")) == "events.3.values"
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
    assert _reasons(_body([zone])) == [(0, "quality: Value error, coverage 0.9 is not analysed_s / expected_s")]
    old = _body([_interval(schema_version="1.0")], schema_version="1.0")
    (event,) = _check(old).events
    assert (event.schema_version, getattr(event, "quality", "missing")) == ("1.0", None)


def test_new_kinds_under_an_old_schema_version_and_impossible_sensor_values_are_refused() -> None:
    sensor = {
        "kind": "sensor_reading",
        "agent_id": "agent-1",
        "source_id": "wl-1",
        "time": "2025-01-01T00:00:00Z",
        "sensor_kind": "water_level",
        "values": {"water_level_m": -500},
    }
    old = sensor | {"schema_version": "1.1", "values": {"water_level_m": 2.0}}
    assert _reasons(_body([sensor, old])) == [
        (0, "(event): Value error, water_level_m = -500.0 m is outside the possible range -100.0..1000.0"),
        (1, "(event): Value error, sensor_reading events exist from schema 1.2 on"),
    ]
