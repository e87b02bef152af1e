"""Store and forward over HTTP, end to end: real SQLite spool -> Delivery -> a real ``central-ingest serve``.

The helpers that start central processes (``central_command``, ``central_env``, ``start_central``)
are shared with test_delivery_mqtt.py.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.http_uplink import HttpTransport
from edge_agent.delivery.sender import Delivery, DeliveryStats
from edge_agent.delivery.spool import Spool, SpoolConfig
from event_contract import CountBucket, CountIntervalEvent, Event, HealthEvent
from ioc_common.backoff import BackoffConfig
from tests.unit.test_delivery_sender import MemoryDeadLetters

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_S = 60.0
# Recent times: central's clock sanity refuses events older than its retention window.
BASE = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=10)


def central_command() -> list[str]:
    """The installed console script when there is one, else the same entry point via ``-m``."""
    script = Path(sys.executable).with_name("central-ingest")
    return [str(script)] if script.exists() else [sys.executable, "-m", "central_ingest"]


def central_env(dsn: str, **settings: str) -> dict[str, str]:
    """The environment of a central process: ``IOC_CENTRAL_{KEY}`` for each setting."""
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    extra = {f"IOC_CENTRAL_{key.upper()}": value for key, value in settings.items()}
    return os.environ | {"IOC_CENTRAL_DATABASE_URL": dsn, "PYTHONPATH": python_path} | extra


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class CentralProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_central(args: Sequence[str], env: dict[str, str], log_path: Path) -> CentralProcess:
    """Start ``central-ingest ARGS`` with its output in ``log_path`` (a file: a full pipe would block it)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen([*central_command(), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    return CentralProcess(process, log_path)


def count_event(agent_id: str, minute: int) -> CountIntervalEvent:
    return CountIntervalEvent(
        agent_id=agent_id,
        source_id="cam-1",
        line_id="line-1",
        time=BASE + dt.timedelta(minutes=minute),
        interval_s=60,
        counts=(CountBucket(vehicle_class="car", direction="in", count=minute % 7 + 1),),
    )


def health_event(agent_id: str, minute: int) -> HealthEvent:
    return HealthEvent(agent_id=agent_id, source_id="cam-1", time=BASE + dt.timedelta(minutes=minute), state="live")


def site_events(agent_id: str, intervals: int) -> list[Event]:
    """``intervals`` count intervals and one health event every 10 minutes."""
    events: list[Event] = [count_event(agent_id, m) for m in range(intervals)]
    events += [health_event(agent_id, m) for m in range(0, intervals, 10)]
    return events


def stored_rows(dsn: str, agent_id: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE agent_id = %s", (agent_id,)).fetchone()[0]  # type: ignore[index]
            for table in ("count_intervals", "health")
        }


def fast_config(**values: object) -> UplinkConfig:
    base: dict[str, object] = {
        "flush_interval_s": 0.05,
        "timeout_s": 5.0,
        "retry": BackoffConfig(base_s=0.05, ceiling_s=0.5),
        "breaker": {"failure_threshold": 1000},
    }
    return UplinkConfig.model_validate(base | values)


def eventually(what: str, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)


@dataclass
class Central:
    url: str
    dsn: str

    def add_agent(self, agent_id: str) -> str:
        added = subprocess.run(
            [*central_command(), "agent", "add", agent_id],
            env=central_env(self.dsn),
            check=True,
            capture_output=True,
            timeout=60,
        )
        return added.stdout.decode().strip()


@pytest.fixture(scope="module")
def central(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Central]:
    env = central_env(pg_dsn)
    subprocess.run([*central_command(), "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    server = start_central(["serve", "--port", str(port)], env, tmp_path_factory.mktemp("central") / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if server.process.poll() is not None:
                pytest.fail(f"central-ingest serve exited with {server.process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "central-ingest serve did not become ready"
            time.sleep(0.1)
        yield Central(url, pg_dsn)
    finally:
        server.stop()


def _deliver(
    agent_id: str, config: UplinkConfig, spool: Spool, events: Sequence[Event], timeout: float
) -> DeliveryStats:
    delivery = Delivery(
        agent_id, config, spool, HttpTransport(config), dead_letters=MemoryDeadLetters(), rng=random.Random(5)
    )
    delivery.submit_many(events)
    return delivery.close(timeout=timeout)


def test_spooled_events_are_stored_once_at_central(central: Central, tmp_path: Path) -> None:
    agent = "edge-delivery-http-1"
    config = fast_config(url=central.url, token=central.add_agent(agent), batch_max_events=64)
    # One event 20 hours ahead of central's clock: central refuses it alone (clock sanity).
    future = count_event(agent, 30 * 60)
    events = [*site_events(agent, 300), future]
    dead = MemoryDeadLetters()
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite")) as spool:
        delivery = Delivery(agent, config, spool, HttpTransport(config), dead_letters=dead)
        delivery.submit_many(events)
        stats = delivery.close(timeout=60)

    assert stats.backlog_events == 0
    assert (stats.sent_events, stats.stored_events, stats.duplicate_events) == (331, 330, 0)
    assert (stats.rejected_events, stats.refused_events, stats.retries) == (1, 0, 0)
    assert stats.sent_batches >= 331 // 64
    assert stored_rows(central.dsn, agent) == {"count_intervals": 300, "health": 30}
    [letter] = dead.letters
    assert (letter.code, letter.raw) == ("refused_by_central", future.model_dump_json().encode())
    assert "ahead of central's clock" in letter.reason


def test_a_backlog_left_while_central_was_unreachable_is_sent_after_a_restart(central: Central, tmp_path: Path) -> None:
    agent = "edge-delivery-http-2"
    token = central.add_agent(agent)
    events = site_events(agent, 50)
    path = tmp_path / "spool.sqlite"

    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with Spool(SpoolConfig(path=path)) as spool:
        offline = _deliver(agent, fast_config(url=dead_url, token=token), spool, events, timeout=0.5)
    assert offline.sent_events == 0
    assert offline.retries >= 1
    assert offline.backlog_events == 55  # kept for the next start, not lost
    assert "ConnectError" in offline.last_error

    with Spool(SpoolConfig(path=path)) as spool:  # the agent starts again, now with central reachable
        online = _deliver(agent, fast_config(url=central.url, token=token), spool, [], timeout=60)
        assert spool.stats().pending_events == 0
    assert (online.sent_events, online.stored_events, online.backlog_events) == (55, 55, 0)
    assert stored_rows(central.dsn, agent) == {"count_intervals": 50, "health": 5}


def test_events_resent_after_a_lost_ack_are_duplicates_not_new_rows(central: Central, tmp_path: Path) -> None:
    agent = "edge-delivery-http-3"
    config = fast_config(url=central.url, token=central.add_agent(agent))
    events = site_events(agent, 20)
    with Spool(SpoolConfig(path=tmp_path / "first.sqlite")) as spool:
        first = _deliver(agent, config, spool, events, timeout=30)
    # A second spool holding the same events: what an agent resends when an ack was lost.
    with Spool(SpoolConfig(path=tmp_path / "second.sqlite")) as spool:
        again = _deliver(agent, config, spool, events, timeout=30)

    assert (first.stored_events, first.duplicate_events) == (22, 0)
    assert (again.stored_events, again.duplicate_events, again.backlog_events) == (0, 22, 0)
    assert stored_rows(central.dsn, agent) == {"count_intervals": 20, "health": 2}
