"""Partial-plate search tokens and witness patterns, and the ingest refusal of plates without a keyring."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central_ingest.ingest.validate import CheckedBatch, Refused
from central_ingest.plates.intake import NO_KEYRING_REASON, REDACTED, redact_plate, refuse_unsealable
from central_ingest.plates.keyring import new_keyring
from central_ingest.plates.partial import (
    PADDED_TOKENS,
    TOKEN_BITS,
    PatternError,
    PlatePattern,
    compact_plate,
    plate_tokens,
)
from central_ingest.plates.vault import PlateVault
from event_contract import HealthEvent, PlatePassEvent, ViolationEvent

INDEX_KEY = b"\x07" * 32
TIME = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
PLATES = st.from_regex(r"\A[0-9]{2}[A-Z][0-9]?-[0-9]{3}\.[0-9]{2}\Z")


@pytest.mark.parametrize(
    ("pattern", "plate", "matches"),
    [
        ("30A-1??.45", "30A-123.45", True),
        ("30A-1??.45", "30A-123.46", False),
        ("30A-1??.45", "30A-1234.5", True),  # separators are ignored: the compact forms match
        ("30A-1??.45", "30A1-123.45", False),
        ("*12345", "51F-123.45", True),
        ("*12345", "59X1-123.45", True),
        ("*12345", "51F-123.456", False),
        ("30a*", "30A-999.99", True),
        ("*A12*", "30A-123.45", True),
        ("59X?-2*", "59X1-234.56", True),
        ("59X?-2*", "59X-234.56", False),
    ],
)
def test_a_witness_pattern_matches_the_compact_plate(pattern: str, plate: str, matches: bool) -> None:
    assert PlatePattern.parse(pattern).matches(compact_plate(plate)) is matches


@pytest.mark.parametrize("pattern", ["30?-1??.45", "??A*", "*", "", "30A-12%", "1?2?3?4"])
def test_a_pattern_needs_three_known_characters_in_a_row_and_nothing_else(pattern: str) -> None:
    with pytest.raises(PatternError):
        PlatePattern.parse(pattern)


def test_stored_tokens_are_a_padded_sorted_set_of_truncated_values() -> None:
    short, long = plate_tokens(INDEX_KEY, "30A1234"), plate_tokens(INDEX_KEY, "59X123456")
    assert len(short) == len(long) == PADDED_TOKENS  # the count does not tell the length
    assert short == sorted(set(short))
    assert all(0 <= token < 1 << TOKEN_BITS for token in short + long)


@given(plate=PLATES, data=st.data())
def test_every_matching_plate_holds_every_token_of_its_patterns(plate: str, data: st.DataObject) -> None:
    compact = compact_plate(plate)
    start = data.draw(st.integers(0, len(compact) - 3))
    end = data.draw(st.integers(start + 3, len(compact)))
    masked = "".join("?" if data.draw(st.booleans()) and not start <= i < end else c for i, c in enumerate(compact))
    for pattern_text in (masked, "*" + compact[start:end] + "*"):
        pattern = PlatePattern.parse(pattern_text)
        assert pattern.matches(compact)
        assert set(pattern.tokens(INDEX_KEY)) <= set(plate_tokens(INDEX_KEY, compact))


def test_without_a_keyring_plate_events_are_refused_in_place_and_kept_without_the_plate() -> None:
    plate_pass = PlatePassEvent(
        agent_id="agent-1", source_id="cam-1", time=TIME, plate="30A-123.45", plate_confidence=0.9, track_id=1
    )
    violation = ViolationEvent(
        agent_id="agent-1",
        source_id="cam-1",
        time=TIME,
        violation_type="wrong_way",
        category="violation",
        track_id=2,
        plate="29B-555.55",
        plate_confidence=0.7,
    )
    plain = violation.model_copy(update={"plate": None, "plate_confidence": None})
    health = HealthEvent(agent_id="agent-1", source_id="cam-1", time=TIME, state="live")
    late = Refused(1, "x", "time: too old", json.dumps({"kind": "plate_pass", "plate": "88C-111.11"}).encode())
    checked = CheckedBatch("agent-1", 5, (plate_pass, health, violation, plain), (late,))
    result = refuse_unsealable(checked, None)
    assert result.events == (health, plain)
    assert [(r.position, r.reason) for r in result.refused] == [
        (0, NO_KEYRING_REASON),
        (1, "time: too old"),
        (3, NO_KEYRING_REASON),
    ]
    for refusal in result.refused:
        assert b"30A" not in refusal.raw
        assert b"29B" not in refusal.raw
        assert b"88C" not in refusal.raw
    assert json.loads(result.refused[1].raw)["plate"] == REDACTED
    with_vault = refuse_unsealable(checked, PlateVault.from_keyring(new_keyring()))
    assert with_vault.events == checked.events
    assert b"88C" not in with_vault.refused[0].raw


def test_redaction_leaves_plate_free_payloads_alone_and_drops_unreadable_ones() -> None:
    assert redact_plate(b'{"kind":"health"}') == b'{"kind":"health"}'
    assert b"30A" not in redact_plate(b'{"plate": "30A-123.45", broken')
    assert json.loads(redact_plate(b'{"plate": null}')) == {"plate": None}


def test_a_refused_batch_envelope_keeps_no_plate_in_clear() -> None:
    envelope = {
        "agent_id": "someone-else",
        "events": [{"kind": "plate_pass", "plate": "30A-123.45"}, {"kind": "health", "state": "live"}, 7],
    }
    kept = json.loads(redact_plate(json.dumps(envelope).encode()))
    assert "30A-123.45" not in json.dumps(kept)
    assert kept["events"][1] == {"kind": "health", "state": "live"}
    assert kept["agent_id"] == "someone-else"
    assert b"30A" not in redact_plate(b'{"events": 1, "plates": "30A-123.45"}')
    assert b"30A" not in redact_plate(b'not json "plate": 30A-123.45')
    assert redact_plate(b'{"events": []}') == b'{"events": []}'
