"""Keyset cursors and pages: pure, no database."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from central_ingest.query.pagination import (
    MAX_LIMIT,
    Cursor,
    check_limit,
    decode_cursor,
    encode_cursor,
    page_of,
)
from central_ingest.query.params import QueryError

T = dt.datetime(2025, 5, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize("tiebreak", [None, "water_level_m"])
def test_cursor_round_trips(tiebreak: str | None) -> None:
    cursor = Cursor(T, ID, tiebreak)

    text = encode_cursor(cursor)

    assert decode_cursor(text) == cursor
    assert "=" not in text  # safe in a query string without escaping


def test_cursor_keeps_the_offset_of_its_time() -> None:
    local = T.astimezone(dt.timezone(dt.timedelta(hours=7)))

    assert decode_cursor(encode_cursor(Cursor(local, ID))).time == T


def _raw(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        "x" * 600,
        _raw([1, 2]),
        _raw({"t": T.isoformat()}),
        _raw({"t": "yesterday", "id": str(ID)}),
        _raw({"t": T.isoformat(), "id": "not-a-uuid"}),
        _raw({"t": "2025-05-01T08:00:00", "id": str(ID)}),  # no zone
        _raw({"t": T.isoformat(), "id": str(ID), "k": 5}),
        _raw({"t": T.isoformat(), "id": str(ID), "extra": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_bad_cursors_are_refused_with_a_clear_message(text: str) -> None:
    with pytest.raises(QueryError, match="cursor is not valid"):
        decode_cursor(text)


def test_limit_bounds() -> None:
    assert check_limit(1) == 1
    assert check_limit(MAX_LIMIT) == MAX_LIMIT
    for bad in (0, MAX_LIMIT + 1):
        with pytest.raises(QueryError, match="limit"):
            check_limit(bad)


def _rows(n: int) -> list[dict[str, object]]:
    return [{"time": T - dt.timedelta(seconds=i), "event_id": uuid.UUID(int=i)} for i in range(n)]


def _key(row: dict[str, object]) -> Cursor:
    time, event_id = row["time"], row["event_id"]
    assert isinstance(time, dt.datetime)
    assert isinstance(event_id, uuid.UUID)
    return Cursor(time, event_id)


def test_a_full_page_with_one_more_row_has_a_cursor_at_its_last_row() -> None:
    rows = _rows(4)

    page = page_of(rows, 3, _key)

    assert page.items == rows[:3]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor) == Cursor(T - dt.timedelta(seconds=2), uuid.UUID(int=2))


@pytest.mark.parametrize("n", [0, 2, 3])
def test_the_last_page_has_no_cursor(n: int) -> None:
    page = page_of(_rows(n), 3, _key)

    assert len(page.items) == n
    assert page.next_cursor is None
