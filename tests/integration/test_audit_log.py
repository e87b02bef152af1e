"""The audit log on the real database: one transaction with the caller, append-only, tamper-evident,
one chain under concurrent appends, and the CLI's verify and export.

Tests run in file order on one database; the tampering test restores what it changed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from central_ingest.audit import AuditEntry, append_audit, chain_head, verify_chain
from central_ingest.audit.canonical import GENESIS_HASH
from central_ingest.cli import main
from central_ingest.store.migrate import apply_migrations

pytestmark = pytest.mark.integration


def entry(n: int, **changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "actor": "officer.an",
        "role": "police",
        "action": "plate_search",
        "target": {"plate": "30A-123.45", "n": n, "ratio": 0.1, "big": 1e20},
        "reason": "123/2025/QĐ-CA",
        "result_count": n,
        "client": "10.0.0.1",
    } | changes
    return AuditEntry(**fields)


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


async def _append_in_tx(dsn: str, entries: list[AuditEntry], commit: bool) -> list[int]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        seqs = [(await append_audit(conn, e)).seq for e in entries]
        await (conn.commit() if commit else conn.rollback())
    return seqs


async def _verify(dsn: str, since_seq: int | None = None) -> Any:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await verify_chain(conn, since_seq)


def test_appends_commit_or_roll_back_with_the_caller(dsn: str) -> None:
    assert asyncio.run(_append_in_tx(dsn, [entry(1), entry(2)], commit=True)) == [1, 2]
    assert asyncio.run(_append_in_tx(dsn, [entry(3)], commit=False)) == [3]
    # The rolled-back entry left no gap: seq comes from the head row, not a sequence.
    assert asyncio.run(_append_in_tx(dsn, [entry(3)], commit=True)) == [3]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT seq, prev_hash, hash, target FROM audit_log ORDER BY seq").fetchall()
        assert [r[0] for r in rows] == [1, 2, 3]
        assert rows[0][1] == GENESIS_HASH
        assert [r[1] for r in rows[1:]] == [r[2] for r in rows[:-1]]
        assert rows[2][3]["big"] == 100000000000000000000  # jsonb re-prints the number; the hash still holds
    report = asyncio.run(_verify(dsn))
    assert (report.ok, report.checked, report.last_seq) == (True, 3, 3)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET result_count = 0 WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 3",
        "TRUNCATE audit_log",
        "UPDATE audit_chain_head SET seq = 0, hash = repeat('0', 64)",
        "DELETE FROM audit_chain_head",
        "INSERT INTO audit_log (seq, time, actor, role, action, target, prev_hash, hash)"
        " VALUES (99, now(), 'x', '', 'forged', '{}', repeat('0', 64), repeat('1', 64))",
    ],
    ids=["update", "delete", "truncate", "rewind-head", "delete-head", "forged-insert"],
)
def test_history_cannot_be_changed_even_by_a_superuser(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.DatabaseError, match="audit_"):
        conn.execute(statement)
    assert asyncio.run(_verify(dsn)).ok


def test_tampering_with_triggers_disabled_is_found_at_its_seq(dsn: str) -> None:
    asyncio.run(_append_in_tx(dsn, [entry(n) for n in range(4, 9)], commit=True))
    with psycopg.connect(dsn, autocommit=True) as conn:
        original = conn.execute("SELECT result_count FROM audit_log WHERE seq = 6").fetchone()
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        try:
            conn.execute("UPDATE audit_log SET result_count = 0 WHERE seq = 6")
            report = asyncio.run(_verify(dsn))
            assert (report.ok, report.broken_seq, report.checked) == (False, 6, 5)
            assert "altered" in (report.problem or "")
            # A check that starts at 7 checks its link, entry 6, too; one starting at 8 is past the damage.
            assert asyncio.run(_verify(dsn, since_seq=7)).broken_seq == 6
            assert asyncio.run(_verify(dsn, since_seq=8)).ok
            conn.execute("DELETE FROM audit_log WHERE seq = 8")  # cut the tail: only the head shows it
            tail = asyncio.run(_verify(dsn, since_seq=8))
            assert (tail.ok, tail.broken_seq) == (False, 8)
        finally:
            conn.execute("UPDATE audit_log SET result_count = %s WHERE seq = 6", original)
            conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    with psycopg.connect(dsn) as conn:  # put entry 8 back as it was (same fields, same hash)
        conn.execute("ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_forward")
        conn.execute("UPDATE audit_chain_head SET seq = 7, hash = (SELECT hash FROM audit_log WHERE seq = 7)")
        conn.execute("ALTER TABLE audit_chain_head ENABLE TRIGGER audit_chain_head_forward")
    asyncio.run(_append_in_tx(dsn, [entry(8)], commit=True))
    assert asyncio.run(_verify(dsn)).ok


async def _concurrent(dsn: str, writers: int, each: int) -> list[int]:
    async def writer(w: int) -> list[int]:
        seqs = []
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for i in range(each):
                seqs.append((await append_audit(conn, entry(i, actor=f"writer.{w}"))).seq)
        return seqs

    results = await asyncio.gather(*(writer(w) for w in range(writers)))
    return [seq for seqs in results for seq in seqs]


def test_concurrent_appends_keep_one_chain(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        before = int(conn.execute("SELECT seq FROM audit_chain_head").fetchone()[0])  # type: ignore[index]
    seqs = asyncio.run(_concurrent(dsn, writers=8, each=25))
    assert sorted(seqs) == list(range(before + 1, before + 201))
    report = asyncio.run(_verify(dsn))
    assert (report.ok, report.last_seq) == (True, before + 200)


def test_cli_verify_export_and_offline_check(dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", dsn, "audit", "verify"]) == 0
    out = capsys.readouterr().out
    head_line = next(line for line in out.splitlines() if line.startswith("head "))
    anchor = head_line.split()[1]
    export = tmp_path / "audit.jsonl"
    assert main(["--database-url", dsn, "audit", "export", "--output", str(export)]) == 0
    lines = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["seq"] == 1
    assert set(lines[0]) == {"seq", "time", "actor", "role", "action", "target", "reason", "result_count", "client",
                             "prev_hash", "hash"}  # fmt: skip
    assert main(["audit", "verify", "--file", str(export)]) == 0
    assert main(["--database-url", dsn, "audit", "verify", "--anchor", anchor]) == 0

    lines[2]["reason"] = "sửa lý do"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    capsys.readouterr()
    assert main(["audit", "verify", "--file", str(export)]) == 1
    assert "BROKEN at seq 3" in capsys.readouterr().out
    seq = anchor.split(":")[0]
    assert main(["--database-url", dsn, "audit", "verify", "--anchor", f"{seq}:{'a' * 64}"]) == 1

    async def cli_reads() -> list[str]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            cursor = await conn.execute("SELECT action FROM audit_log WHERE actor LIKE 'cli:%%' ORDER BY seq")
            return [row[0] for row in await cursor.fetchall()]

    assert asyncio.run(cli_reads()) == ["audit_verify", "audit_export", "audit_verify", "audit_verify"]
    with psycopg.connect(dsn) as conn:
        head = asyncio.run(_head(dsn))
        assert head[0] == conn.execute("SELECT max(seq) FROM audit_log").fetchone()[0]  # type: ignore[index]


async def _head(dsn: str) -> tuple[int, str]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        return await chain_head(conn)
