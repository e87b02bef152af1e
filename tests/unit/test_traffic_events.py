"""Event builders: findings, voted plates and congestion reports become contract 1.4 events, field by field."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_agent.plates.vote import VotedPlate
from edge_agent.traffic.events import congestion_event, plate_fits, plate_pass_event, vehicle_class_of, violation_event
from edge_agent.violations.findings import CongestionReport, Finding
from event_contract.evidence import EvidenceRef

T = dt.datetime(2025, 6, 1, 8, 0, 5, tzinfo=dt.UTC)
SHA = "a" * 64


def finding(**changes: object) -> Finding:
    values: dict[str, object] = {
        "rule_id": "red-north",
        "violation_type": "red_light",
        "category": "violation",
        "track_id": 7,
        "vehicle_class": "car",
        "time": T,
        "started_at": T - dt.timedelta(seconds=1),
        "line_id": None,
        "zone_id": None,
        "signal_state": "red",
        "duration_s": None,
        "related_track_ids": (),
        "box_xyxy": (10.0, 20.0, 60.0, 70.0),
    }
    values.update(changes)
    return Finding(**values)  # type: ignore[arg-type]


def plate(text: str = "30A-123.45", **changes: object) -> VotedPlate:
    values: dict[str, object] = {
        "text": text,
        "confidence": 0.93,
        "layout": "one_line",
        "format_valid": True,
        "plate_colour": "white",
        "reads": 4,
    }
    values.update(changes)
    return VotedPlate(**values)  # type: ignore[arg-type]


def test_a_finding_with_its_plate_and_evidence_becomes_a_violation_event() -> None:
    ref = EvidenceRef(kind="keyframe", uri=f"evidence/{SHA}.jpg", sha256=SHA, time=T)
    event = violation_event("agent-1", "cam-j12", finding(), plate=plate(), evidence=(ref,))
    assert (event.violation_type, event.category, event.rule_id, event.signal_state) == (
        "red_light",
        "violation",
        "red-north",
        "red",
    )
    assert (event.plate, event.plate_confidence, event.plate_colour) == ("30A-123.45", 0.93, "white")
    assert (event.track_id, event.vehicle_class, event.time, event.started_at) == (
        7,
        "car",
        T,
        T - dt.timedelta(seconds=1),
    )
    assert event.evidence == (ref,)
    assert event.schema_version == "1.5"


def test_a_violation_without_a_plate_or_with_an_unfit_one_is_still_sent_without_it() -> None:
    for voted in (None, plate("30A 123 45 ??")):
        event = violation_event("agent-1", "cam-j12", finding(), plate=voted)
        assert (event.plate, event.plate_confidence, event.plate_colour) == (None, None, None)
    assert not plate_fits(plate("30a_12345"))
    assert plate_fits(plate("59X1-234.56"))


def test_an_incident_keeps_its_related_tracks_and_a_class_outside_the_taxonomy_becomes_none() -> None:
    event = violation_event(
        "agent-1",
        "cam-j12",
        finding(
            violation_type="possible_accident",
            category="incident",
            vehicle_class="person",
            related_track_ids=tuple(range(3, 15)),
            duration_s=12.5,
            signal_state=None,
        ),
    )
    assert event.category == "incident"
    assert event.vehicle_class is None
    assert event.related_track_ids == tuple(range(3, 11)), "at most MAX_RELATED_TRACKS related tracks"
    assert vehicle_class_of("motorbike") == "motorbike"


def test_a_voted_plate_becomes_a_plate_pass_with_layout_format_and_reads() -> None:
    event = plate_pass_event(
        "agent-1",
        "cam-j12",
        time=T,
        track_id=3,
        plate=plate("59X1-234.56", layout="two_line", reads=6, confidence=1.2),
        vehicle_class="motorbike",
        direction="in",
        line_id="pass",
    )
    assert event is not None
    assert (event.plate, event.plate_layout, event.format_valid, event.reads) == ("59X1-234.56", "two_line", True, 6)
    assert (event.direction, event.line_id, event.vehicle_class, event.plate_confidence) == (
        "in",
        "pass",
        "motorbike",
        1.0,
    )


def test_a_plate_pass_whose_text_is_not_a_plate_is_not_built() -> None:
    args = {"time": T, "track_id": 3, "vehicle_class": "car", "direction": None, "line_id": None}
    assert plate_pass_event("agent-1", "cam-j12", plate=plate("?"), **args) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("speed", [None, 0.4, 25.0])
def test_a_congestion_report_becomes_a_congestion_event(speed: float | None) -> None:
    report = CongestionReport(
        zone_id="approach-north",
        time=T,
        level="heavy",
        previous_level="moderate",
        window_s=60.0,
        vehicles=14,
        queue_length_ratio=0.7,
        occupancy=1.0000001,
        speed_ratio=speed,
    )
    event = congestion_event("agent-1", "cam-j12", report)
    assert (event.zone_id, event.level, event.previous_level, event.vehicles) == (
        "approach-north",
        "heavy",
        "moderate",
        14,
    )
    assert event.occupancy == 1.0
    assert event.speed_ratio == (None if speed is None else min(speed, 10.0))
