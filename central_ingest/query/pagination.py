"""Keyset pagination: an opaque cursor holding the sort key of the last row served.

Lists are newest first, ordered by ``(time, event_id)`` descending (sensor readings add the
metric: one event holds several). The next page is ``WHERE (time, event_id) < (cursor)``,
which an index on time answers without counting skipped rows, and which neither repeats nor
skips a row when new rows arrive between two pages (they sort before the first page).

The cursor is URL-safe base64 of a small JSON object. It is opaque to clients, carries no
secret and grants nothing: a forged cursor only moves the page start, so it is validated for
shape, not signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from central_ingest.query.params import QueryError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_CHARS = 512

RowT = TypeVar("RowT")


@dataclass(frozen=True)
class Cursor:
    """Sort key of the last row of a page."""

    time: dt.datetime
    event_id: uuid.UUID
    tiebreak: str | None = None
    """A third key where (time, event_id) is not unique (the metric of a sensor reading)."""


@dataclass(frozen=True)
class Page(Generic[RowT]):
    items: list[RowT]
    next_cursor: str | None


def encode_cursor(cursor: Cursor) -> str:
    body: dict[str, str] = {"t": cursor.time.isoformat(), "id": str(cursor.event_id)}
    if cursor.tiebreak is not None:
        body["k"] = cursor.tiebreak
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor of a ``next_cursor`` value; QueryError when it is not one."""
    invalid = QueryError("cursor is not valid: pass the next_cursor of a previous page unchanged")
    if not text or len(text) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = json.loads(raw)
        if not isinstance(body, dict) or not set(body) <= {"t", "id", "k"}:
            raise invalid
        time = dt.datetime.fromisoformat(body["t"])
        event_id = uuid.UUID(body["id"])
        tiebreak = body.get("k")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid from None
    if time.utcoffset() is None or (tiebreak is not None and not isinstance(tiebreak, str)):
        raise invalid
    return Cursor(time, event_id, tiebreak)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit {limit} must be 1..{MAX_LIMIT}")
    return limit


def page_of(rows: Sequence[RowT], limit: int, key: Callable[[RowT], Cursor]) -> Page[RowT]:
    """A page from ``limit + 1`` fetched rows: the extra row only tells that a next page exists."""
    if len(rows) <= limit:
        return Page(list(rows), None)
    kept = list(rows[:limit])
    return Page(kept, encode_cursor(key(kept[-1])))


def row_cursor(row: dict[str, Any], tiebreak_column: str | None = None) -> Cursor:
    """The cursor of a database row with ``time`` and ``event_id`` columns."""
    tiebreak = None if tiebreak_column is None else str(row[tiebreak_column])
    return Cursor(row["time"], row["event_id"], tiebreak)
