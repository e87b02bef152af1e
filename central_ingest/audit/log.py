"""Append to the audit log inside the caller's transaction, and read it back.

``append_audit`` locks the one-row ``audit_chain_head`` (``FOR UPDATE``), so appends from every
process form one line: the next entry takes ``seq = head.seq + 1`` and ``prev_hash = head.hash``.
The lock is held until the caller's transaction ends, which is what makes an action and its
audit record commit (or roll back) together; callers therefore append LAST, just before commit,
to keep the time other appenders wait short. A database trigger checks the link again and moves
the head (migration 0009).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from central_ingest.audit.canonical import canonical_json, format_time, hash_fields
from central_ingest.audit.entry import AuditEntry, AuditRecord

COLUMNS = "seq, time, hash, prev_hash, actor, role, action, target, reason, result_count, client"
READ_BATCH = 2000
"""Rows fetched per round trip when walking the log (verification, export): bounded memory."""


def _record(row: tuple[Any, ...]) -> AuditRecord:
    seq, time, hash_hex, prev_hash, actor, role, action, target, reason, result_count, client = row
    return AuditRecord(
        seq=int(seq),
        time=time,
        hash_hex=str(hash_hex),
        prev_hash=str(prev_hash),
        actor=str(actor),
        role=str(role),
        action=str(action),
        target=dict(target),
        reason=reason,
        result_count=None if result_count is None else int(result_count),
        client=client,
    )


async def append_audit(conn: AsyncConnection[Any], entry: AuditEntry) -> AuditRecord:
    """Write ``entry`` as the next link of the chain, in the caller's transaction.

    The entry commits or rolls back with whatever the caller's transaction holds (on a connection
    that is not in autocommit mode, including the transaction its first statement opens). Only on
    an autocommit connection outside a transaction block does it commit on its own. Raises
    ``AuditEntryError`` for an entry that does not fit the log (checked before anything is written).
    """
    entry.check()
    # The target goes through its canonical text so the jsonb holds exactly what was hashed.
    target = Jsonb(entry.target, dumps=canonical_json)
    own_transaction = conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
    async with conn.transaction() if own_transaction else contextlib.nullcontext():
        cursor = await conn.execute(
            b"SELECT seq, hash, clock_timestamp() FROM audit_chain_head WHERE singleton FOR UPDATE"
        )
        head = await cursor.fetchone()
        if head is None:
            raise RuntimeError("audit_chain_head has no row: was migration 0009 applied?")
        head_seq, head_hash, now = head
        seq = int(head_seq) + 1
        time: dt.datetime = now
        fields: dict[str, Any] = {
            "seq": seq,
            "time": format_time(time),
            "actor": entry.actor,
            "role": entry.role,
            "action": entry.action,
            "target": entry.target,
            "reason": entry.reason,
            "result_count": entry.result_count,
            "client": entry.client,
            "prev_hash": str(head_hash),
        }
        digest = hash_fields(fields)
        await conn.execute(
            b"INSERT INTO audit_log (seq, time, actor, role, action, target, reason, result_count, client,"
            b" prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                seq,
                time,
                entry.actor,
                entry.role,
                entry.action,
                target,
                entry.reason,
                entry.result_count,
                entry.client,
                str(head_hash),
                digest,
            ),
        )
    return AuditRecord(
        seq=seq,
        time=time,
        hash_hex=digest,
        prev_hash=str(head_hash),
        actor=entry.actor,
        role=entry.role,
        action=entry.action,
        target=entry.target,
        reason=entry.reason,
        result_count=entry.result_count,
        client=entry.client,
    )


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries a listing returns; every field narrows it (None: no condition)."""

    since: dt.datetime | None = None
    """Entries at or after this time."""
    until: dt.datetime | None = None
    """Entries before this time (exclusive)."""
    actor: str | None = None
    action: str | None = None
    after_seq: int | None = None
    """Keyset cursor: only entries with a larger seq (the last seq of the previous page)."""
    max_seq: int | None = None
    """Only entries up to this seq (a walk bounded by the head read before it)."""

    def where(self) -> tuple[sql.Composable, list[Any]]:
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        for column, operator, value in (
            ("time", ">=", self.since),
            ("time", "<", self.until),
            ("actor", "=", self.actor),
            ("action", "=", self.action),
            ("seq", ">", self.after_seq),
            ("seq", "<=", self.max_seq),
        ):
            if value is not None:
                conditions.append(sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(operator)))
                params.append(value)
        if not conditions:
            return sql.SQL("TRUE"), params
        return sql.SQL(" AND ").join(conditions), params

    def as_json(self) -> dict[str, Any]:
        """The filter as an audit target (what the auditor asked for)."""
        return {
            "since": None if self.since is None else format_time(self.since),
            "until": None if self.until is None else format_time(self.until),
            "actor": self.actor,
            "action": self.action,
            "after_seq": self.after_seq,
        }


async def list_audit(conn: AsyncConnection[Any], where: AuditFilter, limit: int) -> list[AuditRecord]:
    """Up to ``limit`` entries matching ``where``, oldest first (page on with ``after_seq``)."""
    condition, params = where.where()
    query = sql.SQL("SELECT {} FROM audit_log WHERE {} ORDER BY seq LIMIT %s").format(sql.SQL(COLUMNS), condition)
    cursor = await conn.execute(query, [*params, limit])
    return [_record(row) for row in await cursor.fetchall()]


async def iter_audit(conn: AsyncConnection[Any], where: AuditFilter | None = None) -> AsyncIterator[AuditRecord]:
    """Every matching entry in seq order, fetched ``READ_BATCH`` at a time (for verify and export)."""
    base = where or AuditFilter()
    after = base.after_seq
    while True:
        where_page = AuditFilter(base.since, base.until, base.actor, base.action, after, base.max_seq)
        page = await list_audit(conn, where_page, READ_BATCH)
        for record in page:
            yield record
        if len(page) < READ_BATCH:
            return
        after = page[-1].seq


async def chain_head(conn: AsyncConnection[Any]) -> tuple[int, str]:
    """The head row: the seq and hash of the last entry (0 and the genesis hash when empty)."""
    cursor = await conn.execute(b"SELECT seq, hash FROM audit_chain_head WHERE singleton")
    row = await cursor.fetchone()
    if row is None:
        raise RuntimeError("audit_chain_head has no row: was migration 0009 applied?")
    return int(row[0]), str(row[1])


async def record_at(conn: AsyncConnection[Any], seq: int) -> AuditRecord | None:
    cursor = await conn.execute(sql.SQL("SELECT {} FROM audit_log WHERE seq = %s").format(sql.SQL(COLUMNS)), (seq,))
    row = await cursor.fetchone()
    return None if row is None else _record(row)
