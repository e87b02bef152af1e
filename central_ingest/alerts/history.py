"""Read side of the alerts for the API: filtered keyset pages, one alert with its transitions, rule states.

Pages are newest first on (opened_at, alert_id); the cursor is that pair of the last item, in the
opaque form of ``query.pagination`` (its time and id), so a page is stable while new alerts arrive
(they sort before it).

Area scope: ``list_alerts`` takes ``visible``, the subject keys the caller may see
(``alerts.scope.visible_subjects``; None: all), and leaves the others out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from central_ingest.alerts.scope import subject_condition
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
    severity: str | None = None


async def list_alerts(
    conn: Conn, filters: AlertFilters, limit: int, cursor: str | None, visible: frozenset[str] | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of alerts newest first (of ``visible`` subjects when given), and the next page's cursor (None on
    the last one)."""
    after = decode_cursor(cursor) if cursor else None
    after_at, after_id = (after.time, after.event_id) if after else (None, None)
    scope_sql, scope_params = subject_condition(visible)
    cur = conn.cursor(row_factory=dict_row)
    statement = sql.SQL(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {{scope}} AND "
        "(%(status)s::text IS NULL OR status = %(status)s) "
        "AND (%(rule_kind)s::text IS NULL OR rule_kind = %(rule_kind)s) "
        "AND (%(rule_id)s::text IS NULL OR rule_id = %(rule_id)s) "
        "AND (%(subject)s::text IS NULL OR subject = %(subject)s) "
        "AND (%(severity)s::text IS NULL OR severity = %(severity)s) "
        "AND (%(since)s::timestamptz IS NULL OR opened_at >= %(since)s) "
        "AND (%(until)s::timestamptz IS NULL OR opened_at < %(until)s) "
        "AND (%(after_at)s::timestamptz IS NULL OR (opened_at, alert_id) < (%(after_at)s, %(after_id)s::uuid)) "
        "ORDER BY opened_at DESC, alert_id DESC LIMIT %(limit)s"
    ).format(scope=scope_sql)
    await cur.execute(
        statement, {**filters.__dict__, "after_at": after_at, "after_id": after_id, "limit": limit + 1, **scope_params}
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
