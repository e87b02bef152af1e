"""The edge's evidence store: JPEG keyframes named by their SHA-256, a byte cap, an age limit, an upload list.

Files live in ``<dir>/<sha256>.jpg`` (written to a temporary name, then renamed: a reader never sees half
a picture); the name is the digest, so the same picture is stored once and central can check what it
receives. ``<dir>/index.sqlite`` (WAL, the spool's recovery rules through ``RecoveringSqliteStore``)
holds one row per file (size, when stored, what for), the bounded list of keyframes waiting for upload
and the persisted counters. The files are the truth: at every open the index is reconciled with the
directory (a file the index lost is added back, a row whose file vanished is dropped), so a damaged
index is quarantined and rebuilt without losing a picture.

Bounds, all counted: total bytes over ``max_bytes`` delete the OLDEST files first (``evicted``); files
older than ``max_age_days`` are deleted by ``prune`` (``expired``); the upload list holds at most
``pending_max`` (oldest dropped from the list, ``pending_dropped``). A keyframe that cannot be written
(disk full) is counted in ``write_errors`` and ``put`` returns None: the caller still sends its event,
without that evidence reference.

Central may ask for keyframes the policy kept here (an officer's request, carried by a ``BatchAck``):
``mark_wanted`` puts them at the FRONT of the upload list, whatever the policy, and remembers them in
the ``requested`` table (a subset of the list, so bounded by it) until they leave it; the list's
drop_oldest never drops a requested one. Digests this store does not hold are counted
(``requested_missing``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_agent.delivery.sqlite_files import StoreSchema, rollback_quietly, salvage_rows
from edge_agent.delivery.sqlite_store import RecoveringSqliteStore, utcnow
from edge_agent.evidence.config import EvidenceConfig, EvidencePurpose, should_upload
from event_contract.evidence import EvidenceRef

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite"
URI_PREFIX = "evidence/"
"""Evidence references name files relative to the agent (``evidence/<sha256>.jpg``); opaque to central."""
_SHA_FILE = re.compile(r"^([0-9a-f]{64})\.jpg$")
_SHA_HEX = re.compile(r"[0-9a-f]{64}")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_COUNTER_NAMES = (
    "stored",
    "evicted",
    "expired",
    "uploaded",
    "refused",
    "pending_dropped",
    "requested",
    "requested_missing",
    "requested_uploaded",
)

_DDL = (
    """
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,      -- hex digest = file name without .jpg
    nbytes INTEGER NOT NULL,
    stored_us INTEGER NOT NULL,   -- wall clock when stored, microseconds since the Unix epoch (UTC)
    purpose TEXT NOT NULL         -- violation | plate_pass | timelapse
)""",
    "CREATE INDEX IF NOT EXISTS files_by_age ON files (stored_us)",
    """
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY,      -- upload order: oldest first
    sha256 TEXT NOT NULL UNIQUE,
    attempts INTEGER NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Added after version 1 shipped: IF NOT EXISTS adds it to older files at open (same version, a new table).
    """
CREATE TABLE IF NOT EXISTS requested (
    sha256 TEXT PRIMARY KEY,      -- on the upload list because central asked for it
    requested_us INTEGER NOT NULL
)""",
)
_FILE_COLUMNS = ("sha256", "nbytes", "stored_us", "purpose")
_PENDING_COLUMNS = ("seq", "sha256", "attempts")
_REQUESTED_COLUMNS = ("sha256", "requested_us")


def _salvage(src: sqlite3.Connection, dst: sqlite3.Connection) -> int:
    """Copy the readable rows of a damaged index into a fresh one (the files are rescanned after)."""
    files = [row for row in salvage_rows(src, "files", _FILE_COLUMNS, "rowid") if isinstance(row[0], str)]
    pending = [row for row in salvage_rows(src, "pending", _PENDING_COLUMNS, "seq") if isinstance(row[1], str)]
    counters = [row for row in salvage_rows(src, "counters", ("name", "value"), "rowid") if isinstance(row[1], int)]
    requested = [row for row in salvage_rows(src, "requested", _REQUESTED_COLUMNS, "rowid") if isinstance(row[0], str)]
    dst.execute("BEGIN IMMEDIATE")
    try:
        dst.executemany("INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)", files)
        dst.executemany("INSERT OR IGNORE INTO pending VALUES (?, ?, ?)", pending)
        dst.executemany("INSERT OR IGNORE INTO requested VALUES (?, ?)", requested)
        dst.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?)", counters)
        dst.execute("COMMIT")
    except BaseException:
        rollback_quietly(dst)
        raise
    return len(files) + len(pending)


SCHEMA = StoreSchema(
    version=1,
    ddl=_DDL,
    tables={
        "files": _FILE_COLUMNS,
        "pending": _PENDING_COLUMNS,
        "counters": ("name", "value"),
        "requested": _REQUESTED_COLUMNS,
    },
    salvage=_salvage,
)


@dataclass(frozen=True, slots=True)
class _IndexSettings:
    """What ``RecoveringSqliteStore`` reads, taken from ``EvidenceConfig`` with the index's own path."""

    path: Path
    synchronous: Literal["full", "normal"]
    integrity_check_on_open: bool
    keep_quarantined: int
    recheck_disk_s: float


@dataclass(frozen=True, slots=True)
class WantedOutcome:
    """What ``mark_wanted`` did with central's digests."""

    marked: int
    """Newly put on (or moved to the front of) the upload list as requested."""
    already: int
    """Already requested and waiting: left as they were."""
    missing: int
    """Not held here: counted in ``requested_missing``."""


@dataclass(frozen=True, slots=True)
class EvidenceStats:
    """Counters for the status file, health and /metrics; JSON-able via ``dataclasses.asdict``."""

    files: int
    bytes: int
    pending: int
    stored: int
    """Keyframes stored, ever (persisted); the same picture twice counts once."""
    evicted: int
    """Files deleted, oldest first, to stay under max_bytes (persisted)."""
    expired: int
    """Files deleted for being older than max_age_days (persisted)."""
    uploaded: int
    refused: int
    """Uploads central refused for good (4xx other than the retried ones); the file is kept (persisted)."""
    pending_dropped: int
    """Keyframes that left the upload list because it was full (drop_oldest; persisted)."""
    requested: int
    """Keyframes central asked for (an officer's request) and this store put on the upload list (persisted)."""
    requested_missing: int
    """Digests central asked for that this store does not hold (never stored, evicted, expired; persisted)."""
    requested_uploaded: int
    """Requested keyframes central has stored since (persisted)."""
    requested_pending: int
    """Requested keyframes still on the upload list."""
    write_errors: int
    """Keyframes that could not be written (disk full, I/O error) since the store opened."""
    state: str
    last_error: str | None


def _to_us(moment: dt.datetime) -> int:
    return (moment.astimezone(dt.UTC) - _EPOCH) // _MICROSECOND


def file_uri(sha256: str) -> str:
    """The agent-relative URI of a keyframe, as carried by ``EvidenceRef.uri``."""
    return f"{URI_PREFIX}{sha256}.jpg"


class EvidenceStore(RecoveringSqliteStore[_IndexSettings]):
    """Thread-safe: the analytics threads ``put``, the uploader reads the upload list, anyone reads ``stats``."""

    _schema = SCHEMA
    _name = "evidence index"
    _corrupt_name = "evidence index"
    _closed_error = RuntimeError
    _log = log

    def __init__(
        self,
        config: EvidenceConfig,
        directory: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        settings = _IndexSettings(
            path=directory / INDEX_NAME,
            synchronous=config.synchronous,
            integrity_check_on_open=config.integrity_check_on_open,
            keep_quarantined=config.keep_quarantined,
            recheck_disk_s=config.recheck_disk_s,
        )
        super().__init__(settings, clock=clock, wall_clock=wall_clock)
        self.config = config
        self.directory = directory
        self._counters: dict[str, int] = {}
        self._files = 0
        self._bytes = 0
        self._pending = 0
        self._requested_pending = 0
        self._write_errors = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._start()

    # ----------------------------------------------------------------- writing

    def put(self, jpeg: bytes, *, time: dt.datetime | None, purpose: EvidencePurpose) -> EvidenceRef | None:
        """Store one JPEG; its reference, or None when the disk refused it (counted in ``write_errors``)."""
        sha = hashlib.sha256(jpeg).hexdigest()
        path = self.path_of(sha)
        try:
            if not path.exists():
                temporary = path.with_name(f".{sha}.tmp")
                temporary.write_bytes(jpeg)
                os.replace(temporary, path)
        except OSError as error:
            with self._lock:
                self._write_errors += 1
                self._last_error = f"cannot write keyframe {path}: {error}"
            log.error("evidence: cannot write keyframe %s: %s", path, error)
            return None
        stored_us = _to_us(self._wall_clock())
        upload = should_upload(self.config.upload, purpose)
        with self._lock:
            self._require_open()
            doomed = self._attempt(
                lambda conn: self._put_tx(conn, sha, len(jpeg), stored_us=stored_us, purpose=purpose, upload=upload),
                write=True,
            )
        self._delete_files(doomed or [])
        return EvidenceRef(kind="keyframe", uri=file_uri(sha), time=time, sha256=sha)

    def prune(self, now: dt.datetime | None = None) -> int:
        """Delete files older than ``max_age_days``; how many went."""
        cutoff = _to_us((now or self._wall_clock()) - dt.timedelta(days=self.config.max_age_days))
        with self._lock:
            self._require_open()
            doomed = self._attempt(
                lambda conn: self._delete_tx(conn, "stored_us < ?", (cutoff,), "expired"), write=True
            )
        self._delete_files(doomed or [])
        return len(doomed or [])

    # ----------------------------------------------------------------- the upload list

    def pending(self, limit: int = 16) -> list[str]:
        """Digests waiting for upload, oldest first."""
        with self._lock:
            self._require_open()
            rows = self._attempt(
                lambda conn: conn.execute("SELECT sha256 FROM pending ORDER BY seq LIMIT ?", (limit,)).fetchall(),
                write=False,
            )
        return [str(row[0]) for row in rows or []]

    def mark_wanted(self, digests: Sequence[str]) -> WantedOutcome:
        """Central asked for these keyframes: put the ones held here at the front of the upload list.

        Idempotent (an ack seen twice changes nothing); digests that are not hex SHA-256 count as missing.
        """
        wanted = list(dict.fromkeys(digests))
        valid = [sha for sha in wanted if _SHA_HEX.fullmatch(sha)]
        now_us = _to_us(self._wall_clock())
        with self._lock:
            self._require_open()
            outcome = self._attempt(lambda conn: self._wanted_tx(conn, valid, now_us, len(wanted)), write=True)
        if outcome is None:  # the index's disk failed: nothing marked; central asks again later
            return WantedOutcome(0, 0, 0)
        if outcome.missing:
            log.warning("evidence: central asked for %d keyframes this agent does not hold", outcome.missing)
        return outcome

    def mark_uploaded(self, sha256: str) -> None:
        """Central stored it: off the upload list."""
        self._finish_pending(sha256, "uploaded")

    def mark_refused(self, sha256: str) -> None:
        """Central refused it for good: off the upload list, the file kept for an operator."""
        self._finish_pending(sha256, "refused")

    def forget_pending(self, sha256: str) -> None:
        """Off the upload list without counting it uploaded or refused (its file is gone; the uploader counts it)."""
        self._finish_pending(sha256, None)

    def note_attempt(self, sha256: str) -> None:
        """One more failed try of ``sha256`` (kept on the list)."""
        with self._lock:
            self._require_open()
            self._attempt(
                lambda conn: conn.execute("UPDATE pending SET attempts = attempts + 1 WHERE sha256 = ?", (sha256,)),
                write=True,
            )

    def read(self, sha256: str) -> bytes | None:
        """The keyframe's bytes; None when it is gone (evicted, expired, deleted by hand)."""
        try:
            return self.path_of(sha256).read_bytes()
        except OSError:
            return None

    def path_of(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.directory / f"{sha256}.jpg"

    def stats(self) -> EvidenceStats:
        with self._lock:
            return EvidenceStats(
                files=self._files,
                bytes=self._bytes,
                pending=self._pending,
                requested_pending=self._requested_pending,
                write_errors=self._write_errors,
                state=self._state,
                last_error=self._last_error,
                **{name: self._counters.get(name, 0) for name in _COUNTER_NAMES},
            )

    # ----------------------------------------------------------------- transactions (lock held)

    def _put_tx(
        self, conn: sqlite3.Connection, sha: str, size: int, *, stored_us: int, purpose: str, upload: bool
    ) -> list[str]:
        counters = dict(self._counters)
        conn.execute("BEGIN IMMEDIATE")
        try:
            new = conn.execute("INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)", (sha, size, stored_us, purpose))
            added = new.rowcount == 1
            if added:
                counters["stored"] = counters.get("stored", 0) + 1
            if upload:
                conn.execute(
                    "INSERT OR IGNORE INTO pending (sha256, attempts) VALUES (?, 0)",
                    (sha,),
                )
            pending = int(conn.execute("SELECT count(*) FROM pending").fetchone()[0])
            over = pending - self.config.pending_max
            if over > 0:  # drop_oldest, never a keyframe an officer asked for
                dropped = conn.execute(
                    "DELETE FROM pending WHERE seq IN (SELECT seq FROM pending WHERE sha256 NOT IN "
                    "(SELECT sha256 FROM requested) ORDER BY seq LIMIT ?)",
                    (over,),
                ).rowcount
                counters["pending_dropped"] = counters.get("pending_dropped", 0) + dropped
            doomed: list[str] = []
            total = self._bytes + (size if added else 0)
            if total > self.config.max_bytes:
                rows = conn.execute(
                    "SELECT sha256, nbytes FROM files WHERE sha256 != ? ORDER BY stored_us, rowid", (sha,)
                ).fetchall()
                for old_sha, nbytes in rows:
                    if total <= self.config.max_bytes:
                        break
                    doomed.append(str(old_sha))
                    total -= int(nbytes)
                self._delete_rows(conn, doomed)
                counters["evicted"] = counters.get("evicted", 0) + len(doomed)
            self._save_counters(conn, counters)
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        if doomed:
            log.warning(
                "evidence over its %d-byte cap: evicted %d oldest keyframes", self.config.max_bytes, len(doomed)
            )
        self._counters = counters
        self._refresh(conn)
        return doomed

    def _delete_tx(self, conn: sqlite3.Connection, where: str, params: tuple[object, ...], counter: str) -> list[str]:
        counters = dict(self._counters)
        conn.execute("BEGIN IMMEDIATE")
        try:
            doomed = [str(row[0]) for row in conn.execute(f"SELECT sha256 FROM files WHERE {where}", params)]
            self._delete_rows(conn, doomed)
            counters[counter] = counters.get(counter, 0) + len(doomed)
            self._save_counters(conn, counters)
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        self._counters = counters
        self._refresh(conn)
        return doomed

    def _wanted_tx(self, conn: sqlite3.Connection, digests: list[str], now_us: int, asked: int) -> WantedOutcome:
        counters = dict(self._counters)
        marked = already = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sha in digests:
                if conn.execute("SELECT 1 FROM files WHERE sha256 = ?", (sha,)).fetchone() is None:
                    continue
                waiting = conn.execute("SELECT 1 FROM pending WHERE sha256 = ?", (sha,)).fetchone() is not None
                if waiting and conn.execute("SELECT 1 FROM requested WHERE sha256 = ?", (sha,)).fetchone():
                    already += 1
                    continue
                front = int(conn.execute("SELECT coalesce(min(seq), 1) - 1 FROM pending").fetchone()[0])
                if waiting:
                    conn.execute("UPDATE pending SET seq = ? WHERE sha256 = ?", (front, sha))
                else:
                    conn.execute("INSERT INTO pending (seq, sha256, attempts) VALUES (?, ?, 0)", (front, sha))
                conn.execute("INSERT OR REPLACE INTO requested VALUES (?, ?)", (sha, now_us))
                marked += 1
            missing = asked - marked - already
            counters["requested"] = counters.get("requested", 0) + marked
            counters["requested_missing"] = counters.get("requested_missing", 0) + missing
            self._save_counters(conn, counters)
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        self._counters = counters
        self._refresh(conn)
        return WantedOutcome(marked, already, missing)

    def _finish_pending(self, sha256: str, counter: str | None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            counters = dict(self._counters)
            conn.execute("BEGIN IMMEDIATE")
            try:
                gone = conn.execute("DELETE FROM pending WHERE sha256 = ?", (sha256,)).rowcount
                was_requested = conn.execute("DELETE FROM requested WHERE sha256 = ?", (sha256,)).rowcount
                if counter is not None:
                    counters[counter] = counters.get(counter, 0) + gone
                if counter == "uploaded" and was_requested:
                    counters["requested_uploaded"] = counters.get("requested_uploaded", 0) + was_requested
                self._save_counters(conn, counters)
                conn.execute("COMMIT")
            except BaseException:
                rollback_quietly(conn)
                raise
            self._counters = counters
            self._refresh(conn)

        with self._lock:
            self._require_open()
            self._attempt(work, write=True)

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, shas: list[str]) -> None:
        for start in range(0, len(shas), 500):
            chunk = shas[start : start + 500]
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM files WHERE sha256 IN ({marks})", chunk)
            conn.execute(f"DELETE FROM pending WHERE sha256 IN ({marks})", chunk)
            conn.execute(f"DELETE FROM requested WHERE sha256 IN ({marks})", chunk)

    def _save_counters(self, conn: sqlite3.Connection, counters: dict[str, int]) -> None:
        changed = [(name, value) for name, value in counters.items() if self._counters.get(name) != value]
        conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            changed,
        )

    def _refresh(self, conn: sqlite3.Connection) -> None:
        files, size = conn.execute("SELECT count(*), total(nbytes) FROM files").fetchone()
        self._files, self._bytes = int(files), int(size)
        self._pending = int(conn.execute("SELECT count(*) FROM pending").fetchone()[0])
        self._requested_pending = int(conn.execute("SELECT count(*) FROM requested").fetchone()[0])

    def _delete_files(self, shas: list[str]) -> None:
        """Remove files whose rows are gone (after the commit: a crash in between leaves a file the next open
        adds back, never a row without its file)."""
        for sha in shas:
            try:
                self.path_of(sha).unlink(missing_ok=True)
            except OSError as error:
                log.warning("evidence: cannot delete %s: %s", sha, error)

    # ----------------------------------------------------------------- loading

    def _load(self, conn: sqlite3.Connection) -> None:
        """Reconcile the index with the directory, then read counters and totals."""
        on_disk: dict[str, os.stat_result] = {}
        for entry in os.scandir(self.directory):
            match = _SHA_FILE.match(entry.name)
            if match and entry.is_file():
                on_disk[match.group(1)] = entry.stat()
            elif entry.name.endswith(".tmp") and entry.name.startswith(".") and entry.is_file():
                Path(entry.path).unlink(missing_ok=True)  # a write cut short by a crash
        indexed = {str(row[0]) for row in conn.execute("SELECT sha256 FROM files")}
        lost = [
            (sha, stat.st_size, int(stat.st_mtime * 1_000_000), "violation")
            for sha, stat in on_disk.items()
            if sha not in indexed
        ]
        vanished = sorted(indexed - set(on_disk))
        if lost or vanished:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT INTO files VALUES (?, ?, ?, ?)", lost)
                self._delete_rows(conn, vanished)
                conn.execute("COMMIT")
            except BaseException:
                rollback_quietly(conn)
                raise
            log.warning(
                "evidence index reconciled: %d files added back, %d rows without file", len(lost), len(vanished)
            )
        # A request whose keyframe left the upload list (a salvaged index) is no longer waiting.
        conn.execute("DELETE FROM requested WHERE sha256 NOT IN (SELECT sha256 FROM pending)")
        loaded = {str(name): int(value) for name, value in conn.execute("SELECT name, value FROM counters")}
        for name, value in self._counters.items():
            loaded[name] = max(value, loaded.get(name, 0))
        self._counters = loaded
        self._refresh(conn)
