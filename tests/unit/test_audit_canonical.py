"""The audit hash's canonical form (RFC 8785 JCS) and the chain check, on values alone."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central_ingest.audit.canonical import (
    GENESIS_HASH,
    CanonicalFormError,
    canonical_json,
    format_time,
    hash_fields,
)
from central_ingest.audit.entry import AuditEntry, AuditEntryError, AuditRecord
from central_ingest.audit.verify import ChainVerifier, verify_records

T0 = dt.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def test_rfc8785_sample_object() -> None:
    # RFC 8785 section 3.2.2: the sample input and its canonical output.
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(text)) == expected


def test_rfc8785_key_order_is_by_utf16_code_units() -> None:
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonical_json({key: i for i, key in enumerate(keys)})
    order = [key for key, _ in json.loads(text, object_pairs_hook=list)]
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB33 in UTF-16 (not in code points).
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (123456789.125, "123456789.125"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2**53 - 1, "9007199254740991"),
        (10**20, "100000000000000000000"),
        (2**53 + 1, "9007199254740992"),
    ],
)
def test_numbers_are_written_as_ecmascript_does(value: float, text: str) -> None:
    assert canonical_json(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, {1: "x"}, b"bytes", "\ud800"])
def test_values_without_a_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalFormError):
        canonical_json(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_text_survives_a_json_round_trip(value: Any) -> None:
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


def test_jsonb_reprinting_does_not_change_the_hash() -> None:
    # jsonb gives 1e20 back as an integer and 2.50 as 2.5: same canonical text, same hash.
    assert canonical_json({"a": 1e20, "b": 2.50}) == canonical_json({"b": 2.5, "a": 100000000000000000000})


def test_time_has_one_form() -> None:
    later = dt.datetime(2025, 6, 1, 19, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    assert format_time(T0) == format_time(later) == "2025-06-01T12:00:00.123456Z"
    assert format_time(T0.replace(microsecond=0)) == "2025-06-01T12:00:00.000000Z"
    with pytest.raises(CanonicalFormError):
        format_time(dt.datetime(2025, 6, 1))  # noqa: DTZ001 - the naive value under test


def make_chain(count: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        fields: dict[str, Any] = {
            "seq": seq,
            "time": T0 + dt.timedelta(seconds=seq),
            "actor": f"officer.{seq % 3}",
            "role": "police",
            "action": "plate_search",
            "target": {"plate": "30A-123.45", "limit": 500, "score": 0.5 * seq},
            "reason": "123/2025/QĐ-CA",
            "result_count": seq,
            "client": "10.0.0.1",
            "prev_hash": prev,
        }
        digest = hash_fields({**fields, "time": format_time(fields["time"])})
        records.append(AuditRecord(hash_hex=digest, **fields))
        prev = digest
    return records


def test_hash_covers_every_field_and_the_previous_hash() -> None:
    record = make_chain(1)[0]
    assert record.computed_hash() == record.hash_hex
    for change in (
        {"actor": "someone.else"},
        {"role": "auditor"},
        {"action": "evidence_view"},
        {"target": {"plate": "30A-123.46", "limit": 500, "score": 0.5}},
        {"reason": None},
        {"result_count": 0},
        {"client": None},
        {"time": T0},
        {"seq": 2},
        {"prev_hash": "1" * 64},
    ):
        assert dataclasses.replace(record, **change).computed_hash() != record.hash_hex, change


def test_an_intact_chain_verifies_and_export_lines_read_back() -> None:
    chain = make_chain(6)
    lines = [AuditRecord.from_json(json.loads(json.dumps(r.as_json()))) for r in chain]
    report = verify_records(lines, head=(6, chain[-1].hash_hex))
    assert (report.ok, report.checked, report.first_seq, report.last_seq) == (True, 6, 1, 6)
    # A later slice verifies on its own too (it trusts its first prev_hash).
    assert verify_records(chain[3:]).ok


@pytest.mark.parametrize(
    ("tamper", "broken_seq"),
    [
        (lambda c: c.__setitem__(2, dataclasses.replace(c[2], result_count=0)), 3),
        (lambda c: c.pop(3), 4),
        (lambda c: c.__setitem__(1, c[1]) or c.insert(2, c.pop(4)), 3),
        (lambda c: c.__setitem__(0, dataclasses.replace(c[0], prev_hash="f" * 64)), 1),
    ],
    ids=["altered", "deleted", "reordered", "first-link"],
)
def test_tampering_names_the_first_broken_seq(tamper: Any, broken_seq: int) -> None:
    chain = make_chain(6)
    tamper(chain)
    report = verify_records(chain)
    assert not report.ok
    assert report.broken_seq == broken_seq


def test_a_rehashed_entry_breaks_the_next_link() -> None:
    chain = make_chain(5)
    changed = dataclasses.replace(chain[1], reason="không có lý do")
    chain[1] = dataclasses.replace(changed, hash_hex=changed.computed_hash())
    report = verify_records(chain)
    assert (report.ok, report.broken_seq) == (False, 3)
    assert "prev_hash" in (report.problem or "")


def test_a_cut_tail_shows_only_against_the_head() -> None:
    chain = make_chain(5)
    assert verify_records(chain[:3]).ok
    report = verify_records(chain[:3], head=(5, chain[-1].hash_hex))
    assert (report.ok, report.broken_seq) == (False, 4)
    verifier = ChainVerifier()
    for record in chain:
        verifier.feed(record)
    verifier.check_head(5, "0" * 64)
    assert verifier.report().broken_seq == 5


def test_entries_are_checked_before_they_are_written() -> None:
    good = AuditEntry("officer.an", "police", "plate_search", {"plate": "30A-123.45"}, "123/2025", 3)
    good.check()
    for bad in (
        dataclasses.replace(good, actor=""),
        dataclasses.replace(good, action="Plate Search"),
        dataclasses.replace(good, target={"x": float("nan")}),
        dataclasses.replace(good, target={"blob": "x" * 70_000}),
        dataclasses.replace(good, result_count=-1),
        dataclasses.replace(good, reason="a\x00b"),
    ):
        with pytest.raises(AuditEntryError):
            bad.check()
