"""Plates stored in clear by a version before migration 0008: kept aside by the migration, refused without a
keyring, sealed (and the clear column dropped) with one."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.plates.legacy import LegacyPlatesError, legacy_tables, seal_legacy_plates
from central_ingest.plates.search import PassQuery, search_passes
from central_ingest.plates.vault import PlateVault
from central_ingest.settings import Settings
from central_ingest.store.migrate import apply_migrations, available_migrations

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
OLD_PLATES = ("30A-123.45", "29B-555.55", "30A-123.45")


def _migrate_to_0007(dsn: str) -> None:
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in available_migrations():
            if migration.version <= "0007":
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.sha256),
                )


def _insert_clear_rows(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for n, plate in enumerate(OLD_PLATES):
            time = NOW - dt.timedelta(hours=n + 1)
            conn.execute(
                "INSERT INTO plate_passes (time, event_id, agent_id, source_id, plate, plate_confidence, track_id,"
                " schema_version) VALUES (%s, %s, 'old-agent', 'cam-1', %s, 0.9, %s, '1.2')",
                (time, uuid.uuid4(), plate, n),
            )
        conn.execute(
            "INSERT INTO violations (time, event_id, agent_id, source_id, violation_type, category, track_id, plate,"
            " plate_confidence, schema_version) VALUES (%s, %s, 'old-agent', 'cam-1', 'red_light', 'violation', 1,"
            " '29B-555.55', 0.8, '1.2')",
            (NOW - dt.timedelta(hours=1), uuid.uuid4()),
        )


def test_clear_plates_from_an_older_version_are_sealed_once_a_keyring_is_given(pg_dsn: str, tmp_path: Path) -> None:
    _migrate_to_0007(pg_dsn)
    _insert_clear_rows(pg_dsn)
    apply_migrations(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert legacy_tables(conn) == ["plate_passes", "violations"]

    # No keyring: the service refuses to start, and says what to do.
    with pytest.raises(LegacyPlatesError, match="plate_passes, violations still hold plates stored in clear"):
        seal_legacy_plates(pg_dsn, lambda: None)
    with (
        pytest.raises(LegacyPlatesError, match="IOC_PLATE_KEYS_FILE"),
        TestClient(create_app(Settings(database_url=pg_dsn, maintenance_enabled=False))),
    ):
        pass

    keyring = new_keyring()
    vault = PlateVault.from_keyring(keyring)
    report = seal_legacy_plates(pg_dsn, lambda: vault)
    assert report.sealed == {"plate_passes": 3, "violations": 1}
    assert seal_legacy_plates(pg_dsn, lambda: None).sealed == {}  # done: nothing left, no keyring needed
    with psycopg.connect(pg_dsn) as conn:
        assert legacy_tables(conn) == []
        nullable = conn.execute(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'plate_passes'"
            " AND column_name = 'plate_ct'"
        ).fetchone()
        assert nullable == ("NO",)
        sealed = conn.execute("SELECT count(*) FROM violations WHERE plate_ct IS NOT NULL").fetchone()
        assert sealed == (1,)

    async def search() -> list[str]:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            query = PassQuery(plate="30A-123.45", since=NOW - dt.timedelta(days=1), until=NOW)
            return [r.plate for r in (await search_passes(conn, vault, query)).records]

    assert asyncio.run(search()) == ["30A-123.45", "30A-123.45"]

    # With the keyring the app starts (nothing left to seal).
    keys = tmp_path / "keys.json"
    write_keyring_file(keys, keyring)
    settings = Settings(database_url=pg_dsn, maintenance_enabled=False, plate_keys_file=keys)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
