"""The spool under failure: a full disk (SQLITE_FULL via max_page_count), other disk errors, corrupt files
found at open and at run time, rows whose bytes rotted. None of them may raise out of put/lease/ack
(except put(..., durable_only=True)) or lose what was committed and not acknowledged.

The real-filesystem versions (a tiny tmpfs, SIGKILL, torn WAL) are in tests/integration/test_spool_power_cut.py.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from edge_agent.delivery.spool import Spool, SpoolConfig, SpoolUnavailableError
from edge_agent.delivery.sqlite_files import list_quarantined
from event_contract.models import EventBase
from tests.unit.test_spool import count, drain, health, ids, plate

PAGE = 4096


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def connection(spool: Spool) -> sqlite3.Connection:
    """The spool's own connection: max_page_count is a per-connection limit."""
    conn = spool._conn
    assert conn is not None
    return conn


def limit_growth(spool: Spool, extra_pages: int = 0) -> None:
    conn = connection(spool)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


def table_leaf_pages(path: Path) -> list[int]:
    """Page numbers (1-based) of table b-tree leaves (page type 0x0D), page 1 (the schema) excluded."""
    data = path.read_bytes()
    return [n + 1 for n in range(1, len(data) // PAGE) if data[n * PAGE] == 0x0D]


def damage_pages(path: Path, pages: list[int]) -> None:
    with path.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * PAGE)
            file.write(os.urandom(PAGE))


def filled_spool(path: Path, events: list[EventBase] | None = None, n: int = 2000) -> list[str]:
    """A closed spool file of ``n`` count events (checkpointed: everything is in the main file)."""
    made = events if events is not None else [count(i) for i in range(n)]
    with Spool(SpoolConfig(path=path)) as spool:
        for start in range(0, len(made), 500):
            spool.put(made[start : start + 500])  # type: ignore[arg-type]
    assert not Path(f"{path}-wal").exists()
    return ids(made)


# ----------------------------------------------------------------- disk full


def test_disk_full_holds_in_memory_bounded_and_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    config = SpoolConfig(path=tmp_path / "spool.sqlite", memory_overflow_events=100, recheck_disk_s=5.0)
    spool = Spool(config, clock=clock)
    committed = [health(i) for i in range(20)]
    spool.put(committed)
    limit_growth(spool)

    counts = [count(100 + i) for i in range(60)]
    result = spool.put(counts)
    stats = spool.stats()
    assert (result.stored, result.held) == (0, 60)
    assert (stats.state, stats.disk_errors, stats.memory_held) == ("disk_full", 1, 60)
    assert stats.last_error is not None
    assert "SQLITE_FULL" in stats.last_error

    # The sensor path must hear it: nothing was stored, so nothing may be acknowledged upstream.
    with pytest.raises(SpoolUnavailableError, match="disk_full"):
        spool.put([health(500)], durable_only=True)
    assert spool.stats().refused_puts == 1
    assert spool.stats().disk_errors == 1  # not due yet: the disk was not hammered again

    # The overflow is bounded: 120 held > 100, the 20 lowest-priority oldest go (plates), counted.
    plates = [plate(200 + i) for i in range(60)]
    result = spool.put(plates)
    stats = spool.stats()
    assert (result.held, result.dropped) == (40, 20)
    assert (stats.memory_held, stats.memory_dropped) == (100, 20)
    assert stats.dropped_by_kind == {"plate_pass": 20}

    # Committed events are still readable, and held ones can be sent from memory.
    leased = spool.lease(1000, 1 << 30, live_share=0.0)
    assert ids(leased) == ids([*committed, *counts, *plates[20:]])
    by_id = {e.event_id: e for e in leased}
    acked_disk = [by_id[i] for i in ids(committed[:5])]
    acked_held = [by_id[i] for i in ids(counts[:10])]
    spool.ack(e.seq for e in [*acked_disk, *acked_held])
    spool.release(e.seq for e in leased)
    stats = spool.stats()
    assert stats.acked_events == 15
    assert stats.memory_held == 90
    assert stats.unflushed_acks == 5
    assert stats.pending_events == 20 - 5 + 90

    # Space returns: the next try (after recheck_disk_s) writes the held events and the owed acks.
    connection(spool).execute("PRAGMA max_page_count = 1000000")
    assert spool.retry_disk()  # forces a try now, whatever the clock says
    stats = spool.stats()
    assert (stats.state, stats.memory_held, stats.unflushed_acks) == ("ok", 0, 0)
    spool.close()

    with Spool(config) as reopened:
        assert ids(drain(reopened)) == ids([*committed[5:], *counts[10:], *plates[20:]])
        assert reopened.stats().dropped_by_kind == {"plate_pass": 20}


def test_degraded_spool_retries_the_disk_only_every_recheck_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite", recheck_disk_s=5.0), clock=clock)
    spool.put([health(0)])
    limit_growth(spool)
    spool.put([count(i) for i in range(300)])
    assert spool.stats().disk_errors == 1
    connection(spool).execute("PRAGMA max_page_count = 1000000")
    clock.now += 4.9
    assert spool.put([count(1000)]).held == 1  # not due: held without touching the disk
    assert spool.stats().state == "disk_full"
    clock.now += 0.2
    result = spool.put([count(1001)])
    assert (result.stored, spool.stats().state, spool.stats().memory_held) == (1, "ok", 0)
    assert len(drain(spool)) == 1 + 300 + 2
    spool.close()


def test_durable_only_put_raises_when_its_own_write_fails(tmp_path: Path) -> None:
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite", recheck_disk_s=0.0))
    spool.put([health(0)])
    limit_growth(spool)
    readings = [health(i) for i in range(1, 400)]
    with pytest.raises(SpoolUnavailableError):
        spool.put(readings, durable_only=True)
    stats = spool.stats()
    assert (stats.memory_held, stats.pending_events, stats.state) == (0, 1, "disk_full")
    connection(spool).execute("PRAGMA max_page_count = 1000000")
    assert spool.put(readings, durable_only=True).stored == len(readings)
    spool.close()


def test_unopenable_path_degrades_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    path.mkdir()  # a directory where the file should be: SQLite cannot open it
    spool = Spool(SpoolConfig(path=path, recheck_disk_s=0.0))
    stats = spool.stats()
    assert stats.state == "io_error"
    assert spool.put([health(1)]).held == 1
    with pytest.raises(SpoolUnavailableError):
        spool.put([health(2)], durable_only=True)
    [leased] = spool.lease(10, 1 << 20)
    spool.ack([leased.seq])
    assert spool.stats().pending_events == 0
    spool.close()


# ----------------------------------------------------------------- corrupt at open

QUARANTINE_NAME = re.compile(r"^spool\.sqlite\.corrupt-\d{8}T\d{6}Z$")


def assert_recovered(spool: Spool, path: Path) -> None:
    stats = spool.stats()
    assert stats.corrupt_recoveries == 1
    assert stats.state == "ok"
    [moved] = stats.quarantined_files
    assert QUARANTINE_NAME.match(Path(moved).name), moved
    assert Path(moved).exists()
    # The fresh spool works.
    event = health(9999)
    assert spool.put([event]).stored == 1
    assert str(event.event_id) in ids(drain(spool))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(os.urandom(64 * 1024), id="garbage"),
        pytest.param(b"timestamp,level\n2026-05-01,3.2\n" * 100, id="text-file"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(5000), id="png"),
        pytest.param(b"SQLite format 3\x00" + os.urandom(8000), id="sqlite-header-then-garbage"),
    ],
)
def test_a_file_that_is_not_a_spool_is_quarantined_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "spool.sqlite"
    path.write_bytes(content)
    Path(f"{path}-wal").write_bytes(os.urandom(100))
    with Spool(SpoolConfig(path=path)) as spool:
        assert spool.stats().salvaged_events == 0
        assert_recovered(spool, path)
        [moved] = spool.stats().quarantined_files
        assert Path(moved).read_bytes() == content
        assert Path(f"{moved}-wal").exists()


def test_another_applications_database_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    other.commit()
    other.close()
    with Spool(SpoolConfig(path=path)) as spool:
        assert_recovered(spool, path)


def test_truncated_file_is_quarantined_and_the_readable_rows_salvaged(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    written = filled_spool(path)
    os.truncate(path, path.stat().st_size // 2)
    with Spool(SpoolConfig(path=path)) as spool:
        salvaged = spool.stats().salvaged_events
        assert 0 < salvaged < len(written)
        got = ids(drain(spool))
        assert len(got) == salvaged
        assert set(got) <= set(written)
        assert_recovered(spool, path)


def test_damaged_page_in_the_middle_loses_only_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    written = filled_spool(path)
    leaves = table_leaf_pages(path)
    assert len(leaves) > 20
    damage_pages(path, [leaves[len(leaves) // 2]])
    with Spool(SpoolConfig(path=path)) as spool:
        salvaged = spool.stats().salvaged_events
        # One leaf holds a dozen or so rows: everything else came back, with its payload intact.
        assert len(written) - 40 < salvaged < len(written)
        events = drain(spool)
        assert len(events) == salvaged
        assert all(e.payload.startswith(b"{") for e in events)
        assert_recovered(spool, path)


def test_quarantined_copies_are_pruned_to_keep_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    for n in range(3):
        path.write_bytes(os.urandom(10_000))
        Spool(SpoolConfig(path=path, keep_quarantined=2)).close()
        # Distinct names even within one second.
        assert len(list_quarantined(path)) == min(n + 1, 2)


# ----------------------------------------------------------------- corrupt at run time


def test_corruption_found_while_running_is_recovered_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    written = filled_spool(path, n=12_000)
    spool = Spool(SpoolConfig(path=path, integrity_check_on_open=False))
    assert spool.stats().pending_events == len(written)
    leaves = table_leaf_pages(path)
    damage_pages(path, leaves[5 : len(leaves) // 2 : 7])
    events = spool.lease(100_000, 1 << 40, live_share=0.0)  # reads the damaged pages
    stats = spool.stats()
    assert stats.corrupt_recoveries == 1
    assert 0 < stats.salvaged_events < len(written)
    assert len(events) == stats.salvaged_events
    assert set(ids(events)) <= set(written)
    # Acks of the leased (salvaged) events still match: seqs were kept.
    spool.ack(e.seq for e in events[:100])
    assert spool.stats().pending_events == 0  # the rest are leased
    spool.release(e.seq for e in events)
    assert spool.stats().pending_events == len(events) - 100
    assert spool.put([health(1)]).stored == 1
    spool.close()


def test_a_row_whose_payload_rotted_is_dropped_and_counted_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    with Spool(SpoolConfig(path=path)) as spool:
        events = [count(i) for i in range(5)]
        spool.put(events)
        other = sqlite3.connect(path)
        other.execute("UPDATE events SET payload = X'7B7D' WHERE seq = 3")
        other.commit()
        other.close()
        leased = spool.lease(10, 1 << 20, live_share=0.0)
        assert ids(leased) == ids([*events[:2], *events[3:]])
        stats = spool.stats()
        assert stats.checksum_failures == 1
        assert stats.dropped_by_kind == {"count_interval": 1}
