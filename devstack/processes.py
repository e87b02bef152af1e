"""Long-running child processes tracked by pid files, so a later `stop` (even from another process,
even after a crash of the one that started them) finds and ends exactly those processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devstack.errors import DevstackError


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds. `start_ticks` (field 22 of /proc/PID/stat) guards against pid reuse:
    a pid whose start time differs is another process and is never signalled."""

    pid: int
    start_ticks: int
    argv: tuple[str, ...]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start ticks) of a live pid, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    stat = _proc_stat(record.pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == record.start_ticks


def read_record(pid_path: Path) -> ProcessRecord | None:
    try:
        data = json.loads(pid_path.read_text())
        return ProcessRecord(pid=int(data["pid"]), start_ticks=int(data["start_ticks"]), argv=tuple(data["argv"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_record(pid_path: Path) -> ProcessRecord | None:
    """The record of the pid file when its process is still running, else None."""
    record = read_record(pid_path)
    return record if record is not None and is_alive(record) else None


def spawn(argv: list[str], *, pid_path: Path, log_path: Path, cwd: Path | None = None) -> ProcessRecord:
    """Starts `argv` in its own session (a Ctrl-C in the caller's terminal does not reach it), output
    appended to `log_path`, and writes its pid file. posix_spawn instead of Popen: the process outlives
    the CLI that starts it, and no Popen object is left to complain about a child still running."""
    executable = shutil.which(argv[0])
    if executable is None:
        raise DevstackError(f"program not found: {argv[0]}")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        file_actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ]
        if cwd is not None:
            # posix_spawn has no cwd argument before Python 3.13: change it in a tiny shell wrapper.
            argv = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), executable, *argv[1:]]
            executable = argv[0]
        pid = os.posix_spawn(executable, argv, dict(os.environ), file_actions=file_actions, setsid=True)
    finally:
        os.close(log_fd)
    stat = _proc_stat(pid)
    record = ProcessRecord(pid=pid, start_ticks=stat[1] if stat is not None else -1, argv=tuple(argv))
    pid_path.write_text(json.dumps(asdict(record)))
    return record


def _reap(pid: int) -> None:
    """Collects the exit status when the process is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(record: ProcessRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(record.pid)
        if not is_alive(record):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(pid_path: Path, *, timeout_s: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout_s`; removes the pid file. Returns whether a process was running."""
    record = read_record(pid_path)
    was_running = record is not None and is_alive(record)
    if record is not None and was_running:
        _signal(record, signal.SIGTERM)
        if not _wait_gone(record, timeout_s):
            _signal(record, signal.SIGKILL)
            if not _wait_gone(record, 5.0):
                raise DevstackError(f"process {record.pid} ({' '.join(record.argv)}) survived SIGKILL")
    pid_path.unlink(missing_ok=True)
    return was_running


def kill(pid_path: Path) -> bool:
    """SIGKILL at once, as a crash would; the pid file stays (as after a real crash). Used for fault injection."""
    record = running_record(pid_path)
    if record is None:
        return False
    _signal(record, signal.SIGKILL)
    _wait_gone(record, 5.0)
    return True


def _signal(record: ProcessRecord, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signum)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
