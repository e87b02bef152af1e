"""A SQLite store that keeps running through disk failures and corruption: the part the spool and the dead-letter
store share.

``sqlite_files`` holds the file-level tools (pragmas, error triage, quarantine, salvage); this module holds
the state machine built on them, so both stores degrade, retry and recover the same way:

- Opening: ``open_store`` (a corrupt file is quarantined and salvaged), then the subclass's ``_load``
  reads its in-memory view; corruption found only while loading is recovered the same way. A disk failure
  leaves the store with no connection in state ``disk_full`` or ``io_error``.
- Every disk operation goes through ``_attempt``: a disk error degrades the store (counted, logged, retried
  no sooner than ``recheck_disk_s``); corruption while running quarantines the file, salvages it into a
  fresh one, reloads, and retries the operation once; the first write that commits again sets ``ok``.

Subclasses name themselves (for log lines and errors), give their schema, implement ``_load`` and call
``_start`` once their own state exists. The underscore methods expect the caller to hold ``_lock``.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Generic, Protocol, Self, TypeVar

from edge_agent.delivery.sqlite_files import (
    OpenedStore,
    Recovery,
    StorageState,
    StoreSchema,
    Synchronous,
    classify,
    close_quietly,
    describe,
    list_quarantined,
    open_store,
    prune_quarantined,
    recover_store,
)

T = TypeVar("T")


class StoreConfig(Protocol):
    """The config fields the recovery logic reads (``SpoolConfig`` and ``DeadLetterConfig`` both have them)."""

    @property
    def path(self) -> Path: ...

    @property
    def synchronous(self) -> Synchronous: ...

    @property
    def integrity_check_on_open(self) -> bool: ...

    @property
    def keep_quarantined(self) -> int: ...

    @property
    def recheck_disk_s(self) -> float: ...


ConfigT = TypeVar("ConfigT", bound=StoreConfig)


def utcnow() -> dt.datetime:
    """The default wall clock: it only stamps quarantined file names, so tests can pin it."""
    return dt.datetime.now(dt.UTC)


class RecoveringSqliteStore(abc.ABC, Generic[ConfigT]):
    """One SQLite file behind one lock, with the degrade/retry/recover rules of the module docstring."""

    _schema: ClassVar[StoreSchema]
    """Tables the file must hold and how to salvage them."""
    _name: ClassVar[str]
    """How log lines and errors name the store ("spool", "dead-letter store")."""
    _corrupt_name: ClassVar[str]
    """How ``last_error`` names the store after a recovery ("corrupt <name> quarantined to ...")."""
    _closed_error: ClassVar[type[Exception]]
    """Raised by ``_require_open`` after ``close()``."""
    _log: ClassVar[logging.Logger]
    """The subclass's module logger, so its records keep their logger name."""

    def __init__(self, config: ConfigT, *, clock: Callable[[], float], wall_clock: Callable[[], dt.datetime]) -> None:
        self._config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._disk_errors = 0
        self._corrupt_recoveries = 0
        self._salvaged = 0  # rows copied out of quarantined files since this process opened the store
        self._state: StorageState = "ok"
        self._last_error: str | None = None
        self._next_disk_try = 0.0
        self._quarantined: list[str] = []

    def _start(self) -> None:
        """Open the file; separate from ``__init__`` because ``_load`` needs the subclass's state to exist."""
        with self._lock:
            self._open()

    def close(self) -> None:
        """Close the connection (idempotent); later calls that need the file raise ``_closed_error``."""
        with self._lock:
            if self._closed:
                return
            self._before_close()
            close_quietly(self._conn)
            self._conn = None
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _before_close(self) -> None:
        """Last chance to write what only memory holds (the connection is still open); nothing by default."""

    def _require_open(self) -> None:
        if self._closed:
            raise self._closed_error(f"{self._name} {self._config.path} is closed")

    @abc.abstractmethod
    def _load(self, conn: sqlite3.Connection) -> None:
        """Read the in-memory view from a freshly opened (or recovered) file; raises ``sqlite3.Error``."""

    def _open(self) -> None:
        """Open (or create) the file; a disk failure leaves the store degraded with no connection, retried later."""
        try:
            self._attach(
                open_store(
                    self._config.path,
                    synchronous=self._config.synchronous,
                    schema=self._schema,
                    check_integrity=self._config.integrity_check_on_open,
                    now=self._wall_clock,
                )
            )
        except (sqlite3.Error, OSError) as error:
            self._record_failure(error)
        self._quarantined = [str(p) for p in list_quarantined(self._config.path)]

    def _attach(self, opened: OpenedStore) -> None:
        """Take a freshly opened connection: load the view; corruption found while loading is recovered."""
        try:
            self._load(opened.conn)
        except sqlite3.Error as error:
            if classify(error) != "corrupt":
                close_quietly(opened.conn)
                raise
            opened = self._recover_file(describe(error), opened.conn)
            self._load(opened.conn)
        self._conn = opened.conn
        if opened.recovery is not None:
            self._note_recovery(opened.recovery)

    def _recover_file(self, reason: str, broken: sqlite3.Connection | None) -> OpenedStore:
        return recover_store(
            self._config.path,
            synchronous=self._config.synchronous,
            schema=self._schema,
            reason=reason,
            now=self._wall_clock,
            broken=broken,
        )

    def _note_recovery(self, recovery: Recovery) -> None:
        self._corrupt_recoveries += 1
        self._salvaged += recovery.salvaged
        self._last_error = f"corrupt {self._corrupt_name} quarantined to {recovery.quarantined}: {recovery.reason}"
        prune_quarantined(self._config.path, self._config.keep_quarantined)
        self._quarantined = [str(p) for p in list_quarantined(self._config.path)]

    def _record_failure(self, error: sqlite3.Error | OSError) -> None:
        """Degrade: count, remember why, and hold off the disk for ``recheck_disk_s``."""
        kind = "io_error" if isinstance(error, OSError) else classify(error)
        self._disk_errors += 1
        self._state = "disk_full" if kind == "disk_full" else "io_error"
        self._last_error = describe(error)
        self._next_disk_try = self._clock() + self._config.recheck_disk_s
        self._log.error("%s %s: %s (state %s)", self._name, self._config.path, self._last_error, self._state)

    def _log_disk_back(self, was: StorageState) -> None:
        """A degraded store committed a write again; a hook so each store keeps its own wording."""
        self._log.warning("%s %s: the disk takes writes again (was %s)", self._name, self._config.path, was)

    def _write_due(self) -> bool:
        """Whether a write may touch the disk now: always when healthy, else once ``recheck_disk_s`` passed."""
        return (self._state == "ok" and self._conn is not None) or self._clock() >= self._next_disk_try

    def _attempt(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T | None:
        """Run ``work`` on the connection; None when the disk failed (state updated). Corruption is recovered
        (quarantine, fresh file, salvage) and ``work`` retried once on the fresh file."""
        for _ in range(2):
            if self._conn is None:
                if self._clock() < self._next_disk_try:
                    return None
                self._open()
                if self._conn is None:
                    return None
            try:
                result = work(self._conn)
            except sqlite3.Error as error:
                if classify(error) != "corrupt":
                    self._record_failure(error)
                    return None
                self._recover_at_runtime(error)
                continue
            if write and self._state != "ok":
                self._log_disk_back(self._state)
                self._state = "ok"
            return result
        return None

    def _recover_at_runtime(self, error: sqlite3.Error) -> None:
        """Swap the corrupt file for a fresh, salvaged one; a disk failure doing so degrades the store."""
        self._disk_errors += 1
        broken, self._conn = self._conn, None
        try:
            self._attach(self._recover_file(describe(error), broken))
        except (sqlite3.Error, OSError) as failure:
            self._record_failure(failure)
