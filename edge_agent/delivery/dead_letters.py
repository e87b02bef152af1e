"""The edge's dead-letter store: refused inputs (bad sensor payloads, events central refused) kept with their bytes.

A ``DeadLetterSink`` (``ioc_common.dead_letter``) on one SQLite file in WAL mode, with the spool's
robustness (``sqlite_files``): ``keep_many`` commits a batch in one transaction and returns only once it
is durable, so the MQTT subscriber acknowledges a bad message only after it was kept. When the disk
refuses the write (full, I/O error) ``keep_many`` raises ``DeadLetterUnavailableError`` (counted), so the
caller does not acknowledge what it could not keep; a degraded store tries the disk again at most every
``recheck_disk_s`` and raises at once in between. A corrupt file is moved aside to
``<name>.corrupt-<UTC time>``, a fresh store is created and the readable letters are salvaged into it.

Bounded: a raw input longer than ``max_raw_bytes`` is cut and marked ``truncated``; a reason longer than
``MAX_REASON_CHARS`` is cut too; when the stored letters exceed ``max_bytes`` the OLDEST are deleted
(``evicted``, counted). The counters ``kept`` (by code) and ``evicted`` are persisted, so they keep
counting across restarts.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.delivery.sqlite_files import (
    StorageState,
    StorageUnavailableError,
    StoreSchema,
    rollback_quietly,
    salvage_rows,
)
from edge_agent.delivery.sqlite_store import RecoveringSqliteStore, utcnow
from ioc_common.dead_letter import DeadLetter, DeadLetterCode

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB

MAX_REASON_CHARS = 4000
"""A reason is a sentence naming a field and a value; anything longer is cut (and ends with an ellipsis)."""

_CODES: frozenset[str] = frozenset(get_args(DeadLetterCode))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_EVICT_CHUNK = 500

_COLUMNS = ("id", "source", "code", "reason", "raw", "received_us", "topic", "sensor_id", "truncated", "nbytes")
_DDL = (
    """
CREATE TABLE IF NOT EXISTS letters (
    id INTEGER PRIMARY KEY,       -- arrival order; recent() is newest first
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL,            -- the input as received, at most max_raw_bytes
    received_us INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    topic TEXT,
    sensor_id TEXT,
    truncated INTEGER NOT NULL,   -- 1 when raw was cut
    nbytes INTEGER NOT NULL       -- what this letter counts against max_bytes
)""",
    "CREATE INDEX IF NOT EXISTS letters_by_code ON letters (code)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_INSERT = f"INSERT INTO letters ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_EVICTED = "evicted"
_KEPT_PREFIX = "kept:"


def _salvage(src: sqlite3.Connection, dst: sqlite3.Connection) -> int:
    """Copy the readable letters (same ids) and counters of a damaged store into a fresh one."""
    letters = [
        row
        for row in salvage_rows(src, "letters", _COLUMNS, "id")
        if isinstance(row[0], int) and isinstance(row[4], bytes) and isinstance(row[9], int)
    ]
    counters = [
        row
        for row in salvage_rows(src, "counters", ("name", "value"), "rowid")
        if isinstance(row[0], str) and isinstance(row[1], int)
    ]
    dst.execute("BEGIN IMMEDIATE")
    try:
        dst.executemany(_INSERT.replace("INSERT", "INSERT OR IGNORE", 1), letters)
        dst.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", counters)
        dst.execute("COMMIT")
    except BaseException:
        rollback_quietly(dst)
        raise
    return len(letters)


SCHEMA = StoreSchema(
    version=1,
    ddl=_DDL,
    tables={"letters": _COLUMNS, "counters": ("name", "value")},
    salvage=_salvage,
)


class DeadLetterConfig(BaseModel):
    """Where refused inputs are kept and how much of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(
        default=Path("dead_letters.sqlite"),
        description="SQLite file of the store (its -wal and -shm sit beside it); a relative path is inside the "
        "agent's state_dir. Parent directories are created.",
    )
    max_bytes: int = Field(
        default=64 * MIB,
        ge=64 * KIB,
        description="Cap on stored letters (raw bytes + reason + topic + ids); over it the oldest are deleted, "
        "counted as evicted.",
    )
    max_raw_bytes: int = Field(
        default=64 * KIB,
        ge=256,
        description="A raw input longer than this is cut to it and marked truncated (a flood of huge payloads "
        "cannot fill the store with a few letters).",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: a kept letter survives a power cut once keep_many returns; normal: the last ones "
        "before a power cut may be lost.",
    )
    recheck_disk_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="How often a store whose disk failed tries it again; in between keep_many raises at once.",
    )
    integrity_check_on_open: bool = Field(
        default=True, description="Run PRAGMA quick_check when the store opens (a damaged file is quarantined)."
    )
    keep_quarantined: int = Field(
        default=2, ge=0, le=100, description="Quarantined corrupt files kept for inspection; older ones are deleted."
    )

    @model_validator(mode="after")
    def _raw_fits(self) -> DeadLetterConfig:
        if self.max_raw_bytes > self.max_bytes:
            raise ValueError(f"max_raw_bytes ({self.max_raw_bytes}) must not exceed max_bytes ({self.max_bytes})")
        return self


@dataclass(frozen=True)
class StoredDeadLetter:
    """A kept letter and its id in the store (ids grow: a larger id was kept later)."""

    id: int
    letter: DeadLetter


@dataclass(frozen=True)
class DeadLetterStats:
    """Counters for health events and /metrics; JSON-able via ``dataclasses.asdict``."""

    kept: int
    """Letters kept, ever (persisted)."""
    by_code: dict[str, int]
    """Letters kept by code, ever (persisted)."""
    evicted: int
    """Letters deleted, oldest first, to stay under max_bytes, ever (persisted)."""
    stored_now: int
    stored_bytes: int
    truncated: int
    """Letters whose raw input was cut to max_raw_bytes since the store opened."""
    failed: int
    """Letters keep_many could not keep (it raised) since the store opened."""
    disk_errors: int
    state: StorageState
    last_error: str | None
    corrupt_recoveries: int
    salvaged: int
    quarantined_files: tuple[str, ...]


class DeadLetterUnavailableError(StorageUnavailableError):
    """``keep_many`` could not make the letters durable; the caller must not acknowledge their inputs."""


class DeadLetterStoreClosedError(RuntimeError):
    """The store was used after ``close()``."""


def _to_us(moment: dt.datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return (aware - _EPOCH) // _MICROSECOND


class DeadLetterStore(RecoveringSqliteStore[DeadLetterConfig]):
    """Durable, bounded, counted store of refused inputs; implements ``DeadLetterSink``."""

    _schema = SCHEMA
    _name = "dead-letter store"
    _corrupt_name = "store"
    _closed_error = DeadLetterStoreClosedError
    _log = log

    def __init__(
        self,
        config: DeadLetterConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        super().__init__(config, clock=clock, wall_clock=wall_clock)
        self._counters: dict[str, int] = {}
        self._stored_now = 0
        self._stored_bytes = 0
        self._truncated = 0
        self._failed = 0
        self._start()

    def keep(self, letter: DeadLetter) -> None:
        self.keep_many([letter])

    def keep_many(self, letters: Sequence[DeadLetter]) -> None:
        """Keep ``letters`` in one transaction, durable on return; raises ``DeadLetterUnavailableError`` if not."""
        if not letters:
            return
        rows = [self._row(letter) for letter in letters]
        cut = sum(len(letter.raw) > self._config.max_raw_bytes for letter in letters)
        with self._lock:
            self._truncated += cut
            self._require_open()
            if self._write_due():
                done = self._attempt(lambda conn: self._keep_tx(conn, rows), write=True)
                if done is not None:
                    return
            self._failed += len(letters)
            raise DeadLetterUnavailableError(
                f"dead-letter store {self._config.path} cannot commit to disk ({self._state}: {self._last_error}); "
                f"{len(letters)} letters not kept"
            )

    def recent(self, limit: int = 100, *, code: str | None = None) -> list[StoredDeadLetter]:
        """The newest ``limit`` letters (of one ``code`` if given), newest first."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if code is not None and code not in _CODES:
            raise ValueError(f"unknown dead-letter code {code!r}; known: {sorted(_CODES)}")
        query = f"SELECT {', '.join(_COLUMNS)} FROM letters"
        params: tuple[object, ...] = (limit,)
        if code is not None:
            query += " WHERE code = ?"
            params = (code, limit)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            self._require_open()
            rows = self._attempt(lambda conn: conn.execute(query, params).fetchall(), write=False)
        if rows is None:
            raise DeadLetterUnavailableError(
                f"dead-letter store {self._config.path} cannot be read: {self._last_error}"
            )
        return [self._stored(row) for row in rows]

    def stats(self) -> DeadLetterStats:
        with self._lock:
            by_code = {
                name.removeprefix(_KEPT_PREFIX): value
                for name, value in sorted(self._counters.items())
                if name.startswith(_KEPT_PREFIX)
            }
            return DeadLetterStats(
                kept=sum(by_code.values()),
                by_code=by_code,
                evicted=self._counters.get(_EVICTED, 0),
                stored_now=self._stored_now,
                stored_bytes=self._stored_bytes,
                truncated=self._truncated,
                failed=self._failed,
                disk_errors=self._disk_errors,
                state=self._state,
                last_error=self._last_error,
                corrupt_recoveries=self._corrupt_recoveries,
                salvaged=self._salvaged,
                quarantined_files=tuple(self._quarantined),
            )

    # ----------------------------------------------------------------- rows

    def _row(self, letter: DeadLetter) -> tuple[object, ...]:
        """The letter as a table row, raw cut to ``max_raw_bytes`` and reason to ``MAX_REASON_CHARS``."""
        raw = letter.raw
        truncated = letter.truncated or len(raw) > self._config.max_raw_bytes
        raw = raw[: self._config.max_raw_bytes]
        reason = (
            letter.reason if len(letter.reason) <= MAX_REASON_CHARS else letter.reason[: MAX_REASON_CHARS - 1] + "…"
        )
        size = len(raw) + sum(
            len(text.encode()) for text in (letter.source, reason, letter.topic or "", letter.sensor_id or "")
        )
        return (
            None,
            letter.source,
            letter.code,
            reason,
            raw,
            _to_us(letter.received_at),
            letter.topic,
            letter.sensor_id,
            int(truncated),
            size,
        )

    @staticmethod
    def _stored(row: tuple[object, ...]) -> StoredDeadLetter:
        id_, source, code, reason, raw, received_us, topic, sensor_id, truncated, _ = row
        return StoredDeadLetter(
            id=cast(int, id_),
            letter=DeadLetter(
                source=str(source),
                code=cast(DeadLetterCode, code),
                reason=str(reason),
                raw=cast(bytes, raw),
                received_at=_EPOCH + cast(int, received_us) * _MICROSECOND,
                topic=cast("str | None", topic),
                sensor_id=cast("str | None", sensor_id),
                truncated=bool(truncated),
            ),
        )

    def _keep_tx(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> bool:
        """Insert, evict the oldest over the cap, save counters: one transaction; memory updated after COMMIT."""
        counters = dict(self._counters)
        for row in rows:
            name = f"{_KEPT_PREFIX}{row[2]}"
            counters[name] = counters.get(name, 0) + 1
        added = sum(cast(int, row[9]) for row in rows)
        stored_now = self._stored_now + len(rows)
        stored_bytes = self._stored_bytes + added
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, rows)
            after = 0
            while stored_bytes > self._config.max_bytes:
                oldest = conn.execute(
                    "SELECT id, nbytes FROM letters WHERE id > ? ORDER BY id LIMIT ?", (after, _EVICT_CHUNK)
                ).fetchall()
                if not oldest:
                    break
                doomed: list[int] = []
                for id_, size in oldest:
                    if stored_bytes <= self._config.max_bytes:
                        break
                    doomed.append(id_)
                    stored_bytes -= size
                    stored_now -= 1
                    after = id_
                conn.execute(f"DELETE FROM letters WHERE id IN ({','.join('?' * len(doomed))})", doomed)
                counters[_EVICTED] = counters.get(_EVICTED, 0) + len(doomed)
            changed = [(name, value) for name, value in counters.items() if self._counters.get(name) != value]
            conn.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                changed,
            )
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        if counters.get(_EVICTED, 0) != self._counters.get(_EVICTED, 0):
            log.warning(
                "dead-letter store over its %d-byte cap: evicted %d oldest letters",
                self._config.max_bytes,
                counters[_EVICTED] - self._counters.get(_EVICTED, 0),
            )
        self._counters = counters
        self._stored_now = stored_now
        self._stored_bytes = stored_bytes
        return True

    # ----------------------------------------------------------------- loading

    def _load(self, conn: sqlite3.Connection) -> None:
        count, size = conn.execute("SELECT count(*), total(nbytes) FROM letters").fetchone()
        loaded = {str(name): int(value) for name, value in conn.execute("SELECT name, value FROM counters")}
        # Counts this process knew but a salvaged file lost are written back by the next keep_many.
        for name, value in self._counters.items():
            loaded[name] = max(value, loaded.get(name, 0))
        self._counters = loaded
        self._stored_now = int(count)
        self._stored_bytes = int(size)

    def _log_disk_back(self, was: StorageState) -> None:
        """The dead-letter store's wording has never named the previous state; kept for log searches."""
        log.warning("dead-letter store %s: the disk takes writes again", self._config.path)
