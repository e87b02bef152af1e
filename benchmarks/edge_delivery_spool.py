"""Phase 1: the spool's own rates on the real disk (no network), each against a bare-SQLite baseline.

- put: ``Spool.put`` of batches (one transaction, one fsync each with ``synchronous=full``);
- put single: one event per ``put``, as a camera pipeline calls ``Delivery.submit``;
- drain: ``lease`` + ``ack`` of a batch at a time until the spool is empty (what the sender does
  around each send), on the file the put phase filled.

The baseline is the floor any SQLite store pays for the same durability: a table (seq, payload)
in the same file settings (WAL, same ``synchronous``), the same events serialised with
``model_dump_json`` inside the timing, one transaction per batch (or per event); drain = SELECT the
oldest batch, DELETE it by seq. What the spool adds over it is its bookkeeping: the event-id
uniqueness check, CRC-32, priorities, the byte cap and the live/backlog mix of ``lease``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from benchmarks.edge_delivery_common import Stopwatch, chunks, filesystem_of, percent_more, settled_heap
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.spool import Spool, SpoolConfig
from event_contract import Event

Synchronous = Literal["full", "normal"]

LEASE_MAX_BYTES: int = UplinkConfig.model_fields["batch_max_bytes"].default
LIVE_SHARE: float = UplinkConfig.model_fields["live_share"].default


def _spool(path: Path, synchronous: Synchronous) -> Spool:
    return Spool(SpoolConfig(path=path, synchronous=synchronous))


def spool_put(path: Path, events: Sequence[Event], batch_size: int, synchronous: Synchronous) -> Stopwatch:
    """Put ``events`` in batches into a new spool at ``path`` (left filled for ``spool_drain``)."""
    watch = Stopwatch()
    with _spool(path, synchronous) as spool:
        for batch in chunks(events, batch_size):
            with watch.running():
                result = spool.put(batch)
            if result.stored != len(batch):
                raise RuntimeError(f"spool stored {result.stored} of {len(batch)} events: {result}")
    return watch


def spool_put_single(path: Path, events: Sequence[Event], synchronous: Synchronous) -> Stopwatch:
    watch = Stopwatch()
    with _spool(path, synchronous) as spool:
        for event in events:
            with watch.running():
                spool.put([event])
    return watch


def spool_drain(path: Path, batch_size: int, synchronous: Synchronous) -> tuple[Stopwatch, Stopwatch, int]:
    """Lease + ack until empty; (lease time, ack time, events drained)."""
    lease_watch, ack_watch = Stopwatch(), Stopwatch()
    drained = 0
    with _spool(path, synchronous) as spool:
        while True:
            with lease_watch.running():
                batch = spool.lease(batch_size, LEASE_MAX_BYTES, LIVE_SHARE)
            if not batch:
                break
            with ack_watch.running():
                spool.ack(event.seq for event in batch)
            drained += len(batch)
        left = spool.stats().pending_events
    if left:
        raise RuntimeError(f"{left} events left in the spool after draining")
    return lease_watch, ack_watch, drained


def _bare_sqlite(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    return conn


def _insert(conn: sqlite3.Connection, events: Sequence[Event]) -> None:
    payloads = [(event.model_dump_json().encode(),) for event in events]
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO events (payload) VALUES (?)", payloads)
    conn.execute("COMMIT")


def sqlite_put(path: Path, events: Sequence[Event], batch_size: int, synchronous: Synchronous) -> Stopwatch:
    watch = Stopwatch()
    conn = _bare_sqlite(path, synchronous)
    try:
        for batch in chunks(events, batch_size):
            with watch.running():
                _insert(conn, batch)
    finally:
        conn.close()
    return watch


def sqlite_put_single(path: Path, events: Sequence[Event], synchronous: Synchronous) -> Stopwatch:
    watch = Stopwatch()
    conn = _bare_sqlite(path, synchronous)
    try:
        for event in events:
            with watch.running():
                _insert(conn, [event])
    finally:
        conn.close()
    return watch


def sqlite_drain(path: Path, batch_size: int, synchronous: Synchronous) -> tuple[Stopwatch, int]:
    watch = Stopwatch()
    drained = 0
    conn = _bare_sqlite(path, synchronous)
    try:
        while True:
            with watch.running():
                rows = conn.execute("SELECT seq, payload FROM events ORDER BY seq LIMIT ?", (batch_size,)).fetchall()
                if rows:
                    conn.execute("BEGIN")
                    conn.execute(f"DELETE FROM events WHERE seq IN ({','.join('?' * len(rows))})", [r[0] for r in rows])
                    conn.execute("COMMIT")
            if not rows:
                break
            drained += len(rows)
    finally:
        conn.close()
    return watch, drained


def _per_batch_ms(watch: Stopwatch, batches: int) -> float:
    return round(1000 * watch.seconds / max(1, batches), 2)


def measure_spool(
    directory: Path,
    events: Sequence[Event],
    single_events: Sequence[Event],
    *,
    batch_size: int,
    synchronous: Synchronous = "full",
) -> dict[str, Any]:
    """Every spool rate and its bare-SQLite baseline, in files under ``directory`` (on the disk being measured)."""
    directory.mkdir(parents=True, exist_ok=True)
    batches = -(-len(events) // batch_size)
    with settled_heap():
        put = spool_put(directory / "spool-put.sqlite", events, batch_size, synchronous)
        lease, ack, drained = spool_drain(directory / "spool-put.sqlite", batch_size, synchronous)
        single = spool_put_single(directory / "spool-single.sqlite", single_events, synchronous)
        base_put = sqlite_put(directory / "sqlite-put.sqlite", events, batch_size, synchronous)
        base_drain, base_drained = sqlite_drain(directory / "sqlite-put.sqlite", batch_size, synchronous)
        base_single = sqlite_put_single(directory / "sqlite-single.sqlite", single_events, synchronous)
    drain = Stopwatch(
        lease.seconds + ack.seconds, lease.cpu_s + ack.cpu_s, lease.full_collections + ack.full_collections
    )
    result: dict[str, Any] = {
        "events": len(events),
        "batch_size": batch_size,
        "single_events": len(single_events),
        "synchronous": synchronous,
        "filesystem": filesystem_of(directory),
        "mean_event_json_bytes": round(sum(len(e.model_dump_json()) for e in events[:1000]) / min(1000, len(events))),
        "put": {**put.rate(len(events)), "ms_per_batch": _per_batch_ms(put, batches)},
        "put_single": {**single.rate(len(single_events)), "ms_per_event": _per_batch_ms(single, len(single_events))},
        "drain": {
            **drain.rate(drained),
            "lease_ms_per_batch": _per_batch_ms(lease, batches),
            "ack_ms_per_batch": _per_batch_ms(ack, batches),
        },
        "baseline_sqlite": {
            "what": "bare SQLite table (seq, payload), same WAL/synchronous settings, same JSON serialisation, "
            "one transaction per batch (per event for put_single); drain = SELECT oldest batch + DELETE by seq",
            "put": base_put.rate(len(events)),
            "put_single": base_single.rate(len(single_events)),
            "drain": base_drain.rate(base_drained),
        },
    }
    result["summary"] = {
        "spool_put_events_per_s": result["put"]["events_per_s"],
        "spool_put_single_events_per_s": result["put_single"]["events_per_s"],
        "spool_drain_events_per_s": result["drain"]["events_per_s"],
        "sqlite_put_events_per_s": result["baseline_sqlite"]["put"]["events_per_s"],
        "sqlite_put_single_events_per_s": result["baseline_sqlite"]["put_single"]["events_per_s"],
        "sqlite_drain_events_per_s": result["baseline_sqlite"]["drain"]["events_per_s"],
        "spool_put_time_over_sqlite_pct": percent_more(put.seconds, base_put.seconds),
        "spool_put_single_time_over_sqlite_pct": percent_more(single.seconds, base_single.seconds),
        "spool_drain_time_over_sqlite_pct": percent_more(drain.seconds, base_drain.seconds),
    }
    return result
