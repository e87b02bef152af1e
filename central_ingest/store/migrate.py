"""Versioned schema migrations: ``store/migrations/NNNN_name.sql`` applied in order, once.

All pending files are applied in ONE transaction holding an advisory lock, so two
processes starting together cannot apply the same file twice, and a failing file
leaves the schema as it was. Each applied file is recorded in ``schema_migrations``
with its SHA-256; an applied file that was edited afterwards is an error, because
the database would no longer match what the file says.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

MIGRATIONS_PACKAGE = "central_ingest.store"
MIGRATIONS_DIR = "migrations"
MIGRATION_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every process of this service.
ADVISORY_LOCK_KEY = 0x10C_5C4E_3A00

CREATE_LEDGER = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    sha256     text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migration files or the database's record of them are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available_migrations() -> tuple[Migration, ...]:
    """The packaged migration files, ordered by version."""
    folder = resources.files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_DIR)
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = MIGRATION_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} does not match NNNN_lowercase_name.sql")
        found.append(Migration(match["version"], match["name"], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise MigrationError(f"two migration files share a version: {versions}")
    return tuple(found)


def latest_version() -> str | None:
    migrations = available_migrations()
    return migrations[-1].version if migrations else None


def _applied(conn: psycopg.Connection[tuple[str, str]]) -> dict[str, str]:
    rows = conn.execute(b"SELECT version, sha256 FROM schema_migrations").fetchall()
    return {version: sha for version, sha in rows}


def apply_migrations(conninfo: str) -> list[str]:
    """Apply every pending migration; return the versions applied now (empty when current)."""
    migrations = available_migrations()
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(CREATE_LEDGER)
        applied = _applied(conn)
        newly_applied: list[str] = []
        for migration in migrations:
            recorded_sha = applied.get(migration.version)
            if recorded_sha is not None:
                if recorded_sha != migration.sha256:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was edited after it was applied; "
                        "add a new migration instead of changing an applied one"
                    )
                continue
            conn.execute(migration.sql.encode("utf-8"))
            conn.execute(
                b"INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.sha256),
            )
            newly_applied.append(migration.version)
        return newly_applied
