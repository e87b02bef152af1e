"""SQLite files that must survive the edge: WAL pragmas, error triage, quarantine of a corrupt file, salvage.

The spool and the dead-letter store both keep their data in one SQLite file in WAL mode and both
must keep running when that file is damaged or the disk refuses writes. What they share lives here:

- ``connect`` + ``configure``: one connection in autocommit mode (transactions are explicit
  ``BEGIN IMMEDIATE``), WAL journal, the chosen ``synchronous`` level and ``cell_size_check`` (damaged
  b-tree cells are reported as corruption when read instead of being returned as garbage).
- ``classify``: which of our three failure classes a ``sqlite3.Error`` belongs to, from its
  primary result code: ``disk_full`` (SQLITE_FULL), ``corrupt`` (SQLITE_CORRUPT, SQLITE_NOTADB)
  or ``io_error`` (everything else the disk or the OS can throw at us).
- ``open_store``: opens a store, creates its schema, checks it (``PRAGMA quick_check``) and, when the
  file is corrupt or not one of ours, moves it aside (``quarantine``) to ``<name>.corrupt-<UTC time>``
  (plus its ``-wal``/``-shm``), creates a fresh file and copies into it the rows that can still be
  read from the damaged one (``salvage_rows``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

StorageState = Literal["ok", "disk_full", "io_error"]
"""``ok``: writes commit. ``disk_full``: the last write hit SQLITE_FULL. ``io_error``: any other disk failure."""

ErrorClass = Literal["disk_full", "io_error", "corrupt"]

Synchronous = Literal["full", "normal"]

_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26

SIDE_SUFFIXES = ("-wal", "-shm")
"""SQLite's companion files of a WAL database; they move with the main file."""

QUARANTINE_MARK = ".corrupt-"

WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
"""After a checkpoint the WAL is truncated to at most this, so one burst does not keep its disk forever."""

SALVAGE_CHUNK = 512
"""Rows read per range query while salvaging; a failed range falls back to key-by-key probes."""

SALVAGE_BLIND_PROBES = 100_000_000
"""How far past the last readable key salvage probes when the table's largest key cannot be read."""

SALVAGE_STEP_AFTER = 2_000
"""Failed key-by-key lookups before salvage probes with doubling steps instead."""


class StorageUnavailableError(Exception):
    """The store could not commit to disk (full, I/O error, or corrupt and not yet recovered)."""


class SchemaMismatchError(sqlite3.DatabaseError):
    """The file is a SQLite database, but not one this store wrote (other tables, other version).

    Handled like corruption: the file is quarantined, never written to or deleted.
    """


def classify(error: sqlite3.Error) -> ErrorClass:
    """Which failure class ``error`` belongs to; unknown codes count as I/O errors (retry later, never crash)."""
    if isinstance(error, SchemaMismatchError):
        return "corrupt"
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_FULL:
        return "disk_full"
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return "corrupt"
    if primary is None and type(error) is sqlite3.DatabaseError:
        # Python raises a bare DatabaseError (no code) for malformed images in a few paths.
        return "corrupt"
    return "io_error"


def describe(error: BaseException) -> str:
    """One line for ``last_error``: the SQLite result name when there is one, and the message."""
    name = getattr(error, "sqlite_errorname", None)
    return f"{name}: {error}" if name else f"{type(error).__name__}: {error}"


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread under a lock."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)


def configure(conn: sqlite3.Connection, synchronous: Synchronous) -> None:
    """The pragmas every store uses; raises ``sqlite3.Error`` (a file that is not a database shows here).

    On failure the caller must NOT close ``conn`` before quarantining the file: closing the last
    connection makes SQLite delete a -wal it could not use, and that WAL is evidence worth keeping.
    """
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch to WAL mode (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    conn.execute("PRAGMA cell_size_check=ON")


def close_quietly(conn: sqlite3.Connection | None) -> None:
    """Close a connection that may be on a broken file; its errors no longer matter."""
    if conn is None:
        return
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.rollback()
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Undo a failed transaction; SQLite may already have rolled it back (SQLITE_FULL does)."""
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.rollback()


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable: without this a power cut can bring the old name back."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def quarantine(path: Path, now: dt.datetime) -> Path:
    """Move ``path`` and its -wal/-shm aside to ``<name>.corrupt-<UTC time>`` (kept for forensics); returns it.

    The WAL keeps its suffix on the new name, so SQLite still reads it when the copy is opened for salvage.
    """
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}{QUARANTINE_MARK}{stamp}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}{QUARANTINE_MARK}{stamp}-{counter}")
        counter += 1
    for suffix in SIDE_SUFFIXES:
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, f"{target}{suffix}")
    if path.exists():
        os.replace(path, target)
    _fsync_dir(path.parent)
    log.error("moved the corrupt store %s aside to %s", path, target)
    return target


def list_quarantined(path: Path) -> list[Path]:
    """Quarantined copies of ``path`` still on disk, oldest first (the UTC stamp sorts by time)."""
    prefix = f"{path.name}{QUARANTINE_MARK}"
    try:
        names = [
            entry.name
            for entry in os.scandir(path.parent)
            if entry.name.startswith(prefix) and not entry.name.endswith(SIDE_SUFFIXES)
        ]
    except OSError:
        return []
    return [path.parent / name for name in sorted(names)]


def prune_quarantined(path: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest quarantined copies (each can be as big as the store); returns the rest."""
    copies = list_quarantined(path)
    doomed = copies[: max(0, len(copies) - keep)]
    for copy in doomed:
        for name in (str(copy), *(f"{copy}{suffix}" for suffix in SIDE_SUFFIXES)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)
        log.warning("deleted the old quarantined store %s (keeping the %d newest)", copy, keep)
    return copies[len(doomed) :]


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open a quarantined copy without writing to it (its WAL is still read).

    ``writable_schema`` only relaxes SQLite's open-time sanity checks (a truncated file whose header counts
    more pages than it has is otherwise refused whole); the connection is read-only either way.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA writable_schema=ON")
    return conn


def _probe(
    src: sqlite3.Connection, lookup: str, after: int, bound: int
) -> tuple[int, tuple[object, ...] | None] | None:
    """First key past ``after`` (up to ``bound``) whose lookup answers again, with its row (None: a clean miss).

    Keys are tried one by one for ``SALVAGE_STEP_AFTER`` failures (a damaged leaf costs only its own rows),
    then with doubling steps (a truncated file's missing tail is crossed in a few dozen lookups). None when
    nothing up to ``bound`` answers, or when the error is not corruption (an I/O failure: stop).
    """
    probe, step, failures = after + 1, 1, 0
    while probe <= bound:
        try:
            row = src.execute(lookup, (probe,)).fetchone()
        except sqlite3.Error as error:
            if classify(error) != "corrupt":
                return None
            failures += 1
            if failures > SALVAGE_STEP_AFTER:
                step *= 2
            probe += step
            continue
        return probe, (tuple(row) if row is not None else None)
    return None


def salvage_rows(src: sqlite3.Connection, table: str, columns: Sequence[str], key: str) -> Iterator[tuple[object, ...]]:
    """Every row of ``table`` that can still be read, in ``key`` order; damaged ranges are skipped.

    ``key`` must be the INTEGER PRIMARY KEY (or rowid). Rows are read in ranges; when a range query fails
    (a damaged page), ``_probe`` looks for the next key whose lookup answers and the ranges resume from
    there. Without a readable largest key the probes stop ``SALVAGE_BLIND_PROBES`` keys past the last good one.
    """
    cols = ", ".join(columns)
    try:
        present = {row[1] for row in src.execute(f"PRAGMA table_info({table})")}
    except sqlite3.Error:
        return  # no readable schema (not a database, or page 1 destroyed): nothing to find rows with
    if not set(columns) <= present:
        return  # not our table (another application's file, an older layout): nothing of ours to copy
    try:
        top = src.execute(f"SELECT max({key}) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        top = None
    ranged = f"SELECT {key}, {cols} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT {SALVAGE_CHUNK}"
    lookup = f"SELECT {cols} FROM {table} WHERE {key} = ?"
    last = -(2**63)
    while True:
        try:
            rows = src.execute(ranged, (last,)).fetchall()
        except sqlite3.Error:
            bound = top if isinstance(top, int) else max(last, 0) + SALVAGE_BLIND_PROBES
            found = _probe(src, lookup, max(last, 0), bound)
            if found is None:
                return
            last, row = found
            if row is not None:
                yield row
            continue
        if not rows:
            return
        for row in rows:
            yield tuple(row[1:])
        last = rows[-1][0]


@dataclass(frozen=True)
class StoreSchema:
    """What a store's file must hold, and how to copy its rows out of a damaged one."""

    version: int
    """Stored in ``PRAGMA user_version``; a file with another non-zero version is not ours."""
    ddl: tuple[str, ...]
    """``CREATE TABLE/INDEX IF NOT EXISTS ...`` statements, run in order in one transaction."""
    tables: dict[str, tuple[str, ...]]
    """Table -> columns every file of this version has (checked at open)."""
    salvage: Callable[[sqlite3.Connection, sqlite3.Connection], int]
    """Copies what it can from a damaged file (first) into a fresh one (second); returns the rows copied."""


@dataclass(frozen=True)
class Recovery:
    """What ``open_store`` did about a corrupt file."""

    quarantined: Path
    reason: str
    salvaged: int


@dataclass(frozen=True)
class OpenedStore:
    conn: sqlite3.Connection
    recovery: Recovery | None


def _prepare(conn: sqlite3.Connection, schema: StoreSchema, check_integrity: bool) -> None:
    """Create or check the schema; raises ``SchemaMismatchError`` or ``sqlite3.Error`` (corrupt) when it is not ours."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, schema.version):
        raise SchemaMismatchError(f"schema version {version}, expected {schema.version}")
    if version == 0:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = names - set(schema.tables) - {"sqlite_sequence"}
        if foreign:
            raise SchemaMismatchError(f"holds other tables: {', '.join(sorted(foreign))}")
    # Statement by statement inside one explicit transaction (executescript would commit on its own).
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in schema.ddl:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={schema.version}")
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise
    for table, columns in schema.tables.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = set(columns) - present
        if missing:
            raise SchemaMismatchError(f"table {table} lacks columns {', '.join(sorted(missing))}")
    if check_integrity:
        result = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        if result != ["ok"]:
            raise sqlite3.DatabaseError("quick_check: " + "; ".join(str(r) for r in result))


def open_store(
    path: Path,
    *,
    synchronous: Synchronous,
    schema: StoreSchema,
    check_integrity: bool,
    now: Callable[[], dt.datetime],
) -> OpenedStore:
    """Open (creating) the store at ``path``, recovering from a corrupt file; raises ``sqlite3.Error``/``OSError``
    only for disk failures (full, I/O, permissions), which the caller treats as a degraded disk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        configure(conn, synchronous)
        _prepare(conn, schema, check_integrity)
        return OpenedStore(conn, None)
    except sqlite3.Error as error:
        if classify(error) != "corrupt":
            close_quietly(conn)
            raise
        reason = describe(error)
    return recover_store(path, synchronous=synchronous, schema=schema, reason=reason, now=now, broken=conn)


def recover_store(
    path: Path,
    *,
    synchronous: Synchronous,
    schema: StoreSchema,
    reason: str,
    now: Callable[[], dt.datetime],
    broken: sqlite3.Connection | None,
) -> OpenedStore:
    """Quarantine the corrupt file at ``path``, create a fresh one and salvage what can be read into it.

    ``broken`` (the connection that found the damage) is closed only after the files were moved: its close
    would otherwise delete the WAL, and a close after the fresh file exists could unlink the fresh WAL.
    """
    log.error("store %s is corrupt (%s): quarantining it and starting a fresh one", path, reason)
    try:
        moved = quarantine(path, now())
    finally:
        close_quietly(broken)
    conn = connect(path)
    try:
        configure(conn, synchronous)
        _prepare(conn, schema, check_integrity=False)
    except BaseException:
        close_quietly(conn)
        raise
    salvaged = 0
    try:
        src = open_readonly(moved)
    except sqlite3.Error as error:
        log.error("could not open the quarantined %s to salvage it: %s", moved, describe(error))
    else:
        try:
            salvaged = schema.salvage(src, conn)
        except sqlite3.Error as error:
            # The fresh store failed while taking rows (disk full, ...): keep what committed, report.
            log.error("salvage from %s stopped: %s", moved, describe(error))
            rollback_quietly(conn)
        finally:
            close_quietly(src)
    log.warning("salvaged %d rows from %s into a fresh %s", salvaged, moved, path)
    return OpenedStore(conn, Recovery(quarantined=moved, reason=reason, salvaged=salvaged))
