"""Child processes for the spool's real-process tests (``python -m tests.integration.spool_child MODE ...``).

- ``writer PATH SEED``: puts and acks in a loop forever, printing after each commit, flushed:
  ``P <event_id>`` once a put returned, ``L <event_id>`` just before an ack, ``A <event_id>`` once it returned.
  The parent SIGKILLs it at a random moment and checks the file against what it printed.
- ``diskfull DIR``: runs inside a private tmpfs mounted at DIR (``unshare -rm``), fills it, checks the spool's
  behaviour on a full disk and after space returns, and prints one JSON line of observations.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import random
import sqlite3
import sys
from pathlib import Path

from edge_agent.delivery.spool import Spool, SpoolConfig, SpoolUnavailableError
from event_contract import CountIntervalEvent, HealthEvent, new_event_id

T0 = dt.datetime(2026, 5, 1, 7, 0, tzinfo=dt.UTC)


def _event(i: int, rng: random.Random) -> HealthEvent | CountIntervalEvent:
    time = T0 + dt.timedelta(seconds=i)
    if rng.random() < 0.3:
        return HealthEvent(
            event_id=new_event_id(),
            agent_id="a1",
            source_id="cam1",
            time=time,
            state="live",
            reason="r" * rng.randrange(300),
        )
    return CountIntervalEvent(
        event_id=new_event_id(), agent_id="a1", source_id="cam1", time=time, line_id="l1", interval_s=60
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def writer(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    spool = Spool(SpoolConfig(path=path, synchronous="full"))
    i = 0
    while True:
        batch = [_event(i + n, rng) for n in range(rng.randint(1, 60))]
        i += len(batch)
        spool.put(batch)
        for event in batch:
            _say(f"P {event.event_id}")
        if rng.random() < 0.6:
            leased = spool.lease(rng.randint(1, 80), 1 << 20)
            for spooled in leased:
                _say(f"L {spooled.event_id}")
            spool.ack(e.seq for e in leased)
            for spooled in leased:
                _say(f"A {spooled.event_id}")


def _fill(directory: Path) -> Path:
    """Take every free byte of the filesystem (what a runaway log does)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as file:  # unbuffered: ENOSPC shows here, not at close
        chunk = b"\0" * 4096
        try:
            while file.write(chunk):
                pass
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler


def diskfull(directory: Path) -> None:
    rng = random.Random(7)
    path = directory / "spool.sqlite"
    config = SpoolConfig(path=path, recheck_disk_s=0.0, memory_overflow_events=5000)
    spool = Spool(config)
    committed = [_event(n, rng) for n in range(200)]
    spool.put(committed)
    filler = _fill(directory)
    observed: dict[str, object] = {}
    after_fill: list[str] = []
    raised = None
    try:
        for round_ in range(20):
            batch = [_event(1000 + round_ * 50 + n, rng) for n in range(50)]
            result = spool.put(batch)
            after_fill.extend(str(e.event_id) for e in batch)
            if result.held:
                break
    except Exception as error:  # the test asserts this never happens
        raised = repr(error)
    stats = spool.stats()
    observed["put_raised"] = raised
    observed["state_when_full"] = stats.state
    observed["memory_held_when_full"] = stats.memory_held
    observed["last_error_when_full"] = stats.last_error
    try:
        spool.put([_event(9000, rng)], durable_only=True)
        observed["durable_only"] = "stored"
    except SpoolUnavailableError:
        observed["durable_only"] = "raised SpoolUnavailableError"
    readable = spool.lease(100_000, 1 << 30, live_share=0.0)
    observed["committed_readable"] = {str(e.event_id) for e in committed} <= {e.event_id for e in readable}
    spool.release(e.seq for e in readable)
    filler.unlink()  # space returns
    observed["retry_disk"] = spool.retry_disk()
    stats = spool.stats()
    observed["state_after"] = stats.state
    observed["memory_held_after"] = stats.memory_held
    spool.close()
    with Spool(config) as reopened:
        content = {e.event_id for e in reopened.lease(100_000, 1 << 30)}
    observed["all_present_after_reopen"] = {str(e.event_id) for e in committed} | set(after_fill) <= content
    observed["events_after_reopen"] = len(content)
    observed["expected_events"] = len(committed) + len(after_fill)
    conn = sqlite3.connect(path)
    observed["integrity"] = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    _say(json.dumps(observed))


def main(argv: list[str]) -> None:
    mode, *rest = argv
    if mode == "writer":
        writer(Path(rest[0]), int(rest[1]))
    elif mode == "diskfull":
        diskfull(Path(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: use writer or diskfull")


if __name__ == "__main__":
    main(sys.argv[1:])
