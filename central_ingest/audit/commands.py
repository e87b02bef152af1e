"""``central-ingest audit ...``: check the hash chain, export the log.

    central-ingest audit verify [--since-seq N] [--anchor SEQ:HASH]   # exit 1 when the chain is broken
    central-ingest audit verify --file EXPORT.jsonl                   # check an export, no database needed
    central-ingest audit export [--since-seq N] [--output FILE]       # JSON Lines, one entry a line

``verify`` prints the head (last seq and hash): keep that line somewhere the database's
administrators cannot rewrite (a ticket, a signed mail, a WORM bucket). Passing it back later as
``--anchor`` proves the history up to it is unchanged, even against someone able to rewrite the
whole chain and its head. Reading the log from the CLI is audited (``audit_verify``,
``audit_export``) like an auditor's reads over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import psycopg

from central_ingest.audit.entry import AuditEntry, AuditRecord
from central_ingest.audit.log import AuditFilter, append_audit, iter_audit, record_at
from central_ingest.audit.verify import ChainReport, verify_chain, verify_records
from central_ingest.settings import Settings

ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def add_audit_parser(commands: Any) -> None:
    """Add the ``audit`` command group to the CLI's subparsers."""
    audit = commands.add_parser("audit", help="the audit log: verify the hash chain, export it")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser("verify", help="recompute the hash chain; exit code 1 when it is broken")
    verify.add_argument("--since-seq", type=int, help="start at this seq, trusting the entry before it")
    verify.add_argument("--anchor", help="SEQ:HASH printed by an earlier verify: check that entry is unchanged")
    verify.add_argument("--file", type=Path, help="verify an export (JSON Lines) instead of the database")
    export = sub.add_parser("export", help="write the log as JSON Lines (every field and hash)")
    export.add_argument("--since-seq", type=int, help="first seq to export (default 1)")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")


def _cli_entry(action: str, target: dict[str, Any], count: int) -> AuditEntry:
    """The audit entry of a CLI read of the log (the operator is named by their OS account)."""
    return AuditEntry(f"cli:{getpass.getuser()}", "cli", action, target, None, count, "cli")


def _print_report(report: ChainReport) -> None:
    if report.ok:
        print(f"audit chain OK: {report.checked} entries checked (seq {report.first_seq}..{report.last_seq})")
        if report.last_seq is not None:
            print(f"head {report.last_seq}:{report.last_hash}")
    else:
        print(f"audit chain BROKEN at seq {report.broken_seq}: {report.problem}")
        print(f"{report.checked} entries checked before it")


def _lines(path: Path) -> Iterator[AuditRecord]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield AuditRecord.from_json(json.loads(line))
            except (json.JSONDecodeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: {error}") from error


async def _check_anchor(conn: psycopg.AsyncConnection[Any], anchor: str) -> str | None:
    match = ANCHOR.fullmatch(anchor)
    if match is None:
        raise ValueError("--anchor must be SEQ:HASH as printed by verify (64 lower-case hex digits)")
    record = await record_at(conn, int(match[1]))
    if record is None:
        return f"anchor entry {match[1]} is missing"
    return None if record.hash_hex == match[2] else f"anchor entry {match[1]} has another hash: history was rewritten"


async def _verify(settings: Settings, args: argparse.Namespace) -> int:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        report = await verify_chain(conn, args.since_seq)
        anchor_problem = await _check_anchor(conn, args.anchor) if args.anchor else None
        target = {"since_seq": args.since_seq, "anchor": args.anchor, "ok": report.ok and anchor_problem is None}
        await append_audit(conn, _cli_entry("audit_verify", target, report.checked))
    _print_report(report)
    if anchor_problem is not None:
        print(f"audit chain BROKEN: {anchor_problem}")
    return 0 if report.ok and anchor_problem is None else 1


async def _export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    count = 0
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        after = None if args.since_seq is None else args.since_seq - 1
        async for record in iter_audit(conn, AuditFilter(after_seq=after)):
            out.write(json.dumps(record.as_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
        target = {"since_seq": args.since_seq, "output": str(args.output) if args.output else "stdout"}
        await append_audit(conn, _cli_entry("audit_export", target, count))
    print(f"exported {count} audit entries", file=sys.stderr)
    return 0


def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    """Run an ``audit`` command: 0 done (chain intact), 1 chain broken or the command failed."""
    try:
        if args.audit_command == "verify" and args.file is not None:
            report = verify_records(_lines(args.file))
            _print_report(report)
            return 0 if report.ok else 1
        if args.audit_command == "verify":
            return asyncio.run(_verify(settings, args))
        if args.output is None:
            return asyncio.run(_export(settings, args, sys.stdout))
        with args.output.open("w", encoding="utf-8") as out:
            return asyncio.run(_export(settings, args, out))
    except (OSError, ValueError) as error:
        print(f"central-ingest: {error}", file=sys.stderr)
        return 1
