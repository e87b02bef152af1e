"""What an audit entry says (``AuditEntry``) and what the log keeps of it (``AuditRecord``).

An entry answers who (``actor``, ``role``, ``client``), what (``action``, ``target``), why
(``reason``: for a police search, the case number) and how much (``result_count``). The record
adds where it sits in the chain (``seq``, ``prev_hash``), when it was written (``time``, from
the database clock under the chain lock, so times never go backwards along the chain) and its
``hash`` (see ``canonical``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from central_ingest.audit.canonical import CanonicalFormError, canonical_json, format_time, hash_fields

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
MAX_ACTOR_CHARS = 200
MAX_ROLE_CHARS = 100
MAX_REASON_CHARS = 2000
MAX_CLIENT_CHARS = 200
MAX_TARGET_BYTES = 64 * 1024
"""A target is a description (a query, a sha, a table and cutoff), never a payload."""


class AuditEntryError(ValueError):
    """An entry cannot be written as given; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str
    role: str
    action: str
    """e.g. "plate_search", "evidence_view", "retention_delete", "login_failed", "user_created"."""
    target: dict[str, Any]
    """What was acted on: the query, the evidence sha, the table and cutoff (JSON-like values only)."""
    reason: str | None
    result_count: int | None
    client: str | None = None

    def check(self) -> None:
        """Raise ``AuditEntryError`` unless every field fits the log (called by ``append_audit``)."""
        if not self.actor or len(self.actor) > MAX_ACTOR_CHARS:
            raise AuditEntryError(f"actor must be 1..{MAX_ACTOR_CHARS} characters")
        if len(self.role) > MAX_ROLE_CHARS:
            raise AuditEntryError(f"role must be at most {MAX_ROLE_CHARS} characters")
        if ACTION_PATTERN.fullmatch(self.action) is None:
            raise AuditEntryError(f"action {self.action!r} must match {ACTION_PATTERN.pattern}")
        if self.reason is not None and len(self.reason) > MAX_REASON_CHARS:
            raise AuditEntryError(f"reason must be at most {MAX_REASON_CHARS} characters")
        if self.client is not None and len(self.client) > MAX_CLIENT_CHARS:
            raise AuditEntryError(f"client must be at most {MAX_CLIENT_CHARS} characters")
        if self.result_count is not None and self.result_count < 0:
            raise AuditEntryError("result_count must be >= 0")
        if not isinstance(self.target, dict):
            raise AuditEntryError("target must be a JSON object (a dict)")
        try:
            size = len(canonical_json(self.target).encode("utf-8"))
        except CanonicalFormError as error:
            raise AuditEntryError(f"target: {error}") from error
        if size > MAX_TARGET_BYTES:
            raise AuditEntryError(f"target is {size} bytes; at most {MAX_TARGET_BYTES} (describe, do not copy)")
        for name, text in (("actor", self.actor), ("role", self.role), ("reason", self.reason or "")):
            if "\x00" in text:  # PostgreSQL text cannot hold NUL
                raise AuditEntryError(f"{name} must not contain NUL characters")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: dt.datetime
    hash_hex: str
    prev_hash: str
    actor: str
    role: str
    action: str
    target: dict[str, Any] = field(hash=False)
    reason: str | None
    result_count: int | None
    client: str | None

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers, in their canonical types (see ``canonical``)."""
        return {
            "seq": self.seq,
            "time": format_time(self.time),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "reason": self.reason,
            "result_count": self.result_count,
            "client": self.client,
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        """The hash this record's fields give now (equal to ``hash_hex`` unless it was altered)."""
        return hash_fields(self.hashed_fields())

    def as_json(self) -> dict[str, Any]:
        """The record as exported and served: the hashed fields plus ``hash``."""
        return {**self.hashed_fields(), "hash": self.hash_hex}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditRecord:
        """Read back ``as_json`` (an export line); ``ValueError`` when a field is missing or mistyped."""
        try:
            time = dt.datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
            target = data["target"]
            if not isinstance(target, dict):
                raise TypeError("target is not an object")
            count = data["result_count"]
            return cls(
                seq=int(data["seq"]),
                time=time,
                hash_hex=str(data["hash"]),
                prev_hash=str(data["prev_hash"]),
                actor=str(data["actor"]),
                role=str(data["role"]),
                action=str(data["action"]),
                target=target,
                reason=None if data["reason"] is None else str(data["reason"]),
                result_count=None if count is None else int(count),
                client=None if data["client"] is None else str(data["client"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not an audit record: {error}") from error
