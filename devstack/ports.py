"""Free local ports and readiness checks on them."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    """Returns a port the OS reports free right now (bind to port 0), for a service started next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], *, timeout_s: float, still_worth_waiting: Callable[[], bool]) -> bool:
    """Polls `condition` with a growing pause (10 ms up to 200 ms) until it holds, the timeout passes,
    or `still_worth_waiting` says the awaited process is gone. Returns whether the condition held."""
    deadline = time.monotonic() + timeout_s
    pause = 0.01
    while True:
        if condition():
            return True
        if not still_worth_waiting() or time.monotonic() >= deadline:
            return condition()
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
