"""Vietnamese plate formats: parsing, look-alike normalisation by position, validation with reasons."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.plates.vn_format import (
    PROVINCES,
    SERIES_LETTERS,
    UNUSED_CODES,
    PlateParse,
    compact_text,
    parse_plate,
    printed_form,
)
from event_contract.traffic import PLATE_PATTERN

VALID = [
    # raw OCR text, layout hint, printed form, kind
    ("30A-123.45", None, "30A-123.45", "car"),
    ("30A12345", None, "30A-123.45", "car"),
    ("30a-123.45", None, "30A-123.45", "car"),
    ("51F-678.90", "one_line", "51F-678.90", "car"),
    ("29C-1234", None, "29C-1234", "car"),
    ("43A 567.89", None, "43A-567.89", "car"),
    ("14K-001.23", None, "14K-001.23", "car"),
    ("99Z-999.99", None, "99Z-999.99", "car"),
    ("51R-012.34", None, "51R-012.34", "car"),  # semi-trailer
    ("51LD-123.45", None, "51LD-123.45", "special"),
    ("80NG12345", None, "80NG-123.45", "special"),
    ("36KT-0123", None, "36KT-0123", "special"),
    ("59-X1\n234.56", None, "59X1-234.56", "motorbike"),
    ("59X1-234.56", None, "59X1-234.56", "motorbike"),
    ("29-B1 2345", None, "29B1-2345", "motorbike"),
    ("59X1\n2345", "two_line", "59X1-2345", "motorbike"),
    ("29MĐ1-123.45", None, "29MD1-123.45", "motorbike"),
    ("29AA\n123.45", None, "29AA-123.45", "moped"),
    ("33H-456.78", None, "33H-456.78", "car"),  # former Hà Tây, now Hà Nội
    ("40A-111.22", None, "40A-111.22", "car"),
]


@pytest.mark.parametrize(("raw", "hint", "printed", "kind"), VALID)
def test_valid_plates_parse_to_their_printed_form(raw: str, hint: str | None, printed: str, kind: str) -> None:
    parse = parse_plate(raw, layout_hint=hint)  # type: ignore[arg-type]
    assert parse.valid, parse.reason
    assert parse.text == printed
    assert parse.vehicle_kind == kind
    assert parse.reason is None
    assert parse.corrections == 0
    assert re.fullmatch(PLATE_PATTERN, parse.text)
    assert parse.province == PROVINCES[printed[:2]]


CONFUSIONS = [
    # OCR text with look-alikes, printed form, how many characters were fixed
    ("3OA-123.45", "30A-123.45", 1),  # O where a digit must be
    ("59XA-234.56", "59X4-234.56", 1),  # A -> 4 where the motorbike series digit is
    ("30A-l23.45", "30A-123.45", 1),  # l -> 1
    ("3DA-I23.4S", "30A-123.45", 3),  # D -> 0, I -> 1, S -> 5
    ("51F-B8B.88", "51F-888.88", 2),  # B -> 8 in the number
    ("308-123.45", "30B-123.45", 1),  # 8 -> B where the series letter is
    ("300-123.45", "30D-123.45", 1),  # 0 -> D in the series
    ("S9X1-234.56", "59X1-234.56", 1),  # S -> 5 in the province code
    ("59XI-234.56", "59X1-234.56", 1),  # I -> 1 in the motorbike series digit
    ("6Z5-123.45", "62S-123.45", 2),  # Z -> 2 in the code, 5 -> S in the series
    ("30A-1Z3.4G", "30A-123.46", 2),
]


@pytest.mark.parametrize(("raw", "printed", "fixes"), CONFUSIONS)
def test_look_alikes_are_fixed_by_position(raw: str, printed: str, fixes: int) -> None:
    parse = parse_plate(raw)
    assert parse.valid, parse.reason
    assert parse.text == printed
    assert parse.corrections == fixes


INVALID = [
    ("13A-123.45", "province code 13 is retired"),
    ("42A-123.45", "province code 42 is retired"),
    ("00A-123.45", "province code 00 is unknown"),
    ("30W-123.45", "series letter 'W' is not issued"),
    ("30O-123.45", "series letter"),  # O is never a series letter (and 0 -> D would be a guess too far)
    ("59X0-234.56", "is not issued"),  # a motorbike's series digit is 1-9 (and XD is no moped series)
    ("59XK-234.56", "two-letter series 'XK' is not issued"),
    ("30A", "3 characters fit no plate format"),
    ("30A-123456789", "fit no plate format"),
    ("HELLO WORLD", "fit no plate format"),
    ("", "no letters or digits read"),
    ("---", "no letters or digits read"),
]


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_invalid_plates_say_why_and_keep_the_text(raw: str, reason: str) -> None:
    parse = parse_plate(raw)
    assert not parse.valid
    assert parse.reason is not None
    assert reason in parse.reason
    assert parse.text == compact_text(raw)  # nothing read is thrown away


def test_the_layout_hint_breaks_the_car_or_old_motorbike_tie() -> None:
    # 8 characters: a car with 5 digits or a motorbike with 4; the dash position says which.
    assert parse_plate("59X-123.45").text == "59X-123.45"
    assert parse_plate("59X1-2345").text == "59X1-2345"
    assert parse_plate("59X1\n2345").layout == "two_line"
    assert parse_plate("59X12345", layout_hint="one_line").text == "59X-123.45"
    assert parse_plate("59X12345", layout_hint="one_line").layout == "one_line"


def test_motorbikes_are_two_line_and_cars_follow_the_hint() -> None:
    assert parse_plate("59X1-234.56").layout == "two_line"
    assert parse_plate("30A-123.45").layout is None
    assert parse_plate("30A\n123.45").layout == "two_line"
    assert parse_plate("30A-123.45", layout_hint="one_line").layout == "one_line"


def test_parts_and_compact_form() -> None:
    parse = parse_plate("59-X1\n234.56")
    assert (parse.province_code, parse.series, parse.number) == ("59", "X1", "23456")
    assert parse.compact == "59X123456"
    assert isinstance(parse, PlateParse)


def test_printed_form_places_the_dot_only_in_five_digit_numbers() -> None:
    assert printed_form("30", "A", "12345") == "30A-123.45"
    assert printed_form("30", "A", "1234") == "30A-1234"
    assert printed_form("59", "X1", "23456") == "59X1-234.56"


def test_code_tables_do_not_overlap() -> None:
    assert not set(PROVINCES) & UNUSED_CODES
    assert all(len(code) == 2 and code.isdigit() for code in PROVINCES)
    assert not SERIES_LETTERS & set("IJOQW")


codes = st.sampled_from(sorted(PROVINCES))
letters = st.sampled_from(sorted(SERIES_LETTERS))
numbers = st.one_of(st.from_regex(r"\A[0-9]{5}\Z"), st.from_regex(r"\A[0-9]{4}\Z"))


@given(codes, letters, numbers)
def test_every_car_plate_round_trips(code: str, letter: str, number: str) -> None:
    printed = printed_form(code, letter, number)
    parse = parse_plate(printed, layout_hint="one_line")
    assert parse.valid
    assert parse.text == printed
    assert parse_plate(parse.compact, layout_hint="one_line").text == printed


@given(codes, letters, st.integers(1, 9), numbers)
def test_every_motorbike_plate_round_trips_from_two_lines(code: str, letter: str, digit: int, number: str) -> None:
    series = f"{letter}{digit}"
    bottom = f"{number[:3]}.{number[3:]}" if len(number) == 5 else number
    parse = parse_plate(f"{code}-{series}\n{bottom}")
    assert parse.valid
    assert parse.text == printed_form(code, series, number)


@given(st.text(max_size=30))
def test_any_text_parses_without_raising(raw: str) -> None:
    parse = parse_plate(raw)
    assert parse.valid == (parse.reason is None)
    if parse.valid:
        assert re.fullmatch(PLATE_PATTERN, parse.text)
