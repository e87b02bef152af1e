"""Seal the plates that older versions stored in clear, once, after migration 0008.

Migration 0008 cannot encrypt (SQL has no key): a table that held clear plates keeps them in a column
renamed ``plate_legacy_clear``. ``seal_legacy_plates`` (run by the app at start and by ``central-ingest
migrate``, after the migrations) seals those rows in batches with the vault, then drops the column and,
for ``plate_passes``, makes the sealed columns NOT NULL. Without a keyring it raises
``LegacyPlatesError`` with what to do: the service refuses to run with clear plates in its database.
Idempotent and resumable: each batch commits on its own; a second run finds no legacy column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from central_ingest.plates.vault import PlateVault, plate_aad

LEGACY_COLUMN = "plate_legacy_clear"
LEGACY_TABLES = ("plate_passes", "violations")
BATCH = 1000
LEGACY_LOCK_KEY = 0x10C_9A7E_0002

FIND = b"""
SELECT table_name FROM information_schema.columns
WHERE table_schema = current_schema() AND column_name = 'plate_legacy_clear' AND table_name = ANY(%s)
ORDER BY table_name
"""
PASS_ROWS = b"""
SELECT time, event_id, agent_id, plate_legacy_clear AS plate FROM plate_passes
WHERE plate_legacy_clear IS NOT NULL ORDER BY time, event_id LIMIT %s
"""
PASS_SEAL = b"""
UPDATE plate_passes SET plate_key_id = %s, plate_ct = %s, plate_bidx = %s, plate_index_key = %s, plate_grams = %s,
    plate_legacy_clear = NULL
WHERE event_id = %s AND time = %s
"""
PASS_FINISH = b"""
ALTER TABLE plate_passes DROP COLUMN plate_legacy_clear;
ALTER TABLE plate_passes
    ALTER COLUMN plate_key_id SET NOT NULL, ALTER COLUMN plate_ct SET NOT NULL, ALTER COLUMN plate_bidx SET NOT NULL,
    ALTER COLUMN plate_index_key SET NOT NULL, ALTER COLUMN plate_grams SET NOT NULL
"""
VIOLATION_ROWS = b"""
SELECT time, event_id, agent_id, plate_legacy_clear AS plate FROM violations
WHERE plate_legacy_clear IS NOT NULL ORDER BY time, event_id LIMIT %s
"""
VIOLATION_SEAL = b"""
UPDATE violations SET plate_key_id = %s, plate_ct = %s, plate_legacy_clear = NULL WHERE event_id = %s AND time = %s
"""
VIOLATION_FINISH = b"ALTER TABLE violations DROP COLUMN plate_legacy_clear"


class LegacyPlatesError(RuntimeError):
    """Clear plates from an older version are in the database and there is no keyring to seal them."""


@dataclass(frozen=True)
class LegacyReport:
    sealed: dict[str, int]
    """Rows sealed now, per table (empty when there was nothing left from an older version)."""


def legacy_tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [str(name) for (name,) in conn.execute(FIND, (list(LEGACY_TABLES),)).fetchall()]


def _seal_passes(conn: psycopg.Connection[Any], vault: PlateVault) -> int:
    sealed_rows = 0
    while True:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(PASS_ROWS, (BATCH,)).fetchall()
            updates = []
            for row in rows:
                sealed = vault.seal(row["plate"], aad=plate_aad(row["agent_id"], row["event_id"]))
                updates.append(
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
            cursor.executemany(PASS_SEAL, updates)
        sealed_rows += len(rows)
        if len(rows) < BATCH:
            break
    with conn.transaction():
        conn.execute(PASS_FINISH)
    return sealed_rows


def _seal_violations(conn: psycopg.Connection[Any], vault: PlateVault) -> int:
    sealed_rows = 0
    while True:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(VIOLATION_ROWS, (BATCH,)).fetchall()
            updates = []
            for row in rows:
                sealed = vault.seal(row["plate"], aad=plate_aad(row["agent_id"], row["event_id"]))
                updates.append((sealed.key_id, sealed.ciphertext, row["event_id"], row["time"]))
            cursor.executemany(VIOLATION_SEAL, updates)
        sealed_rows += len(rows)
        if len(rows) < BATCH:
            break
    with conn.transaction():
        conn.execute(VIOLATION_FINISH)
    return sealed_rows


def seal_legacy_plates(conninfo: str, vault_source: Callable[[], PlateVault | None]) -> LegacyReport:
    """Seal and drop the clear plates left by versions before 0008; see the module doc.

    ``vault_source`` is called only when there is something to seal (it may run the KMS hook).
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        tables = legacy_tables(conn)
        if not tables:
            return LegacyReport({})
        vault = vault_source()
        if vault is None:
            raise LegacyPlatesError(
                f"{', '.join(tables)} still hold plates stored in clear by an older version; configure the plate "
                "keyring (IOC_PLATE_KEYS_FILE or IOC_PLATE_KEYS_COMMAND; `central-ingest plates keygen` makes one) "
                "and run `central-ingest migrate` (or start the service) to seal them"
            )
        conn.execute(b"SELECT pg_advisory_lock(%s)", (LEGACY_LOCK_KEY,))
        try:
            tables = legacy_tables(conn)  # another process may have finished while this one waited
            sealed: dict[str, int] = {}
            if "plate_passes" in tables:
                sealed["plate_passes"] = _seal_passes(conn, vault)
            if "violations" in tables:
                sealed["violations"] = _seal_violations(conn, vault)
            return LegacyReport(sealed)
        finally:
            conn.execute(b"SELECT pg_advisory_unlock(%s)", (LEGACY_LOCK_KEY,))
