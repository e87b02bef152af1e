"""The durable edge spool: every event is stored here first and leaves only once central acknowledged it.

One SQLite file in WAL mode (see ``docs/edge_spool.md``). ``put`` commits a batch in one transaction
(with ``synchronous=full`` it survives a power cut once ``put`` returns); the sender ``lease``s a batch,
sends it, then ``ack``s it (deleted, durably) or ``release``s it (pending again). Leases live in memory
only: after a restart every stored event is pending again and is re-sent; central drops the duplicates
by ``event_id``, so at-least-once delivery plus idempotent ids gives exactly-once storage.

Order ("oldest" everywhere means lowest ``seq``: the order events reached the spool)
    ``lease`` serves priorities in order (0 = most urgent first). Within one priority it fills
    ``floor(slots * live_share)`` of the remaining slots with the NEWEST pending events and the rest with
    the OLDEST, so a backlog drains oldest-first while live events do not wait behind hours of it.
    The two halves are interleaved in proportion and the byte budget cuts the batch at the first event
    that does not fit (never skipping ahead), but a lease always returns at least one pending event.

Byte cap and drop rule (``max_bytes`` counts payload bytes of stored events)
    When a put would take the stored payload bytes over ``max_bytes``, events are dropped in this exact
    order until the rest fits: lowest priority first (the highest number), and within a priority oldest
    first, counting the incoming events as the newest of their priority. So a new event never pushes out
    a more urgent one: when everything stored is more urgent, the incoming events of the lowest priority
    are the ones dropped. Leased (in-flight) events are never evicted. A single event larger than
    ``max_bytes`` is dropped on arrival. Every dropped event is counted by kind with the range of event
    times, in the database (so the counts survive restarts and central can show the gap).

Disk failures (the spool never raises for them, except ``put(..., durable_only=True)``)
    A write that fails with SQLITE_FULL puts the spool in state ``disk_full``; any other disk error in
    ``io_error``. New events are then held in a bounded memory overflow (``memory_overflow_events``; when
    it is full the same drop rule applies, counted as ``memory_dropped`` and in the drop counters), can
    still be leased and acked from memory, and are written to disk, with their seq, by the first write
    that succeeds. A degraded spool retries the disk at most every ``recheck_disk_s`` (on put, ack, lease
    or ``retry_disk``). Acks that cannot be deleted are remembered and deleted later; until then their
    events are not leased again. ``put(..., durable_only=True)`` raises ``SpoolUnavailableError`` instead
    of holding in memory: the MQTT sensor path then does not acknowledge a message it could not store.

Corruption
    A file that is not a database, truncated, fails ``quick_check`` or is not ours, is moved aside with its
    -wal/-shm to ``<name>.corrupt-<UTC time>``, a fresh spool is created and every readable row whose
    checksum matches is copied into it (``sqlite_files``). Corruption seen while running (SQLITE_CORRUPT
    from a put, lease or ack) is handled the same way and the operation is retried once on the fresh file.
    A row whose payload no longer matches its CRC-32 is dropped (counted) when it is leased.

Thread safety: one connection, guarded by one lock; every public method may be called from any thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.delivery.spool_recovery import INSERT_NEW_EVENT, SPOOL_SCHEMA
from edge_agent.delivery.sqlite_files import StorageState, StorageUnavailableError, rollback_quietly
from edge_agent.delivery.sqlite_store import RecoveringSqliteStore, utcnow
from event_contract import EVENT_MODELS, Event

log = logging.getLogger(__name__)

T = TypeVar("T")

KIB = 1024
GIB = 1024**3

EVENT_KINDS: tuple[str, ...] = tuple(str(model.model_fields["kind"].default) for model in EVENT_MODELS)
"""Every ``kind`` of the event contract; each needs a priority."""

DEFAULT_PRIORITIES: dict[str, int] = {
    "health": 0,
    "violation": 0,
    "sensor_reading": 0,
    "count_interval": 1,
    "zone_interval": 1,
    "progress": 1,
    "congestion": 1,
    "plate_pass": 2,
    "site_activity": 2,
}

_SQL_CHUNK = 500
"""Bound parameters per ``IN (...)`` query: well under SQLite's limit, few statements per batch."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class SpoolConfig(BaseModel):
    """Where the spool lives, how big it may grow, and how it behaves when the disk fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(
        default=Path("spool.sqlite"),
        description="SQLite file of the spool (its -wal and -shm sit beside it); a relative path is inside the "
        "agent's state_dir. Parent directories are created.",
    )
    max_bytes: int = Field(
        default=GIB,
        ge=64 * KIB,
        description="Cap on the payload bytes of stored events; over it, events are dropped lowest priority and "
        "oldest first (counted). The file itself is larger by the index and page overhead (roughly 10-30%) "
        "plus the WAL (truncated to 64 MiB after checkpoints): leave that much free disk on top.",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: a put or ack survives a power cut once it returns (one fsync per transaction). "
        "normal: the last transactions before a power cut may be lost (never corrupted); acks lost that way "
        "only cause duplicates, which central drops.",
    )
    priorities: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES),
        description="Event kind -> priority (0 = most urgent, sent first, dropped last). Every kind of the event "
        "contract must be listed. Stored events keep the priority they were stored with.",
    )
    memory_overflow_events: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Events held in RAM while the disk refuses writes; when full, the byte cap's drop rule "
        "applies (lowest priority, oldest first), counted as memory_dropped.",
    )
    recheck_disk_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="How often a degraded spool (disk_full, io_error) tries the disk again; 0 = on every call.",
    )
    integrity_check_on_open: bool = Field(
        default=True,
        description="Run PRAGMA quick_check when the spool opens, so a damaged file is quarantined at start "
        "rather than found mid-run. Reads the whole file: about 1 s per GiB on an SSD.",
    )
    keep_quarantined: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Quarantined corrupt files kept beside the spool for inspection; older ones are deleted, "
        "since each can be as large as the spool.",
    )

    @model_validator(mode="after")
    def _every_kind_has_a_priority(self) -> SpoolConfig:
        missing = sorted(set(EVENT_KINDS) - set(self.priorities))
        unknown = sorted(set(self.priorities) - set(EVENT_KINDS))
        if missing:
            raise ValueError(f"priorities lacks event kinds {missing}; every kind of {sorted(EVENT_KINDS)} needs one")
        if unknown:
            raise ValueError(f"priorities names unknown event kinds {unknown}; known: {sorted(EVENT_KINDS)}")
        bad = {kind: p for kind, p in self.priorities.items() if not 0 <= p <= 99}
        if bad:
            raise ValueError(f"priorities must be 0..99 (0 = most urgent), got {bad}")
        return self


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    """One stored event as the sender gets it.

    The id and the time are kept as stored and converted only when read: the sender needs them only
    for the rare dead letter, and converting every event of every batch cost a third of a lease.
    """

    seq: int
    """The spool's handle: ack or release by it."""
    raw_id: bytes
    """The event's UUID, 16 bytes."""
    kind: str
    priority: int
    time_us: int
    """Event time, microseconds since the Unix epoch (UTC)."""
    payload: bytes
    """The event's JSON (``model_dump_json``), ready to send."""

    @property
    def event_id(self) -> str:
        return _uuid_text(self.raw_id)

    @property
    def time(self) -> dt.datetime:
        """Event time, UTC."""
        return _from_us(self.time_us)


@dataclass(frozen=True)
class PutResult:
    """What one ``put`` did with its events (every event lands in exactly one of the first four)."""

    stored: int
    """Committed to disk."""
    held: int
    """Kept in the memory overflow because the disk refused the write."""
    duplicates: int
    """Already in the spool (same event_id), or repeated within the batch: ignored."""
    dropped: int
    """Incoming events dropped by the drop rule (lowest priority, oldest first; or larger than max_bytes)."""
    evicted: int
    """Previously stored (or held) events dropped to make room for these."""


@dataclass(frozen=True)
class SpoolStats:
    """A snapshot for health events and /metrics; JSON-able as ``json.dumps(dataclasses.asdict(stats))``."""

    pending_events: int
    """Stored or held events neither leased nor acknowledged."""
    pending_bytes: int
    leased_events: int
    """Handed to the sender, not yet acked or released."""
    pending_by_priority: dict[str, int]
    """Priority (as a string, so the dict survives JSON) -> pending events."""
    oldest_pending_time: str | None
    """Event time (ISO 8601, UTC) of the earliest-spooled pending event over all priorities; None when none."""
    put_events: int
    """Events accepted by put since this process opened the spool (stored or held)."""
    acked_events: int
    duplicate_puts: int
    dropped_events: int
    """Events the spool dropped, ever (persisted): byte cap, memory overflow, too large, failed checksum."""
    dropped_by_kind: dict[str, int]
    dropped_first_time: str | None
    """Earliest event time among the dropped events (ISO 8601, UTC): with the last, the gap central shows."""
    dropped_last_time: str | None
    memory_held: int
    """Events in the memory overflow now (not yet on disk)."""
    memory_dropped: int
    """Events this process dropped from a full memory overflow (also in dropped_events)."""
    refused_puts: int
    """durable_only puts refused with SpoolUnavailableError."""
    unflushed_acks: int
    """Acked events whose delete has not reached the disk yet (they are not leased again)."""
    disk_errors: int
    state: StorageState
    last_error: str | None
    corrupt_recoveries: int
    salvaged_events: int
    checksum_failures: int
    quarantined_files: tuple[str, ...]
    """Quarantined corrupt spool files still on disk, oldest first."""
    max_bytes: int


class SpoolUnavailableError(StorageUnavailableError):
    """Raised by ``put(..., durable_only=True)`` when the events could not be committed to disk."""


class SpoolClosedError(RuntimeError):
    """The spool was used after ``close()``."""


@dataclass(slots=True)
class _Row:
    seq: int
    event_id: bytes
    kind: str
    priority: int
    time_us: int
    payload: bytes


@dataclass(slots=True)
class _Tally:
    """Dropped events of one kind: how many, and the range of their event times."""

    events: int = 0
    first_us: int | None = None
    last_us: int | None = None

    def add(self, count: int, first_us: int | None, last_us: int | None) -> None:
        self.events += count
        if first_us is not None:
            self.first_us = first_us if self.first_us is None else min(self.first_us, first_us)
        if last_us is not None:
            self.last_us = last_us if self.last_us is None else max(self.last_us, last_us)


@dataclass
class _Drops:
    """Drop counters by kind."""

    by_kind: dict[str, _Tally] = field(default_factory=dict)

    def add(self, kind: str, time_us: int, count: int = 1) -> None:
        self.by_kind.setdefault(kind, _Tally()).add(count, time_us, time_us)

    def merge(self, other: _Drops) -> None:
        for kind, tally in other.by_kind.items():
            self.by_kind.setdefault(kind, _Tally()).add(tally.events, tally.first_us, tally.last_us)

    @property
    def total(self) -> int:
        return sum(t.events for t in self.by_kind.values())


@dataclass
class _Stored:
    """What a committed write transaction did (applied to the in-memory view only after COMMIT)."""

    inserted: list[_Row]
    duplicate_seqs: set[int]
    dropped_incoming: set[int]
    evicted_disk: list[tuple[int, int, int]]  # (seq, priority, bytes)
    deleted_acks: list[tuple[int, int, int]]  # (seq, priority, bytes)
    drops: _Drops


def _to_us(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> dt.datetime:
    return _EPOCH + us * _MICROSECOND


def _iso(us: int | None) -> str | None:
    return None if us is None else _from_us(us).isoformat().replace("+00:00", "Z")


def _uuid_text(raw: bytes) -> str:
    """``str(UUID(bytes=raw))`` without building a UUID object (a third of a lease's CPU otherwise)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _chunks(items: Sequence[T], size: int = _SQL_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _interleave(old: list[_Row], new: list[_Row]) -> list[_Row]:
    """Old and new merged so every prefix keeps about their proportion (the byte budget cuts a prefix)."""
    total = len(old) + len(new)
    out: list[_Row] = []
    i = j = 0
    while i < len(old) or j < len(new):
        take_new = j < len(new) and (i >= len(old) or (j + 1) * total <= (i + j + 1) * len(new))
        if take_new:
            out.append(new[j])
            j += 1
        else:
            out.append(old[i])
            i += 1
    return out


class Spool(RecoveringSqliteStore[SpoolConfig]):
    """The durable local store of events waiting for central; see the module docstring for every rule."""

    _schema = SPOOL_SCHEMA
    _name = "spool"
    _corrupt_name = "spool"
    _closed_error = SpoolClosedError
    _log = log

    def __init__(
        self,
        config: SpoolConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        super().__init__(config, clock=clock, wall_clock=wall_clock)
        self._next_seq = 1
        self._disk_events: dict[int, int] = {}
        self._disk_bytes: dict[int, int] = {}
        self._leased: dict[int, tuple[int, int]] = {}
        self._owed: dict[int, tuple[int, int] | None] = {}
        self._held: dict[int, _Row] = {}
        self._held_ids: dict[bytes, int] = {}
        self._drops_saved = _Drops()
        self._drops_unsaved = _Drops()
        self._put_events = 0
        self._acked_events = 0
        self._duplicate_puts = 0
        self._memory_dropped = 0
        self._refused_puts = 0
        self._checksum_failures = 0
        self._start()

    # ----------------------------------------------------------------- public API

    def put(self, events: Sequence[Event], *, durable_only: bool = False) -> PutResult:
        """Store ``events`` in one transaction; see the module docstring for the drop rule and disk failures."""
        encoded = [self._encode(event) for event in events]
        with self._lock:
            self._require_open()
            fresh: list[_Row] = []
            seen: set[bytes] = set()
            dropped_now = 0
            for row in encoded:
                if row.event_id in seen or row.event_id in self._held_ids:
                    self._duplicate_puts += 1
                    continue
                seen.add(row.event_id)
                if len(row.payload) > self._config.max_bytes:
                    log.error("event %s (%d bytes) is larger than the whole spool: dropped", row.kind, len(row.payload))
                    self._drops_unsaved.add(row.kind, row.time_us)
                    dropped_now += 1
                    continue
                row.seq = self._next_seq
                self._next_seq += 1
                fresh.append(row)
            if not fresh:
                return PutResult(
                    stored=0, held=0, duplicates=len(encoded) - dropped_now, dropped=dropped_now, evicted=0
                )
            repeated = len(encoded) - len(fresh) - dropped_now
            if self._write_due():
                stored = self._attempt(lambda conn: self._store_tx(conn, [*self._held.values(), *fresh]), write=True)
                if stored is not None:
                    return self._apply_stored(stored, fresh, dropped_now, repeated)
            if durable_only:
                self._refused_puts += 1
                raise SpoolUnavailableError(
                    f"spool {self._config.path} cannot commit to disk ({self._state}: {self._last_error})"
                )
            return self._hold(fresh, dropped_now, repeated)

    def lease(self, max_events: int, max_bytes: int, live_share: float = 0.25) -> list[SpooledEvent]:
        """Pending events for one send, most urgent first (see the module docstring); at least one if any."""
        if max_events < 1 or max_bytes < 1:
            raise ValueError(f"max_events and max_bytes must be >= 1, got {max_events} and {max_bytes}")
        if not 0.0 <= live_share <= 1.0:
            raise ValueError(f"live_share must be within 0..1, got {live_share}")
        with self._lock:
            self._require_open()
            self._flush_if_due()
            rows = self._attempt(lambda conn: self._lease_rows(conn, max_events, max_bytes, live_share), write=False)
            if rows is None:
                rows = self._lease_rows(None, max_events, max_bytes, live_share)
            for row in rows:
                self._leased[row.seq] = (row.priority, len(row.payload))
            return [
                SpooledEvent(row.seq, row.event_id, row.kind, row.priority, row.time_us, row.payload)
                for row in sorted(rows, key=lambda r: (r.priority, r.seq))
            ]

    def ack(self, seqs: Iterable[int]) -> None:
        """Central stored these: delete them durably (or, while the disk fails, as soon as it works again)."""
        with self._lock:
            self._require_open()
            for seq in set(seqs):
                held = self._held.pop(seq, None)
                info = self._leased.pop(seq, None)
                if held is not None:
                    del self._held_ids[held.event_id]
                    self._acked_events += 1
                    continue
                if seq in self._owed:
                    continue
                if info is not None:
                    self._acked_events += 1
                self._owed[seq] = info
            if self._owed and self._write_due():
                stored = self._attempt(lambda conn: self._store_tx(conn, list(self._held.values())), write=True)
                if stored is not None:
                    self._apply_stored(stored, [], 0, 0)

    def release(self, seqs: Iterable[int]) -> None:
        """A send failed: these are pending again (a later lease hands them out again)."""
        with self._lock:
            for seq in seqs:
                self._leased.pop(seq, None)

    def release_all(self) -> None:
        """Every leased event is pending again (a sender that restarts lost track of its batches)."""
        with self._lock:
            self._leased.clear()

    def retry_disk(self) -> bool:
        """Write held events and owed acks now if the disk takes them; True when the spool is healthy (``ok``)."""
        with self._lock:
            self._require_open()
            self._next_disk_try = min(self._next_disk_try, self._clock())
            self._flush_if_due()
            return self._state == "ok"

    def pending_events(self) -> int:
        """Events neither leased nor acknowledged: what ``stats().pending_events`` says, without its queries
        (the sender asks before every batch; ``stats`` reads the oldest pending time from the file)."""
        with self._lock:
            return sum(self._pending_by_priority(self._leased.keys() | self._owed.keys()).values())

    def stats(self) -> SpoolStats:
        with self._lock:
            unavailable = self._leased.keys() | self._owed.keys()
            pending = self._pending_by_priority(unavailable)
            pending_bytes = sum(self._disk_bytes.values()) + sum(len(r.payload) for r in self._held.values())
            pending_bytes -= sum(info[1] for info in self._leased.values())
            pending_bytes -= sum(info[1] for info in self._owed.values() if info is not None)
            drops = _Drops()
            drops.merge(self._drops_saved)
            drops.merge(self._drops_unsaved)
            firsts = [t.first_us for t in drops.by_kind.values() if t.first_us is not None]
            lasts = [t.last_us for t in drops.by_kind.values() if t.last_us is not None]
            return SpoolStats(
                pending_events=sum(pending.values()),
                pending_bytes=max(0, pending_bytes),
                leased_events=len(self._leased),
                pending_by_priority={str(p): n for p, n in sorted(pending.items())},
                oldest_pending_time=_iso(self._oldest_pending_us(pending, unavailable)),
                put_events=self._put_events,
                acked_events=self._acked_events,
                duplicate_puts=self._duplicate_puts,
                dropped_events=drops.total,
                dropped_by_kind={kind: t.events for kind, t in sorted(drops.by_kind.items())},
                dropped_first_time=_iso(min(firsts)) if firsts else None,
                dropped_last_time=_iso(max(lasts)) if lasts else None,
                memory_held=len(self._held),
                memory_dropped=self._memory_dropped,
                refused_puts=self._refused_puts,
                unflushed_acks=len(self._owed),
                disk_errors=self._disk_errors,
                state=self._state,
                last_error=self._last_error,
                corrupt_recoveries=self._corrupt_recoveries,
                salvaged_events=self._salvaged,
                checksum_failures=self._checksum_failures,
                quarantined_files=tuple(self._quarantined),
                max_bytes=self._config.max_bytes,
            )

    def _before_close(self) -> None:
        """Write what is held in memory if the disk takes it; events still held are lost (logged)."""
        if self._held or self._owed:
            self._next_disk_try = min(self._next_disk_try, self._clock())
            self._flush_if_due()
        if self._held:
            log.error("spool closed with %d events held in memory that the disk refused: lost", len(self._held))

    # ----------------------------------------------------------------- encoding and loading

    def _encode(self, event: Event) -> _Row:
        return _Row(
            seq=0,
            event_id=event.event_id.bytes,
            kind=event.kind,
            priority=self._config.priorities[event.kind],
            time_us=_to_us(event.time),
            payload=event.model_dump_json().encode(),
        )

    def _load(self, conn: sqlite3.Connection) -> None:
        """Read what the in-memory view needs: per-priority counts and bytes, the last seq, the drop counters."""
        events: dict[int, int] = {}
        sizes: dict[int, int] = {}
        for priority, count, size in conn.execute(
            "SELECT priority, count(*), sum(length(payload)) FROM events GROUP BY priority"
        ):
            events[priority] = count
            sizes[priority] = size or 0
        top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        loaded = _Drops()
        for kind, count, first_us, last_us in conn.execute(
            "SELECT kind, events, first_time_us, last_time_us FROM drops"
        ):
            loaded.by_kind[kind] = _Tally(count, first_us, last_us)
        # Drop counts this process knew but the file no longer holds (a salvage that lost them) are saved again.
        for kind, tally in self._drops_saved.by_kind.items():
            have = loaded.by_kind.get(kind, _Tally())
            if tally.events > have.events:
                self._drops_unsaved.by_kind.setdefault(kind, _Tally()).add(
                    tally.events - have.events, tally.first_us, tally.last_us
                )
        self._drops_saved = loaded
        self._disk_events = events
        self._disk_bytes = sizes
        self._next_seq = max(self._next_seq, (top or 0) + 1)
        if self._leased or self._owed:
            on_disk = self._existing_seqs(conn, [*self._leased, *self._owed])
            self._leased = {s: v for s, v in self._leased.items() if s in on_disk or s in self._held}
            self._owed = {s: v for s, v in self._owed.items() if s in on_disk}

    # ----------------------------------------------------------------- writing

    def _flush_if_due(self) -> None:
        # Only a transaction that writes proves the disk works again, so there must be something to write.
        if (self._held or self._owed or self._drops_unsaved.by_kind) and self._write_due():
            stored = self._attempt(lambda conn: self._store_tx(conn, list(self._held.values())), write=True)
            if stored is not None:
                self._apply_stored(stored, [], 0, 0)

    def _store_tx(self, conn: sqlite3.Connection, rows: list[_Row]) -> _Stored:
        """One transaction: delete owed acks, skip duplicates, make room by the drop rule, insert, save counters.

        A transaction that only deletes acknowledged events commits without waiting for the disk
        (``synchronous=NORMAL`` for it, WAL stays consistent): losing it in a power cut only re-sends
        events central already has, which it drops. Anything that stores events keeps ``synchronous``.
        """
        lazy = not rows and self._config.synchronous == "full"
        if lazy:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return self._store_tx_body(conn, rows)
        finally:
            if lazy:
                conn.execute("PRAGMA synchronous=FULL")

    def _store_tx_body(self, conn: sqlite3.Connection, rows: list[_Row]) -> _Stored:
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._delete_owed(conn)
            stored_bytes = sum(self._disk_bytes.values()) - sum(size for _, _, size in deleted)
            drops = _Drops()
            evicted: list[tuple[int, int, int]] = []
            dropped_incoming: set[int] = set()
            if stored_bytes + sum(len(r.payload) for r in rows) <= self._config.max_bytes:
                # The common case: room for all. Duplicates are found by the unique index while inserting,
                # instead of looking every id up first.
                inserted, duplicate_seqs = self._insert_new(conn, rows)
            else:
                existing = self._existing_ids(conn, [r.event_id for r in rows])
                candidates = [r for r in rows if r.event_id not in existing]
                duplicate_seqs = {r.seq for r in rows if r.event_id in existing}
                overflow = stored_bytes + sum(len(r.payload) for r in candidates) - self._config.max_bytes
                if overflow > 0:
                    evicted, dropped_incoming = self._plan_eviction(conn, candidates, overflow, drops)
                    self._delete_seqs(conn, [seq for seq, _, _ in evicted])
                inserted, _ = self._insert_new(conn, [r for r in candidates if r.seq not in dropped_incoming])
            to_save = _Drops()
            to_save.merge(self._drops_unsaved)
            to_save.merge(drops)
            self._save_drops(conn, to_save)
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        return _Stored(inserted, duplicate_seqs, dropped_incoming, evicted, deleted, drops)

    def _delete_owed(self, conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
        """Delete the acknowledged events: (seq, priority, size) of each deleted.

        Priority and size of a leased event are known from its lease, so the common case is a plain
        DELETE (RETURNING the sizes made an ack half again as expensive); if not every row was there
        (evicted meanwhile, or leased before a restart) it is undone and done the careful way.
        """
        owed = list(self._owed.items())
        if not owed:
            return []
        known = [(seq, info) for seq, info in owed if info is not None]
        if len(known) == len(owed):
            conn.execute("SAVEPOINT owed")
            removed = 0
            for chunk in _chunks([seq for seq, _ in known]):
                removed += conn.execute(
                    f"DELETE FROM events WHERE seq IN ({_marks(len(chunk))})", tuple(chunk)
                ).rowcount
            if removed == len(known):
                conn.execute("RELEASE owed")
                return [(seq, priority, size) for seq, (priority, size) in known]
            conn.execute("ROLLBACK TO owed")
            conn.execute("RELEASE owed")
        return self._delete_seqs(conn, [seq for seq, _ in owed])

    @staticmethod
    def _insert_new(conn: sqlite3.Connection, rows: list[_Row]) -> tuple[list[_Row], set[int]]:
        """Insert ``rows``, skipping event ids already stored; (inserted rows, seqs of the skipped ones)."""
        before = conn.total_changes
        conn.executemany(
            INSERT_NEW_EVENT,
            [(r.seq, r.event_id, r.kind, r.priority, r.time_us, zlib.crc32(r.payload), r.payload) for r in rows],
        )
        if conn.total_changes - before == len(rows):
            return rows, set()
        # Seqs are fresh, so an ignored row can only be a duplicate event id: it is the one not stored.
        present = Spool._existing_seqs(conn, [r.seq for r in rows])
        return [r for r in rows if r.seq in present], {r.seq for r in rows if r.seq not in present}

    def _apply_stored(self, stored: _Stored, fresh: list[_Row], dropped_now: int, repeated: int) -> PutResult:
        """Bring the in-memory view in line with a committed transaction; count this put's part of it."""
        for seq, priority, size in (*stored.deleted_acks, *stored.evicted_disk):
            self._disk_events[priority] = self._disk_events.get(priority, 0) - 1
            self._disk_bytes[priority] = self._disk_bytes.get(priority, 0) - size
            self._leased.pop(seq, None)
        for seq, _, _ in stored.deleted_acks:
            if self._owed.pop(seq, 0) is None:
                self._acked_events += 1
        self._owed.clear()
        for row in stored.inserted:
            self._disk_events[row.priority] = self._disk_events.get(row.priority, 0) + 1
            self._disk_bytes[row.priority] = self._disk_bytes.get(row.priority, 0) + len(row.payload)
        for row in self._held.values():
            self._held_ids.pop(row.event_id, None)
        self._held.clear()
        self._drops_saved.merge(self._drops_unsaved)
        self._drops_saved.merge(stored.drops)
        self._drops_unsaved = _Drops()
        fresh_seqs = {r.seq for r in fresh}
        duplicates = len(fresh_seqs & stored.duplicate_seqs)
        dropped = len(fresh_seqs & stored.dropped_incoming)
        self._duplicate_puts += len(stored.duplicate_seqs)
        # Held events found on disk at flush time were counted as put when held; they were duplicates.
        self._put_events += len(fresh) - len(stored.duplicate_seqs)
        evicted = len(stored.evicted_disk) + len(stored.dropped_incoming) - dropped
        return PutResult(
            stored=len(fresh) - duplicates - dropped,
            held=0,
            duplicates=duplicates + repeated,
            dropped=dropped + dropped_now,
            evicted=evicted,
        )

    def _hold(self, fresh: list[_Row], dropped_now: int, repeated: int) -> PutResult:
        """Keep events in the memory overflow while the disk refuses them; a full overflow uses the drop rule."""
        for row in fresh:
            self._held[row.seq] = row
            self._held_ids[row.event_id] = row.seq
        self._put_events += len(fresh)
        excess = len(self._held) - self._config.memory_overflow_events
        fresh_seqs = {r.seq for r in fresh}
        dropped = evicted = 0
        if excess > 0:
            victims = sorted(
                (r for r in self._held.values() if r.seq not in self._leased),
                key=lambda r: (-r.priority, r.seq),
            )[:excess]
            for row in victims:
                del self._held[row.seq]
                del self._held_ids[row.event_id]
                self._drops_unsaved.add(row.kind, row.time_us)
                self._memory_dropped += 1
                if row.seq in fresh_seqs:
                    dropped += 1
                else:
                    evicted += 1
            log.error("spool memory overflow full: dropped %d events (lowest priority, oldest)", len(victims))
        return PutResult(
            stored=0, held=len(fresh) - dropped, duplicates=repeated, dropped=dropped + dropped_now, evicted=evicted
        )

    def _plan_eviction(
        self, conn: sqlite3.Connection, incoming: list[_Row], overflow: int, drops: _Drops
    ) -> tuple[list[tuple[int, int, int]], set[int]]:
        """Choose what to drop for ``overflow`` bytes: lowest priority first, oldest first within one, incoming
        events counting as the newest of their priority, leased events never."""
        evicted: list[tuple[int, int, int]] = []
        dropped_incoming: set[int] = set()
        freed = 0
        priorities = sorted(set(self._disk_events) | {r.priority for r in incoming}, reverse=True)
        for priority in priorities:
            after = 0
            while freed < overflow and self._disk_events.get(priority, 0) > 0:
                rows = conn.execute(
                    "SELECT seq, kind, time_us, length(payload) FROM events WHERE priority = ? AND seq > ? "
                    "ORDER BY seq LIMIT ?",
                    (priority, after, _SQL_CHUNK),
                ).fetchall()
                if not rows:
                    break
                for seq, kind, time_us, size in rows:
                    after = seq
                    if seq in self._leased:
                        continue
                    evicted.append((seq, priority, size))
                    drops.add(kind, time_us)
                    freed += size
                    if freed >= overflow:
                        break
            for row in incoming:
                if freed >= overflow:
                    break
                if row.priority == priority and row.seq not in self._leased:
                    dropped_incoming.add(row.seq)
                    drops.add(row.kind, row.time_us)
                    freed += len(row.payload)
            if freed >= overflow:
                break
        if evicted or dropped_incoming:
            log.warning(
                "spool over its %d-byte cap: dropped %d stored and %d incoming events (lowest priority, oldest)",
                self._config.max_bytes,
                len(evicted),
                len(dropped_incoming),
            )
        return evicted, dropped_incoming

    @staticmethod
    def _delete_seqs(conn: sqlite3.Connection, seqs: Sequence[int]) -> list[tuple[int, int, int]]:
        deleted: list[tuple[int, int, int]] = []
        for chunk in _chunks(seqs):
            deleted.extend(
                conn.execute(
                    f"DELETE FROM events WHERE seq IN ({_marks(len(chunk))}) RETURNING seq, priority, length(payload)",
                    tuple(chunk),
                ).fetchall()
            )
        return deleted

    @staticmethod
    def _existing_ids(conn: sqlite3.Connection, ids: Sequence[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for chunk in _chunks(ids):
            found.update(
                row[0]
                for row in conn.execute(
                    f"SELECT event_id FROM events WHERE event_id IN ({_marks(len(chunk))})", tuple(chunk)
                )
            )
        return found

    @staticmethod
    def _existing_seqs(conn: sqlite3.Connection, seqs: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks(seqs):
            found.update(
                row[0]
                for row in conn.execute(f"SELECT seq FROM events WHERE seq IN ({_marks(len(chunk))})", tuple(chunk))
            )
        return found

    @staticmethod
    def _save_drops(conn: sqlite3.Connection, drops: _Drops) -> None:
        if not drops.by_kind:
            return
        conn.executemany(
            "INSERT INTO drops (kind, events, first_time_us, last_time_us) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind) DO UPDATE SET events = events + excluded.events, "
            "first_time_us = min(first_time_us, excluded.first_time_us), "
            "last_time_us = max(last_time_us, excluded.last_time_us)",
            [
                (kind, t.events, t.first_us if t.first_us is not None else 0, t.last_us if t.last_us is not None else 0)
                for kind, t in drops.by_kind.items()
            ],
        )

    # ----------------------------------------------------------------- reading

    def _pending_by_priority(self, unavailable: set[int]) -> dict[int, int]:
        pending = dict(self._disk_events)
        for row in self._held.values():
            pending[row.priority] = pending.get(row.priority, 0) + 1
        for seq in unavailable:
            info = self._leased.get(seq) or self._owed.get(seq)
            if info is not None:
                pending[info[0]] = pending.get(info[0], 0) - 1
        return {p: n for p, n in pending.items() if n > 0}

    def _lease_rows(
        self, conn: sqlite3.Connection | None, max_events: int, max_bytes: int, live_share: float
    ) -> list[_Row]:
        """Choose and read the batch (``conn`` None: the disk cannot be read, lease from memory only)."""
        unavailable = self._leased.keys() | self._owed.keys()
        pending = self._pending_by_priority(unavailable)
        chosen: list[_Row] = []
        used = 0
        slots = max_events
        bad: list[_Row] = []
        for priority in sorted(pending):
            if slots <= 0:
                break
            ordered = self._select(
                conn,
                priority=priority,
                slots=slots,
                pending=pending[priority],
                live_share=live_share,
                unavailable=unavailable,
                bad=bad,
            )
            full = False
            for row in ordered:
                if chosen and used + len(row.payload) > max_bytes:
                    full = True
                    break
                chosen.append(row)
                used += len(row.payload)
                slots -= 1
            if full:
                break
        if bad and conn is not None:
            self._drop_damaged(conn, bad)
        return chosen

    def _select(
        self,
        conn: sqlite3.Connection | None,
        *,
        priority: int,
        slots: int,
        pending: int,
        live_share: float,
        unavailable: set[int],
        bad: list[_Row],
    ) -> list[_Row]:
        """The rows of one priority for this lease, old and new interleaved; damaged rows go to ``bad``."""
        memory = [seq for seq, row in self._held.items() if row.priority == priority and seq not in unavailable]
        over = len(unavailable)
        newest_n = 0 if pending <= slots else int(slots * live_share)
        oldest_n = min(slots, pending) - newest_n
        disk_old: list[int] = []
        disk_new: list[int] = []
        if conn is not None and self._disk_events.get(priority, 0) > 0:
            disk_old = self._disk_seq_page(conn, priority, "ASC", oldest_n + over, unavailable)
            if newest_n:
                disk_new = self._disk_seq_page(conn, priority, "DESC", newest_n + over, unavailable)
        old = sorted({*disk_old, *memory})[:oldest_n]
        taken = set(old)
        new = [seq for seq in sorted({*disk_new, *memory}, reverse=True) if seq not in taken][:newest_n]
        rows = self._read_rows(conn, [*old, *new], bad)
        return _interleave([rows[s] for s in old if s in rows], [rows[s] for s in new if s in rows])

    @staticmethod
    def _disk_seq_page(
        conn: sqlite3.Connection, priority: int, direction: Literal["ASC", "DESC"], limit: int, skip: set[int]
    ) -> list[int]:
        return [
            seq
            for (seq,) in conn.execute(
                f"SELECT seq FROM events WHERE priority = ? ORDER BY seq {direction} LIMIT ?", (priority, limit)
            )
            if seq not in skip
        ]

    def _read_rows(self, conn: sqlite3.Connection | None, seqs: list[int], bad: list[_Row]) -> dict[int, _Row]:
        rows = {seq: self._held[seq] for seq in seqs if seq in self._held}
        on_disk = [seq for seq in seqs if seq not in rows]
        if conn is None:
            return rows
        for chunk in _chunks(on_disk):
            for seq, event_id, kind, priority, time_us, crc, payload in conn.execute(
                "SELECT seq, event_id, kind, priority, time_us, crc, payload FROM events "
                f"WHERE seq IN ({_marks(len(chunk))})",
                tuple(chunk),
            ):
                row = _Row(seq, event_id, kind, priority, time_us, payload)
                if zlib.crc32(payload) != crc:
                    bad.append(row)
                else:
                    rows[seq] = row
        return rows

    def _drop_damaged(self, conn: sqlite3.Connection, bad: list[_Row]) -> None:
        """Rows whose payload no longer matches its checksum: deleted and counted, never sent."""
        drops = _Drops()
        for row in bad:
            drops.add(row.kind, row.time_us)
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._delete_seqs(conn, [row.seq for row in bad])
            self._save_drops(conn, drops)
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        for _, priority, size in deleted:
            self._disk_events[priority] = self._disk_events.get(priority, 0) - 1
            self._disk_bytes[priority] = self._disk_bytes.get(priority, 0) - size
        self._drops_saved.merge(drops)
        self._checksum_failures += len(bad)
        log.error("spool: %d events failed their checksum (damaged on disk): dropped", len(bad))

    def _oldest_pending_us(self, pending: dict[int, int], unavailable: set[int]) -> int | None:
        """Event time of the earliest-spooled pending event of each priority, the minimum over priorities."""
        times: list[int] = []
        for priority in pending:
            found: int | None = None
            found_seq: int | None = None
            if self._conn is not None and self._disk_events.get(priority, 0) > 0:
                try:
                    for seq, time_us in self._conn.execute(
                        "SELECT seq, time_us FROM events WHERE priority = ? ORDER BY seq LIMIT ?",
                        (priority, len(unavailable) + 1),
                    ):
                        if seq not in unavailable:
                            found, found_seq = time_us, seq
                            break
                except sqlite3.Error:
                    found = None
            for seq, row in self._held.items():
                if row.priority == priority and seq not in unavailable:
                    if found_seq is None or seq < found_seq:
                        found = row.time_us
                    break
            if found is not None:
                times.append(found)
        return min(times) if times else None
