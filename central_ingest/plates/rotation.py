"""Key rotation: re-seal rows under old data keys, re-index rows under an old index key, count key use.

``rotate`` walks each table once in key order (``plate_passes`` and ``violations`` by (time, event_id),
``evidence_blobs`` by digest), ``batch_size`` rows per transaction, and rewrites the rows whose data key
is not the active one (and, with ``reindex``, the plate passes whose blind index and tokens were computed
under an old index key). It is idempotent (a second run finds nothing to do), resumable (a stopped run
loses at most one batch; the next run skips what is done), and takes an advisory lock so two rotations
never race. New rows are sealed with the active key while it runs, so they never need rotating.

A key may leave the keyring (``central-ingest plates retire``) only when ``key_usage`` says no row uses it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from central_ingest.plates.evidence_store import evidence_aad
from central_ingest.plates.vault import PlateVault, PlateVaultError, plate_aad

ROTATION_LOCK_KEY = 0x10C_9A7E_0001
DEFAULT_BATCH = 1000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NIL = UUID(int=0)

Progress = Callable[[str, int], None]
"""Called after each batch with the table and the rows rewritten so far in it."""

PASS_BATCH = b"""
SELECT time, event_id, agent_id, plate_key_id, plate_ct, plate_index_key FROM plate_passes
WHERE time >= %(after_time)s AND (time > %(after_time)s OR event_id > %(after_id)s)
  AND (plate_key_id <> %(active)s OR (%(reindex)s AND plate_index_key <> %(index_key)s))
ORDER BY time, event_id LIMIT %(limit)s
"""
PASS_UPDATE = b"""
UPDATE plate_passes SET plate_key_id = %s, plate_ct = %s, plate_bidx = %s, plate_index_key = %s, plate_grams = %s
WHERE event_id = %s AND time = %s
"""
PASS_RESEAL = b"UPDATE plate_passes SET plate_key_id = %s, plate_ct = %s WHERE event_id = %s AND time = %s"
VIOLATION_BATCH = b"""
SELECT time, event_id, agent_id, plate_key_id, plate_ct FROM violations
WHERE time >= %(after_time)s AND (time > %(after_time)s OR event_id > %(after_id)s)
  AND plate_ct IS NOT NULL AND plate_key_id <> %(active)s
ORDER BY time, event_id LIMIT %(limit)s
"""
VIOLATION_UPDATE = b"UPDATE violations SET plate_key_id = %s, plate_ct = %s WHERE event_id = %s AND time = %s"
BLOB_BATCH = b"""
SELECT sha256, agent_id, content_type, key_id, sealed FROM evidence_blobs
WHERE sha256 > %(after)s AND key_id <> %(active)s ORDER BY sha256 LIMIT %(limit)s
"""
BLOB_UPDATE = b"UPDATE evidence_blobs SET key_id = %s, sealed = %s WHERE sha256 = %s"
USAGE = b"""
SELECT 'plate_passes', plate_key_id, count(*) FROM plate_passes GROUP BY 2
UNION ALL SELECT 'violations', plate_key_id, count(*) FROM violations WHERE plate_key_id IS NOT NULL GROUP BY 2
UNION ALL SELECT 'evidence_blobs', key_id, count(*) FROM evidence_blobs GROUP BY 2
UNION ALL SELECT 'plate_passes (index)', plate_index_key, count(*) FROM plate_passes GROUP BY 2
"""


class RotationBusyError(RuntimeError):
    """Another rotation holds the lock."""


@dataclass
class RotationReport:
    resealed: dict[str, int] = field(default_factory=dict)
    """Rows re-sealed under the active data key, per table."""
    reindexed: int = 0
    """Plate passes whose blind index and tokens were recomputed under the current index key."""
    unreadable: dict[str, int] = field(default_factory=dict)
    """Rows that did not open (their key is not in the keyring, or tampered): left as they were."""


@dataclass(frozen=True)
class KeyUsage:
    """Rows per key id: data keys per table, and index keys of plate passes (table "plate_passes (index)")."""

    rows: dict[tuple[str, str], int]

    def users_of(self, key_id: str) -> dict[str, int]:
        return {table: n for (table, key), n in self.rows.items() if key == key_id and n > 0}


async def key_usage(conn: AsyncConnection[Any]) -> KeyUsage:
    """How many rows each key seals or indexes (reads every row's key id: an admin command, not a hot path)."""
    cursor = await conn.execute(USAGE)
    return KeyUsage({(str(table), str(key)): int(n) for table, key, n in await cursor.fetchall()})


async def _fetch(conn: AsyncConnection[Any], statement: bytes, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(statement, params)
        return await cursor.fetchall()


def _count(counter: dict[str, int], table: str, n: int = 1) -> None:
    counter[table] = counter.get(table, 0) + n


async def _rotate_passes(
    conn: AsyncConnection[Any],
    vault: PlateVault,
    *,
    reindex: bool,
    batch: int,
    report: RotationReport,
    progress: Progress,
) -> None:
    after_time, after_id = EPOCH, NIL
    while True:
        params = {
            "after_time": after_time,
            "after_id": after_id,
            "active": vault.active_key_id,
            "reindex": reindex,
            "index_key": vault.index_key_id,
            "limit": batch,
        }
        async with conn.transaction():
            rows = await _fetch(conn, PASS_BATCH, params)
            full: list[tuple[Any, ...]] = []
            reseal_only: list[tuple[Any, ...]] = []
            for row in rows:
                aad = plate_aad(row["agent_id"], row["event_id"])
                try:
                    plate = vault.open(row["plate_key_id"], bytes(row["plate_ct"]), aad=aad)
                except PlateVaultError:
                    _count(report.unreadable, "plate_passes")
                    continue
                sealed = vault.seal(plate, aad=aad)
                if reindex and row["plate_index_key"] != vault.index_key_id:
                    full.append(
                        (
                            sealed.key_id,
                            sealed.ciphertext,
                            sealed.blind_index,
                            sealed.index_key_id,
                            list(sealed.tokens),
                            row["event_id"],
                            row["time"],
                        )
                    )
                else:
                    reseal_only.append((sealed.key_id, sealed.ciphertext, row["event_id"], row["time"]))
            async with conn.cursor() as cursor:
                if full:
                    await cursor.executemany(PASS_UPDATE, full)
                if reseal_only:
                    await cursor.executemany(PASS_RESEAL, reseal_only)
        report.reindexed += len(full)
        _count(report.resealed, "plate_passes", len(full) + len(reseal_only))
        progress("plate_passes", report.resealed.get("plate_passes", 0))
        if len(rows) < batch:
            return
        after_time, after_id = rows[-1]["time"], rows[-1]["event_id"]


async def _rotate_violations(
    conn: AsyncConnection[Any], vault: PlateVault, batch: int, report: RotationReport, progress: Progress
) -> None:
    after_time, after_id = EPOCH, NIL
    while True:
        params = {"after_time": after_time, "after_id": after_id, "active": vault.active_key_id, "limit": batch}
        async with conn.transaction():
            rows = await _fetch(conn, VIOLATION_BATCH, params)
            updates: list[tuple[Any, ...]] = []
            for row in rows:
                aad = plate_aad(row["agent_id"], row["event_id"])
                try:
                    plate = vault.open(row["plate_key_id"], bytes(row["plate_ct"]), aad=aad)
                except PlateVaultError:
                    _count(report.unreadable, "violations")
                    continue
                sealed = vault.seal(plate, aad=aad)
                updates.append((sealed.key_id, sealed.ciphertext, row["event_id"], row["time"]))
            if updates:
                async with conn.cursor() as cursor:
                    await cursor.executemany(VIOLATION_UPDATE, updates)
        _count(report.resealed, "violations", len(updates))
        progress("violations", report.resealed.get("violations", 0))
        if len(rows) < batch:
            return
        after_time, after_id = rows[-1]["time"], rows[-1]["event_id"]


async def _rotate_blobs(
    conn: AsyncConnection[Any], vault: PlateVault, batch: int, report: RotationReport, progress: Progress
) -> None:
    after = ""
    while True:
        async with conn.transaction():
            rows = await _fetch(conn, BLOB_BATCH, {"after": after, "active": vault.active_key_id, "limit": batch})
            updates: list[tuple[Any, ...]] = []
            for row in rows:
                aad = evidence_aad(row["sha256"], row["agent_id"], row["content_type"])
                try:
                    data = vault.open_blob(row["key_id"], bytes(row["sealed"]), aad)
                except PlateVaultError:
                    _count(report.unreadable, "evidence_blobs")
                    continue
                key_id, sealed = vault.seal_blob(data, aad)
                updates.append((key_id, sealed, row["sha256"]))
            if updates:
                async with conn.cursor() as cursor:
                    await cursor.executemany(BLOB_UPDATE, updates)
        _count(report.resealed, "evidence_blobs", len(updates))
        progress("evidence_blobs", report.resealed.get("evidence_blobs", 0))
        if len(rows) < batch:
            return
        after = rows[-1]["sha256"]


async def rotate(
    conn: AsyncConnection[Any],
    vault: PlateVault,
    *,
    reindex: bool = False,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> RotationReport:
    """Re-seal every row under a non-active data key (and re-index, with ``reindex``); see the module doc.

    ``conn`` must not be in a transaction (each batch commits on its own).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport()
    notify = progress or (lambda _table, _rows: None)
    cursor = await conn.execute(b"SELECT pg_try_advisory_lock(%s)", (ROTATION_LOCK_KEY,))
    locked = await cursor.fetchone()
    await conn.commit()
    if not (locked and locked[0]):
        raise RotationBusyError("another plate key rotation is running on this database; wait for it to finish")
    try:
        await _rotate_passes(conn, vault, reindex=reindex, batch=batch_size, report=report, progress=notify)
        await _rotate_violations(conn, vault, batch_size, report, notify)
        await _rotate_blobs(conn, vault, batch_size, report, notify)
    finally:
        await conn.execute(b"SELECT pg_advisory_unlock(%s)", (ROTATION_LOCK_KEY,))
        await conn.commit()
    return report
