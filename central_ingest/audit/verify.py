"""Recompute the chain and name the first broken link.

A record is sound when its seq follows the previous one's by exactly one, its ``prev_hash`` is
the previous record's ``hash``, and its ``hash`` is what its fields give (``canonical``). The
walk stops at the first failure and reports its seq and why, because every later link hangs on
it. The head row must then match the last record: a cut-off tail (rows deleted at the end) leaves
every remaining link sound, and only the head, or an anchor kept outside the database, shows it.
The head is read BEFORE the walk and the walk stops at it, so entries appended meanwhile (they
move the head in their own transaction) are neither missed nor mistaken for a broken end.

The same ``ChainVerifier`` checks the database (``verify_chain``) and an export file
(``verify_records``), so an auditor can check a copy without database access.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from central_ingest.audit.canonical import GENESIS_HASH, CanonicalFormError
from central_ingest.audit.entry import AuditRecord
from central_ingest.audit.log import AuditFilter, chain_head, iter_audit, record_at


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    """Records whose links were checked."""
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    broken_seq: int | None = None
    """The first seq whose link is broken (or, for a missing record, the seq that is missing)."""
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "broken_seq": self.broken_seq,
            "problem": self.problem,
        }


class ChainVerifier:
    """Feed records in seq order; ``report()`` says whether the chain holds so far."""

    def __init__(self, start_seq: int = 1, start_prev_hash: str = GENESIS_HASH) -> None:
        self._expected_seq = start_seq
        self._prev_hash = start_prev_hash
        self._checked = 0
        self._first: int | None = None
        self._broken: tuple[int, str] | None = None

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def feed(self, record: AuditRecord) -> bool:
        """Check one record; False once the chain is broken (later records are then ignored)."""
        if self._broken is not None:
            return False
        problem = self._problem(record)
        if problem is not None:
            self._broken = (min(record.seq, self._expected_seq), problem)
            return False
        if self._first is None:
            self._first = record.seq
        self._checked += 1
        self._expected_seq = record.seq + 1
        self._prev_hash = record.hash_hex
        return True

    def _problem(self, record: AuditRecord) -> str | None:
        if record.seq != self._expected_seq:
            return f"seq {self._expected_seq} expected, found {record.seq}: entries missing or reordered"
        if record.prev_hash != self._prev_hash:
            return f"seq {record.seq}: prev_hash does not match the hash of entry {record.seq - 1}"
        try:
            computed = record.computed_hash()
        except CanonicalFormError as error:
            return f"seq {record.seq}: fields have no canonical form ({error})"
        if computed != record.hash_hex:
            return f"seq {record.seq}: hash does not match its fields (the entry was altered)"
        return None

    def check_head(self, head_seq: int, head_hash: str) -> None:
        """Compare the end of the walk with the head row (or an anchor) that says where the chain ends."""
        if self._broken is not None:
            return
        last_seq = self._expected_seq - 1
        if head_seq > last_seq:
            self._broken = (last_seq + 1, f"the head says {head_seq} entries but the log ends at {last_seq}")
        elif head_seq < last_seq:
            self._broken = (head_seq + 1, f"entries after the head (seq {head_seq}) were not written by the chain")
        elif head_hash != self._prev_hash:
            self._broken = (head_seq, f"seq {head_seq}: hash differs from the head's")

    def report(self) -> ChainReport:
        last_seq = self._expected_seq - 1 if self._checked else None
        last_hash = self._prev_hash if self._checked else None
        if self._broken is None:
            return ChainReport(True, self._checked, self._first, last_seq, last_hash)
        seq, problem = self._broken
        return ChainReport(False, self._checked, self._first, last_seq, last_hash, seq, problem)


async def verify_chain(conn: AsyncConnection[Any], since_seq: int | None = None) -> ChainReport:
    """Walk the log from ``since_seq`` (default: the first entry) and check it against the head row.

    Starting later trusts the entry before ``since_seq`` as the link to build on (its own hash is
    checked too), which makes a routine check after an anchored one cheap.
    """
    head_seq, head_hash = await chain_head(conn)
    start_seq, start_hash = 1, GENESIS_HASH
    if since_seq is not None and since_seq > 1:
        anchor = await record_at(conn, since_seq - 1)
        if anchor is None:
            return ChainReport(False, 0, None, None, None, since_seq - 1, f"entry {since_seq - 1} is missing")
        verifier = ChainVerifier(anchor.seq, anchor.prev_hash)
        verifier.feed(anchor)
        if verifier.broken:
            return verifier.report()
        start_seq, start_hash = since_seq, anchor.hash_hex
    verifier = ChainVerifier(start_seq, start_hash)
    async for record in iter_audit(conn, AuditFilter(after_seq=start_seq - 1, max_seq=head_seq)):
        if not verifier.feed(record):
            break
    verifier.check_head(head_seq, head_hash)
    return verifier.report()


def verify_records(records: Iterable[AuditRecord], head: tuple[int, str] | None = None) -> ChainReport:
    """Check records (e.g. an export) from their first seq; ``head`` (seq, hash) checks where they end."""
    verifier: ChainVerifier | None = None
    for record in records:
        if verifier is None:
            start_hash = GENESIS_HASH if record.seq == 1 else record.prev_hash
            verifier = ChainVerifier(record.seq, start_hash)
        if not verifier.feed(record):
            break
    if verifier is None:
        verifier = ChainVerifier()
    if head is not None:
        verifier.check_head(*head)
    return verifier.report()
