"""The spool's on-disk schema, and how its rows are salvaged from a damaged file.

Kept apart from ``spool.py`` so the file format is in one short place: the tables, the one index the
lease and eviction queries need, and the checks a salvaged row must pass before it is trusted again.

Every row carries ``crc``, the CRC-32 of its payload, so a page whose bytes rotted without breaking
SQLite's structure is still caught (on lease, and here on salvage) instead of sending garbage.
"""

from __future__ import annotations

import logging
import sqlite3
import zlib

from edge_agent.delivery.sqlite_files import StoreSchema, salvage_rows

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

EVENT_COLUMNS = ("seq", "event_id", "kind", "priority", "time_us", "crc", "payload")
DROP_COLUMNS = ("kind", "events", "first_time_us", "last_time_us")

DDL = (
    """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,        -- arrival order at the spool; the sender acks by it
    event_id BLOB NOT NULL UNIQUE,  -- the event's UUID, 16 bytes: a second put of it is a duplicate
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,      -- 0 = most urgent
    time_us INTEGER NOT NULL,       -- event time, microseconds since the Unix epoch (UTC)
    crc INTEGER NOT NULL,           -- zlib.crc32(payload)
    payload BLOB NOT NULL           -- the event's JSON, ready to send
)""",
    # (priority, rowid): lease and eviction walk one priority in seq order, from either end.
    "CREATE INDEX IF NOT EXISTS events_by_priority ON events (priority)",
    """
CREATE TABLE IF NOT EXISTS drops (
    kind TEXT PRIMARY KEY,
    events INTEGER NOT NULL,        -- events of this kind the spool dropped, ever
    first_time_us INTEGER NOT NULL, -- earliest event time among them
    last_time_us INTEGER NOT NULL   -- latest event time among them
)""",
)

INSERT_EVENT = "INSERT INTO events (seq, event_id, kind, priority, time_us, crc, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
INSERT_NEW_EVENT = INSERT_EVENT.replace("INSERT", "INSERT OR IGNORE", 1)
"""Skips a row whose event id is already stored (the unique index finds it while inserting)."""

_SALVAGE_BATCH = 1000


def _valid_event_row(row: tuple[object, ...]) -> bool:
    """A salvaged row is kept only when every column has its type and the payload matches its checksum."""
    seq, event_id, kind, priority, time_us, crc, payload = row
    return (
        isinstance(seq, int)
        and seq > 0
        and isinstance(event_id, bytes)
        and len(event_id) == 16
        and isinstance(kind, str)
        and isinstance(priority, int)
        and isinstance(time_us, int)
        and isinstance(crc, int)
        and isinstance(payload, bytes)
        and zlib.crc32(payload) == crc
    )


def _insert_batch(dst: sqlite3.Connection, rows: list[tuple[object, ...]]) -> int:
    dst.execute("BEGIN IMMEDIATE")
    try:
        before = dst.total_changes
        dst.executemany(INSERT_NEW_EVENT, rows)
        inserted = dst.total_changes - before
        dst.execute("COMMIT")
    except BaseException:
        if dst.in_transaction:
            dst.rollback()
        raise
    return inserted


def salvage(src: sqlite3.Connection, dst: sqlite3.Connection) -> int:
    """Copy every readable, intact event (same seq, so in-flight acks still match) and the drop counters."""
    copied = 0
    rejected = 0
    batch: list[tuple[object, ...]] = []
    for row in salvage_rows(src, "events", EVENT_COLUMNS, "seq"):
        if not _valid_event_row(row):
            rejected += 1
            continue
        batch.append(row)
        if len(batch) >= _SALVAGE_BATCH:
            copied += _insert_batch(dst, batch)
            batch = []
    if batch:
        copied += _insert_batch(dst, batch)
    if rejected:
        log.error("salvage rejected %d damaged event rows (wrong types or checksum)", rejected)
    drops = [
        row
        for row in salvage_rows(src, "drops", DROP_COLUMNS, "rowid")
        if isinstance(row[0], str) and all(isinstance(v, int) for v in row[1:])
    ]
    if drops:
        dst.execute("BEGIN IMMEDIATE")
        dst.executemany("INSERT OR REPLACE INTO drops VALUES (?, ?, ?, ?)", drops)
        dst.execute("COMMIT")
    return copied


SPOOL_SCHEMA = StoreSchema(
    version=SCHEMA_VERSION,
    ddl=DDL,
    tables={"events": EVENT_COLUMNS, "drops": DROP_COLUMNS},
    salvage=salvage,
)
