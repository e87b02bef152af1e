"""The edge dead-letter store: durable, bounded, counted, and robust to a full disk and a corrupt file."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.delivery.dead_letters import (
    MAX_REASON_CHARS,
    DeadLetterConfig,
    DeadLetterStore,
    DeadLetterUnavailableError,
)
from ioc_common.dead_letter import DeadLetter, DeadLetterCode, DeadLetterSink

T0 = dt.datetime(2026, 5, 1, 7, 0, tzinfo=dt.UTC)


def letter(n: int, *, code: DeadLetterCode = "not_json", raw: bytes | None = None) -> DeadLetter:
    return DeadLetter(
        source="mqtt",
        code=code,
        reason=f"payload {n} is not JSON: Expecting value at line 1 column 1",
        raw=raw if raw is not None else f"garbage-{n}".encode(),
        received_at=T0 + dt.timedelta(seconds=n),
        topic=f"sensors/wl/{n % 3}",
        sensor_id=f"wl-{n % 3}",
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_config_is_validated_and_documented() -> None:
    with pytest.raises(ValidationError, match="max_raw_bytes"):
        DeadLetterConfig(max_bytes=64 * 1024, max_raw_bytes=128 * 1024)
    with pytest.raises(ValidationError):
        DeadLetterConfig(size=3)  # type: ignore[call-arg]
    for name, info in DeadLetterConfig.model_fields.items():
        assert info.description, f"DeadLetterConfig.{name} has no description"


def test_keep_many_and_recent_round_trip_newest_first(tmp_path: Path) -> None:
    with DeadLetterStore(DeadLetterConfig(path=tmp_path / "state" / "dl.sqlite")) as store:
        sink: DeadLetterSink = store
        letters = [letter(1), letter(2, code="impossible_value", raw=b"\x00\xff{-500}"), letter(3)]
        sink.keep_many(letters)
        store.keep(letter(4, code="unknown_sensor"))
        recent = store.recent()
        assert [r.letter for r in recent] == [letter(4, code="unknown_sensor"), *reversed(letters)]
        assert [r.id for r in recent] == sorted((r.id for r in recent), reverse=True)
        assert recent[2].letter.raw == b"\x00\xff{-500}"
        assert recent[0].letter.received_at == T0 + dt.timedelta(seconds=4)
        assert [r.letter.code for r in store.recent(code="not_json")] == ["not_json", "not_json"]
        assert len(store.recent(limit=2)) == 2
        stats = store.stats()
        assert (stats.kept, stats.stored_now, stats.evicted) == (4, 4, 0)
        assert stats.by_code == {"impossible_value": 1, "not_json": 2, "unknown_sensor": 1}
        with pytest.raises(ValueError, match="unknown dead-letter code"):
            store.recent(code="nonsense")


def test_long_raw_input_and_reason_are_cut_and_marked(tmp_path: Path) -> None:
    with DeadLetterStore(DeadLetterConfig(path=tmp_path / "dl.sqlite", max_raw_bytes=1024)) as store:
        long = DeadLetter(source="mqtt", code="too_large", reason="r" * 10_000, raw=os.urandom(5000), received_at=T0)
        store.keep_many([long, letter(1)])
        [short, cut] = [r.letter for r in store.recent()]
        assert cut.raw == long.raw[:1024]
        assert cut.truncated
        assert len(cut.reason) == MAX_REASON_CHARS
        assert cut.reason.endswith("…")
        assert not short.truncated
        assert store.stats().truncated == 1


def test_cap_evicts_oldest_and_counters_persist(tmp_path: Path) -> None:
    config = DeadLetterConfig(path=tmp_path / "dl.sqlite", max_bytes=64 * 1024, max_raw_bytes=1024)
    with DeadLetterStore(config) as store:
        for start in range(0, 200, 20):
            store.keep_many([letter(n, raw=bytes(1000)) for n in range(start, start + 20)])
        stats = store.stats()
        assert stats.stored_bytes <= config.max_bytes
        assert stats.evicted > 0
        assert stats.kept == 200
        assert stats.stored_now == 200 - stats.evicted
        received = [r.letter.received_at for r in store.recent(limit=1000)]
        # The newest stayed: exactly the last stored_now letters.
        assert received == [T0 + dt.timedelta(seconds=n) for n in range(199, 199 - stats.stored_now, -1)]
    with DeadLetterStore(config) as store:
        again = store.stats()
        assert (again.kept, again.evicted, again.stored_now, again.by_code) == (
            200,
            stats.evicted,
            stats.stored_now,
            {"not_json": 200},
        )


def test_full_disk_raises_so_the_caller_does_not_acknowledge_then_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    store = DeadLetterStore(DeadLetterConfig(path=tmp_path / "dl.sqlite", recheck_disk_s=5.0), clock=clock)
    store.keep(letter(0))
    conn = store._conn
    assert conn is not None
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    big = [letter(n, raw=bytes(3000)) for n in range(1, 50)]
    with pytest.raises(DeadLetterUnavailableError, match="disk_full"):
        store.keep_many(big)
    stats = store.stats()
    assert (stats.state, stats.failed, stats.disk_errors, stats.kept) == ("disk_full", 49, 1, 1)
    conn.execute("PRAGMA max_page_count = 1000000")
    with pytest.raises(DeadLetterUnavailableError):
        store.keep(letter(99))  # not due: refused without touching the disk
    assert store.stats().disk_errors == 1
    clock.now += 5
    store.keep_many(big)
    stats = store.stats()
    assert (stats.state, stats.kept, stats.failed) == ("ok", 50, 50)
    assert [r.letter for r in store.recent(limit=1)] == [big[-1]]
    store.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_file_is_quarantined_and_replaced(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "dl.sqlite"
    if damage == "garbage":
        path.write_bytes(os.urandom(50_000))
    else:
        with DeadLetterStore(DeadLetterConfig(path=path)) as store:
            store.keep_many([letter(n, raw=bytes(2000)) for n in range(300)])
        os.truncate(path, path.stat().st_size // 2)
    with DeadLetterStore(DeadLetterConfig(path=path)) as store:
        stats = store.stats()
        assert stats.corrupt_recoveries == 1
        [moved] = stats.quarantined_files
        assert Path(moved).name.startswith("dl.sqlite.corrupt-")
        if damage == "truncated":
            assert 0 < stats.salvaged < 300
            assert stats.stored_now == stats.salvaged
            assert stats.kept == 300  # the counters page survived
        store.keep(letter(1000))
        assert store.recent(limit=1)[0].letter == letter(1000)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_threads_keeping_at_once_are_all_counted(tmp_path: Path) -> None:
    with DeadLetterStore(DeadLetterConfig(path=tmp_path / "dl.sqlite")) as store:

        def keep(offset: int) -> None:
            for n in range(offset, offset + 100, 10):
                store.keep_many([letter(k) for k in range(n, n + 10)])

        threads = [threading.Thread(target=keep, args=(i * 100,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.stats().kept == 400
        assert len(store.recent(limit=1000)) == 400


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = DeadLetterStore(DeadLetterConfig(path=tmp_path / "dl.sqlite"))
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.keep(letter(1))
