"""The real ``central-ingest`` process: migrate, add an agent, serve, and take a batch over HTTP."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from event_contract import CountBucket, CountIntervalEvent, EventBatch
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_S = 60.0


def _command() -> list[str]:
    """The installed console script when there is one, else the same entry point via ``-m``."""
    script = Path(sys.executable).with_name("central-ingest")
    return [str(script)] if script.exists() else [sys.executable, "-m", "central_ingest"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(pg_dsn: str) -> dict[str, str]:
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return os.environ | {"IOC_CENTRAL_DATABASE_URL": pg_dsn, "PYTHONPATH": python_path}


@pytest.fixture(scope="module")
def server(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = _env(pg_dsn)
    # A file, not a pipe: a pipe nobody reads would block the server once its buffer fills.
    log_path = tmp_path_factory.mktemp("central-serve") / "serve.log"
    subprocess.run([*_command(), "migrate"], env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*_command(), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"central-ingest serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("central-ingest serve did not become ready")
            time.sleep(0.1)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_served_process_takes_a_batch_over_http(pg_dsn: str, server: str) -> None:
    added = subprocess.run(
        [*_command(), "agent", "add", "edge-http-1"], env=_env(pg_dsn), check=True, capture_output=True, timeout=60
    )
    token = added.stdout.decode().strip()
    # Recent enough for clock sanity (events older than the retention are refused).
    start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    batch = EventBatch(
        agent_id="edge-http-1",
        events=tuple(
            CountIntervalEvent(
                agent_id="edge-http-1",
                source_id="cam-http",
                line_id="line-1",
                time=start + dt.timedelta(minutes=m),
                interval_s=60,
                counts=(CountBucket(vehicle_class="motorbike", direction="in", count=m + 1),),
            )
            for m in range(5)
        ),
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server, timeout=10.0) as http:
        ack = http.post("/api/v1/events", content=batch.model_dump_json(), headers=headers)
        assert ack.status_code == 200, ack.text
        assert ack.json() == {"received": 5, "stored": 5, "duplicates": 0, "rejected": 0, "rejections": []}
        window = {"start": start.isoformat(), "end": (start + dt.timedelta(hours=1)).isoformat()}
        assert http.get("/api/v1/counts/totals", params=window).status_code == 401  # reads need a session
        totals = http.get("/api/v1/counts/totals", params=window, headers=api_headers(pg_dsn)).json()
    keys = ("agent_id", "source_id", "line_id", "vehicle_class", "direction", "count", "intervals", "coverage")
    assert [{key: row[key] for key in keys} for row in totals] == [
        {
            "agent_id": "edge-http-1",
            "source_id": "cam-http",
            "line_id": "line-1",
            "vehicle_class": "motorbike",
            "direction": "in",
            "count": 15,
            "intervals": 5,
            "coverage": None,  # these events carry no quality: unknown, not full
        }
    ]

    listed = subprocess.run(
        [*_command(), "agent", "list"], env=_env(pg_dsn), check=True, capture_output=True, timeout=60
    )
    assert listed.stdout.decode().startswith("edge-http-1\t")
    assert "active" in listed.stdout.decode()
