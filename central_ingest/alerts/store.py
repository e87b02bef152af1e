"""The alert lifecycle in the database: ``alert_state`` (one row per rule and subject), ``alerts``, transitions.

Deduplication: every change of a subject's alerts happens in a transaction that first locks its
``alert_state`` row (``lock_state``: insert-if-missing, then ``SELECT ... FOR UPDATE``). Two
evaluators, or an evaluator and an operator, therefore take turns on a subject, and the second
one sees the first one's alert: there is never more than one open or acknowledged alert per rule
and subject. Every function here runs inside the caller's transaction and returns the
``AlertNotice`` to publish once it has committed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from central_ingest.alerts.lifecycle import Finding, OpenAlert, ResolveReason, as_float
from central_ingest.alerts.messages import with_prefix
from central_ingest.alerts.notice import AlertNotice, Severity, Transition

Conn = psycopg.AsyncConnection[Any]


class AlertNotFoundError(LookupError):
    """No alert has this id."""


class TransitionNotAllowedError(ValueError):
    """The alert's status does not allow this transition (e.g. resolving a resolved alert)."""


@dataclass(frozen=True)
class SubjectState:
    """A locked ``alert_state`` row."""

    rule_id: str
    subject: str
    open_alert: OpenAlert | None
    latched: bool
    latched_episode: str | None


async def lock_state(conn: Conn, rule_id: str, subject: str) -> SubjectState:
    """Create the subject's state row if new, and lock it until the transaction ends."""
    await conn.execute(
        "INSERT INTO alert_state (rule_id, subject) VALUES (%s, %s) ON CONFLICT DO NOTHING", (rule_id, subject)
    )
    cur = await conn.execute(
        "SELECT alert_id, opened_at, level, level_rank, severity, episode, latched, latched_episode "
        "FROM alert_state WHERE rule_id = %s AND subject = %s FOR UPDATE",
        (rule_id, subject),
    )
    row = await cur.fetchone()
    assert row is not None  # inserted above, and state rows are never deleted
    alert_id, opened_at, level, rank, severity, episode, latched, latched_episode = row
    open_alert = None if alert_id is None else OpenAlert(alert_id, opened_at, level, rank, severity, episode)
    return SubjectState(rule_id, subject, open_alert, latched, latched_episode)


async def record_evaluation(
    conn: Conn, state: SubjectState, finding: Finding, *, latched: bool, now: dt.datetime, detail: dict[str, Any]
) -> None:
    """The last evaluation's status, shown by ``GET /api/v1/alerts/rules``."""
    await conn.execute(
        "UPDATE alert_state SET status = %s, detail = %s, pending_since = %s, evaluated_at = %s, latched = %s, "
        "latched_episode = CASE WHEN %s THEN latched_episode ELSE NULL END WHERE rule_id = %s AND subject = %s",
        (finding.status, Jsonb(detail), finding.pending_since, now, latched, latched, state.rule_id, state.subject),
    )


async def open_alert(
    conn: Conn,
    state: SubjectState,
    rule_kind: str,
    finding: Finding,
    *,
    messages: tuple[str, str],
    now: dt.datetime,
) -> AlertNotice:
    alert_id = uuid4()
    await conn.execute(
        "INSERT INTO alerts (alert_id, opened_at, rule_id, rule_kind, subject, status, severity, level, message_vi, "
        'message_en, value, baseline, threshold, "window", episode, evidence, changed_at) '
        "VALUES (%s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            alert_id, now, state.rule_id, rule_kind, state.subject, finding.severity, finding.level, *messages,
            as_float(finding.value), as_float(finding.baseline), as_float(finding.threshold), finding.window,
            finding.episode, Jsonb(list(finding.evidence)), now,
        ),
    )  # fmt: skip
    await _point_state_at(conn, state, alert_id, now, finding)
    return await _transition(conn, alert_id, now, "opened", now)


async def change_alert(
    conn: Conn, state: SubjectState, transition: Transition, finding: Finding, *, messages: tuple[str, str] | None,
    now: dt.datetime,
) -> AlertNotice | None:  # fmt: skip
    """Escalate/update (new level and messages; an escalation puts the status back to open: a worse level needs
    attention again),
    or refresh the numbers silently (``messages`` None: no transition, nothing to publish)."""
    current = state.open_alert
    assert current is not None
    numbers = (as_float(finding.value), as_float(finding.baseline), as_float(finding.threshold), finding.window)
    if messages is None:
        await conn.execute(
            'UPDATE alerts SET value = %s, baseline = %s, threshold = %s, "window" = %s '
            "WHERE alert_id = %s AND opened_at = %s",
            (*numbers, current.alert_id, current.opened_at),
        )
        return None
    await conn.execute(
        "UPDATE alerts SET status = CASE WHEN %s THEN 'open' ELSE status END, severity = %s, level = %s, "
        "message_vi = %s, message_en = %s, value = %s, "
        'baseline = %s, threshold = %s, "window" = %s, evidence = %s, changed_at = %s '
        "WHERE alert_id = %s AND opened_at = %s",
        (
            transition == "escalated", finding.severity, finding.level, *messages, *numbers,
            Jsonb(list(finding.evidence)), now,
            current.alert_id, current.opened_at,
        ),
    )  # fmt: skip
    await _point_state_at(conn, state, current.alert_id, current.opened_at, finding)
    return await _transition(conn, current.alert_id, current.opened_at, transition, now)


async def resolve_open_alert(
    conn: Conn, state: SubjectState, reason: ResolveReason, now: dt.datetime, *, by: str | None = None,
    comment: str | None = None,
) -> AlertNotice:  # fmt: skip
    current = state.open_alert
    assert current is not None
    await conn.execute(
        "UPDATE alerts SET status = 'resolved', resolved_at = %s, resolved_by = %s, resolve_comment = %s, "
        "resolution = %s, changed_at = %s WHERE alert_id = %s AND opened_at = %s",
        (now, by, comment, reason, now, current.alert_id, current.opened_at),
    )
    # An operator resolving a condition that still holds latches the subject (see lifecycle.decide).
    await conn.execute(
        "UPDATE alert_state SET alert_id = NULL, opened_at = NULL, level = NULL, level_rank = 0, severity = NULL, "
        "latched = %s, latched_episode = %s WHERE rule_id = %s AND subject = %s",
        (reason == "operator", current.episode if reason == "operator" else None, state.rule_id, state.subject),
    )
    return await _transition(conn, current.alert_id, current.opened_at, "resolved", now, by=by, comment=comment)


async def _point_state_at(
    conn: Conn, state: SubjectState, alert_id: UUID, opened_at: dt.datetime, finding: Finding
) -> None:
    await conn.execute(
        "UPDATE alert_state SET alert_id = %s, opened_at = %s, level = %s, level_rank = %s, severity = %s, "
        "episode = %s, latched = false, latched_episode = NULL WHERE rule_id = %s AND subject = %s",
        (
            alert_id, opened_at, finding.level, finding.rank, finding.severity, finding.episode,
            state.rule_id, state.subject,
        ),
    )  # fmt: skip


async def _transition(
    conn: Conn, alert_id: UUID, opened_at: dt.datetime, transition: Transition, now: dt.datetime, *,
    by: str | None = None, comment: str | None = None,
) -> AlertNotice:  # fmt: skip
    """Record ``transition`` of the (already updated) alert row and return its notice."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM alerts WHERE alert_id = %s AND opened_at = %s", (alert_id, opened_at))
    row = await cur.fetchone()
    assert row is not None
    vi, en = with_prefix(transition, row["message_vi"], row["message_en"])
    await conn.execute(
        "INSERT INTO alert_transitions (alert_id, opened_at, at, transition, status, level, severity, value, by_whom, "
        "comment, message_vi, message_en) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (alert_id, opened_at, now, transition, row["status"], row["level"], row["severity"], row["value"], by,
         comment, vi, en),
    )  # fmt: skip
    return notice_from_row(row, transition, now, vi, en)


def notice_from_row(
    row: dict[str, Any], transition: Transition, changed_at: dt.datetime, message_vi: str, message_en: str
) -> AlertNotice:
    evidence = row["evidence"] if not isinstance(row["evidence"], str) else json.loads(row["evidence"])
    severity: Severity = row["severity"]
    return AlertNotice(
        alert_id=row["alert_id"],
        rule_id=row["rule_id"],
        rule_kind=row["rule_kind"],
        subject=row["subject"],
        status=row["status"],
        transition=transition,
        severity=severity,
        level=row["level"],
        message_vi=message_vi,
        message_en=message_en,
        value=row["value"],
        baseline=row["baseline"],
        threshold=row["threshold"],
        window=row["window"],
        evidence=tuple(str(e) for e in evidence),
        opened_at=row["opened_at"],
        changed_at=changed_at,
    )


async def operator_transition(
    conn: Conn, alert_id: UUID, transition: Transition, *, by: str, comment: str, now: dt.datetime
) -> AlertNotice:
    """Acknowledge or resolve by hand; raises AlertNotFoundError or TransitionNotAllowedError."""
    cur = await conn.execute("SELECT rule_id, subject, opened_at FROM alerts WHERE alert_id = %s", (alert_id,))
    found = await cur.fetchone()
    if found is None:
        raise AlertNotFoundError(str(alert_id))
    rule_id, subject, opened_at = found
    state = await lock_state(conn, rule_id, subject)  # same lock order as the evaluator: state, then alert
    cur = await conn.execute(
        "SELECT status FROM alerts WHERE alert_id = %s AND opened_at = %s FOR UPDATE", (alert_id, opened_at)
    )
    status_row = await cur.fetchone()
    assert status_row is not None
    status = status_row[0]
    allowed = {"acknowledged": ("open",), "resolved": ("open", "acknowledged")}.get(transition, ())
    if status not in allowed:
        raise TransitionNotAllowedError(f"cannot {transition.removesuffix('d')} an alert that is {status}")
    if transition == "resolved":
        if state.open_alert is None or state.open_alert.alert_id != alert_id:  # cannot happen: a wiring bug
            raise TransitionNotAllowedError(f"alert {alert_id} is not its subject's open alert")
        return await resolve_open_alert(conn, state, "operator", now, by=by, comment=comment)
    await conn.execute(
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s, "
        "acknowledge_comment = %s, changed_at = %s WHERE alert_id = %s AND opened_at = %s",
        (now, by, comment, now, alert_id, opened_at),
    )
    return await _transition(conn, alert_id, opened_at, "acknowledged", now, by=by, comment=comment)
