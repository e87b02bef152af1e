"""Plate passes through the writer into TimescaleDB: sealed (no clear text in any column), searchable by exact
plate and by witness pattern, re-sealed and re-indexed by rotation; refused and redacted without a keyring;
evidence images sealed."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import uuid
from typing import Any

import psycopg
import pytest

from central_ingest.ingest.validate import CheckedBatch
from central_ingest.plates.evidence_store import (
    EvidenceError,
    load_evidence,
    store_evidence,
)
from central_ingest.plates.intake import refuse_unsealable
from central_ingest.plates.keyring import Keyring, new_keyring, with_new_data_key, with_new_index_key, without_key
from central_ingest.plates.rotation import key_usage, rotate
from central_ingest.plates.search import PassQuery, PassSearchResult, search_passes
from central_ingest.plates.vault import PlateVault, plate_aad
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.tables import PlateVaultMissingError
from central_ingest.store.writer import DeadLetter, store_events
from event_contract import EvidenceRef, HealthEvent, PlatePassEvent, ViolationEvent

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = NOW - dt.timedelta(days=5)
AGENT = "plates-1"
WITNESS = ("30A-123.45", "30A-199.45", "30A-100.45")  # match 30A-1??.45
ENDING = ("51F-123.45", "59X1-123.45")  # match *12345 (and 30A-123.45 does too)
DECOYS = ("30A-123.46", "30B-123.45", "30A-223.45", "51F-124.45", "29C-777.77")
EVIDENCE = b"\xff\xd8 a keyframe showing 30A-123.45 \xff\xd9"
EVIDENCE_SHA = hashlib.sha256(EVIDENCE).hexdigest()


def _plate_pass(plate: str, time: dt.datetime, camera: str, **extra: Any) -> PlatePassEvent:
    return PlatePassEvent(
        agent_id=AGENT,
        source_id=camera,
        time=time,
        plate=plate,
        plate_confidence=0.9,
        track_id=random.randrange(1000),
        direction="in",
        vehicle_class="car",
        plate_layout="one_line",
        format_valid=True,
        reads=3,
        **extra,
    )


def _random_plate(rng: random.Random) -> str:
    return f"{rng.randrange(11, 99)}{rng.choice('CDEGHKLMNPSTUVXYZ')}-{rng.randrange(100, 999)}.{rng.randrange(10, 99)}"


def _events() -> list[PlatePassEvent]:
    rng = random.Random(7)
    events = [
        _plate_pass(_random_plate(rng), START + dt.timedelta(minutes=rng.randrange(5 * 24 * 60)), f"cam-{i % 4}")
        for i in range(400)
    ]
    for n, plate in enumerate((*WITNESS, *ENDING, *DECOYS)):
        for day in range(3):
            time = START + dt.timedelta(days=day + 1, minutes=n)
            evidence = (EvidenceRef(kind="keyframe", uri=f"ev/{n}-{day}.jpg", sha256=EVIDENCE_SHA, time=time),)
            events.append(_plate_pass(plate, time, f"cam-{day}", evidence=evidence if n == 0 else ()))
    return events


EVENTS = _events()


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return new_keyring()


@pytest.fixture(scope="module")
def stored(pg_dsn: str, keyring: Keyring) -> str:
    apply_migrations(pg_dsn)

    async def store() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            for start in range(0, len(EVENTS), 100):
                await store_events(conn, EVENTS[start : start + 100], agent_id=AGENT, vault=vault(keyring))
            # A re-sent batch takes the staging path (ON CONFLICT): sealed rows are not doubled.
            again = await store_events(conn, EVENTS[50:150], agent_id=AGENT, vault=vault(keyring))
            assert (again.stored, again.duplicates) == (0, 100)
            violation = ViolationEvent(
                agent_id=AGENT,
                source_id="cam-1",
                time=NOW - dt.timedelta(hours=1),
                violation_type="red_light",
                category="violation",
                track_id=5,
                plate="30A-123.45",
                plate_confidence=0.8,
                rule_id="red-1",
                signal_state="red",
                related_track_ids=(7, 9),
                plate_colour="white",
            )
            await store_events(conn, [violation], agent_id=AGENT, vault=vault(keyring))

    asyncio.run(store())
    return pg_dsn


def vault(keyring: Keyring) -> PlateVault:
    return PlateVault.from_keyring(keyring)


def search(dsn: str, keyring: Keyring, **query: Any) -> PassSearchResult:
    async def run() -> PassSearchResult:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await search_passes(conn, vault(keyring), PassQuery(since=START, until=NOW, **query))

    return asyncio.run(run())


def expected(plates: tuple[str, ...], *cameras: str) -> list[uuid.UUID]:
    chosen = [e for e in EVENTS if e.plate in plates and (not cameras or e.source_id in cameras)]
    return [e.event_id for e in sorted(chosen, key=lambda e: (e.time, e.event_id), reverse=True)]


def _text_columns(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    return [
        (str(t), str(c), str(k))
        for t, c, k in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = ANY(%s) AND data_type IN ('text', 'bytea', 'jsonb', 'ARRAY', 'character varying')",
            (["plate_passes", "violations", "dead_letters", "evidence_blobs"],),
        ).fetchall()
    ]


def test_the_1_4_violation_fields_are_stored_and_its_plate_sealed(stored: str, keyring: Keyring) -> None:
    with psycopg.connect(stored) as conn:
        row = conn.execute(
            "SELECT rule_id, signal_state, related_track_ids, plate_colour, plate_key_id, plate_ct, agent_id, event_id"
            " FROM violations"
        ).fetchone()
    assert row is not None
    assert row[:5] == ("red-1", "red", [7, 9], "white", keyring.active)
    assert vault(keyring).open(row[4], bytes(row[5]), aad=plate_aad(row[6], row[7])) == "30A-123.45"


def test_exact_search_finds_every_pass_of_the_plate_newest_first(stored: str, keyring: Keyring) -> None:
    result = search(stored, keyring, plate="30a 123 45")
    assert [r.event_id for r in result.records] == expected(("30A-123.45",))
    assert {r.plate for r in result.records} == {"30A-123.45"}
    assert (result.truncated, result.candidates_checked, result.unreadable) == (False, 3, 0)
    first = result.records[0]
    assert (first.direction, first.vehicle_class) == ("in", "car")
    assert first.plate_confidence == pytest.approx(0.9)
    assert first.evidence[0]["sha256"] == EVIDENCE_SHA
    one_camera = search(stored, keyring, plate="30A-123.45", source_ids=("cam-1",))
    assert [r.event_id for r in one_camera.records] == expected(("30A-123.45",), "cam-1")
    limited = search(stored, keyring, plate="30A-123.45", limit=2)
    assert (len(limited.records), limited.truncated) == (2, True)
    assert search(stored, keyring, plate="30A-123.47").records == ()


def test_partial_search_answers_witness_patterns_exactly(stored: str, keyring: Keyring) -> None:
    witness = search(stored, keyring, pattern="30A-1??.45")
    assert [r.event_id for r in witness.records] == expected(WITNESS)
    assert witness.candidates_checked >= len(witness.records)
    ending = search(stored, keyring, pattern="*12345")
    rng_matches = tuple(e.plate for e in EVENTS if e.plate.replace("-", "").replace(".", "").endswith("12345"))
    assert [r.event_id for r in ending.records] == expected(tuple(set(rng_matches)))
    assert {"30A-123.45", *ENDING} <= {r.plate for r in ending.records}
    capped = asyncio.run(_partial_capped(stored, keyring))
    assert capped.truncated
    assert capped.candidates_checked == 2


async def _partial_capped(dsn: str, keyring: Keyring) -> PassSearchResult:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        query = PassQuery(pattern="*12345", since=START, until=NOW)
        return await search_passes(conn, vault(keyring), query, max_candidates=2)


def test_a_ciphertext_copied_into_another_row_does_not_open_there(stored: str, keyring: Keyring) -> None:
    with psycopg.connect(stored) as conn, conn.transaction():
        rows = conn.execute(
            "SELECT event_id, time FROM plate_passes WHERE plate_bidx = %s ORDER BY time",
            (vault(keyring).blind_index("30A-199.45"),),
        ).fetchall()
        conn.execute(
            "UPDATE plate_passes SET plate_ct = (SELECT plate_ct FROM plate_passes WHERE event_id = %s AND time = %s)"
            " WHERE event_id = %s AND time = %s",
            (rows[0][0], rows[0][1], rows[1][0], rows[1][1]),
        )
    result = search(stored, keyring, plate="30A-199.45")
    assert (len(result.records), result.unreadable) == (2, 1)
    with psycopg.connect(stored) as conn:  # put the row right again for the other tests
        conn.execute("DELETE FROM plate_passes WHERE event_id = %s AND time = %s", rows[1])
    asyncio.run(_restore(stored, keyring, rows[1][0]))


async def _restore(dsn: str, keyring: Keyring, event_id: uuid.UUID) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await store_events(conn, [e for e in EVENTS if e.event_id == event_id], vault=vault(keyring))


def test_without_a_keyring_plate_events_are_refused_and_their_dead_letters_hold_no_plate(stored: str) -> None:
    plate_pass = _plate_pass("88K-654.32", NOW - dt.timedelta(minutes=5), "cam-9")
    health = HealthEvent(agent_id=AGENT, source_id="cam-9", time=NOW - dt.timedelta(minutes=5), state="live")
    checked = refuse_unsealable(CheckedBatch(AGENT, 2, (plate_pass, health), ()), None)

    async def ingest() -> None:
        async with await psycopg.AsyncConnection.connect(stored) as conn:
            with pytest.raises(PlateVaultMissingError):
                await store_events(conn, [plate_pass, health], agent_id=AGENT)
            letters = [DeadLetter("http", AGENT, r.position, r.event_id, r.reason, r.raw) for r in checked.refused]
            result = await store_events(conn, checked.events, dead_letters=letters, agent_id=AGENT)
            assert (result.stored, result.rejected) == (1, 1)

    asyncio.run(ingest())
    with psycopg.connect(stored) as conn:
        assert conn.execute("SELECT count(*) FROM plate_passes WHERE source_id = 'cam-9'").fetchone() == (0,)
        letter = conn.execute("SELECT reason, payload FROM dead_letters WHERE agent_id = %s", (AGENT,)).fetchone()
        assert letter is not None
        reason, payload = letter
        assert "no plate keyring" in reason
        assert b"88K" not in bytes(payload)  # K is no hex digit: found only if the plate were there
        assert str(plate_pass.event_id).encode() in bytes(payload)


def test_evidence_is_sealed_and_deduplicated(stored: str, keyring: Keyring) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(stored, autocommit=True) as conn:
            store: dict[str, Any] = {
                "agent_id": AGENT,
                "sha256": EVIDENCE_SHA,
                "content_type": "image/jpeg",
                "time": START + dt.timedelta(days=1),
            }
            assert await store_evidence(conn, vault(keyring), data=EVIDENCE, **store)
            assert not await store_evidence(conn, vault(keyring), data=EVIDENCE, **store)
            with pytest.raises(EvidenceError, match="hash to"):
                await store_evidence(conn, vault(keyring), data=EVIDENCE + b"x", **store)
            assert await load_evidence(conn, vault(keyring), EVIDENCE_SHA) == ("image/jpeg", EVIDENCE)
            assert await load_evidence(conn, vault(keyring), "0" * 64) is None

    asyncio.run(run())
    with psycopg.connect(stored) as conn:
        sealed = conn.execute("SELECT sealed FROM evidence_blobs").fetchone()
    assert sealed is not None
    assert b"keyframe" not in bytes(sealed[0])


def test_rotation_reseals_reindexes_and_lets_old_keys_retire(stored: str, keyring: Keyring) -> None:
    rotated = with_new_index_key(with_new_data_key(keyring))
    # Before re-indexing, the old index key is still searched.
    assert len(search(stored, rotated, plate="30A-123.45").records) == 3
    assert len(search(stored, rotated, pattern="30A-1??.45").records) == len(expected(WITNESS))

    async def run(reindex: bool) -> Any:
        async with await psycopg.AsyncConnection.connect(stored) as conn:
            report = await rotate(conn, vault(rotated), reindex=reindex, batch_size=100)
            return report, await key_usage(conn)

    report, usage = run_sync(run, reindex=False)
    assert report.resealed == {"plate_passes": len(EVENTS), "violations": 1, "evidence_blobs": 1}
    assert (report.reindexed, report.unreadable) == (0, {})
    assert usage.users_of("k1") == {}
    assert usage.users_of("i1") == {"plate_passes (index)": len(EVENTS)}
    report, usage = run_sync(run, reindex=True)
    assert (report.reindexed, report.resealed["plate_passes"]) == (len(EVENTS), len(EVENTS))
    assert usage.users_of("i1") == {}
    again, _ = run_sync(run, reindex=True)  # idempotent
    assert (again.reindexed, sum(again.resealed.values())) == (0, 0)

    retired = without_key(without_key(rotated, "k1"), "i1")
    assert [r.event_id for r in search(stored, retired, plate="30A-123.45").records] == expected(("30A-123.45",))
    assert [r.event_id for r in search(stored, retired, pattern="30A-1??.45").records] == expected(WITNESS)
    assert search(stored, keyring, plate="30A-123.45").records == ()  # the old index key finds nothing now


def run_sync(function: Any, **kwargs: Any) -> Any:
    return asyncio.run(function(**kwargs))


def test_after_everything_no_plate_is_stored_in_clear_in_any_column(stored: str) -> None:
    plates = {e.plate for e in EVENTS} | {"30A-123.45"}
    needles = sorted(plates | {p.replace("-", "").replace(".", "") for p in plates})
    with psycopg.connect(stored) as conn:
        columns = _text_columns(conn)
        assert ("plate_passes", "plate_ct", "bytea") in columns
        assert not any(column == "plate" for _, column, _ in columns)
        for table, column, kind in columns:
            if kind == "bytea":
                condition = f"position(n::bytea IN {column}) > 0"
            else:
                condition = f"{column}::text LIKE '%%' || n || '%%'"
            found = conn.execute(
                f"SELECT count(*) FROM {table}, unnest(%s::text[]) AS n WHERE {condition}",
                (needles,),
            ).fetchone()
            assert found == (0,), f"{table}.{column} holds a plate in clear"
        count = conn.execute("SELECT count(*) FROM plate_passes").fetchone()
        assert count == (len(EVENTS),)
