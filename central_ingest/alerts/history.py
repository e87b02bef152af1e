"""Read side of the alerts for the API: filtered keyset pages, one alert with its transitions, rule states.

Pages are newest first on (opened_at, alert_id); the cursor is that pair of the last item, in the
opaque form of ``query.pagination`` (its time and id), so a page is stable while new alerts arrive
(they sort before it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from central_ingest.query.export import row_as_json
from central_ingest.query.pagination import Cursor, decode_cursor, encode_cursor

Conn = psycopg.AsyncConnection[Any]
ALERT_COLUMNS = (
    "alert_id, opened_at, rule_id, rule_kind, subject, status, severity, level, message_vi, message_en, value, "
    'baseline, threshold, "window", evidence, changed_at, acknowledged_at, acknowledged_by, acknowledge_comment, '
    "resolved_at, resolved_by, resolve_comment, resolution"
)


@dataclass(frozen=True)
class AlertFilters:
    status: str | None = None
    rule_kind: str | None = None
    rule_id: str | None = None
    subject: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


async def list_alerts(
    conn: Conn, filters: AlertFilters, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of alerts newest first, and the cursor of the next page (None on the last one)."""
    after = decode_cursor(cursor) if cursor else None
    after_at, after_id = (after.time, after.event_id) if after else (None, None)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE "
        "(%(status)s::text IS NULL OR status = %(status)s) "
        "AND (%(rule_kind)s::text IS NULL OR rule_kind = %(rule_kind)s) "
        "AND (%(rule_id)s::text IS NULL OR rule_id = %(rule_id)s) "
        "AND (%(subject)s::text IS NULL OR subject = %(subject)s) "
        "AND (%(since)s::timestamptz IS NULL OR opened_at >= %(since)s) "
        "AND (%(until)s::timestamptz IS NULL OR opened_at < %(until)s) "
        "AND (%(after_at)s::timestamptz IS NULL OR (opened_at, alert_id) < (%(after_at)s, %(after_id)s::uuid)) "
        "ORDER BY opened_at DESC, alert_id DESC LIMIT %(limit)s",
        {**filters.__dict__, "after_at": after_at, "after_id": after_id, "limit": limit + 1},
    )
    rows = await cur.fetchall()
    next_cursor = (
        encode_cursor(Cursor(rows[limit - 1]["opened_at"], rows[limit - 1]["alert_id"])) if len(rows) > limit else None
    )
    return [row_as_json(row) for row in rows[:limit]], next_cursor


async def get_alert(conn: Conn, alert_id: UUID) -> dict[str, Any] | None:
    """The alert and its transitions, oldest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = %s", (alert_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    await cur.execute(
        "SELECT at, transition, status, level, severity, value, by_whom AS by, comment, message_vi, message_en "
        "FROM alert_transitions WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    )
    return {**row_as_json(row), "transitions": [row_as_json(t) for t in await cur.fetchall()]}


async def subject_states(conn: Conn) -> dict[str, list[dict[str, Any]]]:
    """rule_id -> every subject's last evaluation (status, detail, open alert), by subject."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT rule_id, subject, status, detail, pending_since, evaluated_at, alert_id, level, severity, latched "
        "FROM alert_state ORDER BY rule_id, subject"
    )
    states: dict[str, list[dict[str, Any]]] = {}
    for row in await cur.fetchall():
        states.setdefault(row.pop("rule_id"), []).append(row_as_json(row))
    return states
