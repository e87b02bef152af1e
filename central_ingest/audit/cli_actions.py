"""Audit entries for administrators' command-line actions that change who sees what or who may send.

``central-ingest cameras import`` (the site registry decides every user's area scope) and ``agent add|revoke``
(who may send events) run on a plain connection; each writes one entry after its change has committed, naming
the operating-system user as ``cli:<user>`` like the user commands do. The change and its entry are two
transactions: if the entry cannot be written the command fails loudly (exit 1) so the administrator knows the
log misses it; the change itself stays.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Any

import psycopg

from central_ingest.audit.entry import AuditEntry
from central_ingest.audit.log import append_audit

CLI_ROLE = "cli"


def cli_actor() -> str:
    """``cli:<operating-system user>``: who ran the command."""
    return f"cli:{getpass.getuser()}"


def audit_cli_action(database_url: str, action: str, target: dict[str, Any]) -> int:
    """Append the entry of one CLI action; its sequence number."""

    async def write() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            entry = AuditEntry(
                actor=cli_actor(),
                role=CLI_ROLE,
                action=action,
                target=target,
                reason=None,
                result_count=None,
                client=CLI_ROLE,
            )
            return (await append_audit(conn, entry)).seq

    return asyncio.run(write())
