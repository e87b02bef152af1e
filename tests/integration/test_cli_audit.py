"""Administrators' CLI actions that decide who may send events are in the audit log: agent add, rotate, revoke."""

from __future__ import annotations

import psycopg
import pytest

from central_ingest.cli import main
from central_ingest.store.migrate import apply_migrations

pytestmark = pytest.mark.integration


def test_agent_token_changes_are_audited(pg_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    apply_migrations(pg_dsn)
    for command in (["add", "edge-audit-1"], ["add", "edge-audit-1", "--rotate"], ["revoke", "edge-audit-1"]):
        assert main(["--database-url", pg_dsn, "agent", *command]) == 0
    token = capsys.readouterr().out.split()[0]
    with psycopg.connect(pg_dsn) as conn:
        entries = conn.execute(
            "SELECT action, target, role FROM audit_log WHERE target->>'agent_id' = 'edge-audit-1' ORDER BY seq"
        ).fetchall()
    assert [(action, target, role) for action, target, role in entries] == [
        ("agent_added", {"agent_id": "edge-audit-1"}, "cli"),
        ("agent_token_rotated", {"agent_id": "edge-audit-1"}, "cli"),
        ("agent_revoked", {"agent_id": "edge-audit-1"}, "cli"),
    ]
    assert token not in str(entries)  # the token itself is never logged
