"""The spool against real failures: a real full filesystem (a tiny tmpfs in a private mount namespace),
a writer killed with SIGKILL mid-transaction, and a WAL torn or damaged by a power cut.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_agent.delivery.spool import Spool, SpoolConfig
from tests.unit.test_spool import count, health

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WAL_HEADER = 32
FRAME_HEADER = 24
PAGE = 4096


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def content(path: Path) -> set[str]:
    with Spool(SpoolConfig(path=path)) as spool:
        assert spool.stats().corrupt_recoveries == 0
        return {e.event_id for e in spool.lease(1_000_000, 1 << 40)}


# ----------------------------------------------------------------- a real full disk


def test_full_tmpfs_holds_events_in_memory_and_writes_them_when_space_returns(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing: apt-get install util-linux", pytrace=False)
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    script = 'mount -t tmpfs -o size=512k tmpfs "$1" && exec "$2" -m tests.integration.spool_child diskfull "$1"'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(mount_point), sys.executable],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stderr[-3000:]}"
    observed = json.loads(done.stdout.strip().splitlines()[-1])
    assert observed["put_raised"] is None
    assert observed["state_when_full"] == "disk_full", observed
    assert observed["memory_held_when_full"] > 0
    assert "SQLITE_FULL" in observed["last_error_when_full"]
    assert observed["durable_only"] == "raised SpoolUnavailableError"
    assert observed["committed_readable"] is True
    assert observed["retry_disk"] is True
    assert (observed["state_after"], observed["memory_held_after"]) == ("ok", 0)
    assert observed["all_present_after_reopen"] is True
    assert observed["events_after_reopen"] == observed["expected_events"]
    assert observed["integrity"] == "ok"
    # The tmpfs lived only in the child's namespace: nothing was written to the real directory.
    assert list(mount_point.iterdir()) == []


# ----------------------------------------------------------------- SIGKILL mid-write


def _run_writer_until_killed(path: Path, seed: int, rng: random.Random) -> list[str]:
    """Start a writer, let it commit for a random while, SIGKILL it; returns the complete lines it printed."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.spool_child", "writer", str(path), str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(iter(child.stdout.readline, b"")))  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 30
    while not out and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert out, f"writer printed nothing: {child.stderr.read().decode() if child.stderr else ''}"
    time.sleep(rng.uniform(0.05, 0.6))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    reader.join(timeout=30)
    if child.stderr is not None:
        child.stderr.close()
    child.stdout.close()
    # A line cut by the kill has no newline: it does not count as printed.
    return [line.decode().strip() for line in out if line.endswith(b"\n")]


def test_sigkill_at_random_moments_loses_no_committed_put_and_revives_no_ack(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    rng = random.Random(20260501)
    put: set[str] = set()
    acking: set[str] = set()
    acked: set[str] = set()
    for round_ in range(5):
        for line in _run_writer_until_killed(path, seed=round_, rng=rng):
            tag, event_id = line.split(" ", 1)
            {"P": put, "L": acking, "A": acked}[tag].add(event_id)
        assert integrity(path) == "ok"
        stored = content(path)
        in_doubt = acking - acked  # an ack was running when the process died: either outcome is right
        assert not stored & acked, "an acknowledged event came back"
        missing = put - acked - in_doubt - stored
        assert not missing, f"{len(missing)} events reported committed are gone after kill {round_}"
        acked |= in_doubt - stored  # they are gone: the writer of the next round cannot lease them again
    assert len(put) > 100


# ----------------------------------------------------------------- torn and damaged WAL


def _committed_wal(tmp_path: Path) -> tuple[Path, Path, list[int], list[set[str]]]:
    """A spool whose transactions all sit in its WAL (no checkpoint yet), copied as a power cut would leave it.

    Returns the copied db and WAL, the WAL size after each transaction (index 0: after opening) and the ids of
    each transaction.
    """
    path = tmp_path / "live" / "spool.sqlite"
    spool = Spool(SpoolConfig(path=path, synchronous="full"))
    wal = Path(f"{path}-wal")
    ends = [wal.stat().st_size]
    batches: list[set[str]] = []
    for n in range(8):
        events = [count(n * 100 + i) for i in range(5 + 7 * n)] + [health(n * 100 + 99, pad=300)]
        spool.put(events)
        ends.append(wal.stat().st_size)
        batches.append({str(e.event_id) for e in events})
    assert ends == sorted(ends)
    assert len(set(ends)) == len(ends)
    saved = tmp_path / "saved"
    saved.mkdir()
    shutil.copy(path, saved / "spool.sqlite")
    shutil.copy(wal, saved / "spool.sqlite-wal")
    spool.close()
    return saved / "spool.sqlite", saved / "spool.sqlite-wal", ends, batches


def _open_copy(db: Path, wal: Path, where: Path, wal_bytes: bytes) -> set[str]:
    where.mkdir()
    shutil.copy(db, where / "spool.sqlite")
    (where / "spool.sqlite-wal").write_bytes(wal_bytes)
    got = content(where / "spool.sqlite")
    assert integrity(where / "spool.sqlite") == "ok"
    return got


def test_wal_torn_at_any_offset_opens_with_a_prefix_of_the_transactions(tmp_path: Path) -> None:
    db, wal, ends, batches = _committed_wal(tmp_path)
    whole = wal.read_bytes()
    assert len(whole) == ends[-1]
    rng = random.Random(3)
    offsets = {0, WAL_HEADER, WAL_HEADER + FRAME_HEADER + 100, *ends, *(e - 1 for e in ends[1:])}
    offsets |= {rng.randrange(ends[1], ends[-1]) for _ in range(8)}
    for offset in sorted(offsets):
        got = _open_copy(db, wal, tmp_path / f"torn-{offset}", whole[:offset])
        complete = sum(1 for end in ends[1:] if end <= offset)
        expected = set().union(*batches[:complete]) if complete else set()
        assert got == expected, f"WAL cut at {offset}: expected the first {complete} transactions"


def test_wal_whose_last_frame_is_damaged_loses_exactly_the_last_transaction(tmp_path: Path) -> None:
    db, wal, _, batches = _committed_wal(tmp_path)
    damaged = bytearray(wal.read_bytes())
    last_frame = len(damaged) - (FRAME_HEADER + PAGE)
    for position in range(last_frame + FRAME_HEADER + 1000, last_frame + FRAME_HEADER + 1010):
        damaged[position] ^= 0xFF
    got = _open_copy(db, wal, tmp_path / "damaged", bytes(damaged))
    assert got == set().union(*batches[:-1])
    # Garbage appended after the last commit (a half-written next frame) changes nothing.
    got = _open_copy(db, wal, tmp_path / "tail", wal.read_bytes() + os.urandom(FRAME_HEADER + 700))
    assert got == set().union(*batches)
