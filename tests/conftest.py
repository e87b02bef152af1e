"""Real services for integration tests, started privately by the test session on free ports under a
temporary state dir, and stopped (their files removed) when the session ends.

Fixture contract:
- `pg_cluster` (session): the running `PostgresCluster` (fsync off: throw-away data).
- `pg_dsn` (module): DSN of a fresh database per test module, with the timescaledb extension.
- `mqtt_broker` (session): the running `MosquittoBroker` (.host, .port, .username, .password).
- `rtsp_server_factory` (session): `serve(video, *, loop=False) -> "rtsp://..."`, one server per call.

A missing system piece fails the test with the command that installs it; it is never skipped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from devstack.errors import DevstackError
from devstack.mosquitto import MosquittoBroker
from devstack.postgres import PostgresCluster, PostgresSettings
from devstack.rtsp import RtspServer

_SETUP = "Run ./run test (it installs everything), or devstack/setup_system.sh for the system pieces alone."


class RtspServe(Protocol):
    def __call__(self, video: Path, *, loop: bool = False) -> str: ...


def _start_or_fail(what: str, start: Callable[[], None]) -> None:
    try:
        start()
    except DevstackError as error:
        pytest.fail(f"could not start {what} for the tests:\n{error}\n{_SETUP}", pytrace=False)


@pytest.fixture(scope="session")
def devstack_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's private state dir for every service below."""
    return tmp_path_factory.mktemp("devstack")


@pytest.fixture(scope="session")
def pg_cluster(devstack_state_dir: Path) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(devstack_state_dir, PostgresSettings(durable=False))
    try:
        _start_or_fail("PostgreSQL+TimescaleDB", cluster.start)
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def pg_dsn(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    module = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    name = f"t_{module[:40]}_{uuid.uuid4().hex[:8]}"
    dsn = pg_cluster.create_database(name)
    try:
        yield dsn
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="session")
def mqtt_broker(devstack_state_dir: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(devstack_state_dir)
    try:
        _start_or_fail("mosquitto", broker.start)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def rtsp_server_factory(devstack_state_dir: Path) -> Iterator[RtspServe]:
    servers: list[RtspServer] = []

    def serve(video: Path, *, loop: bool = False) -> str:
        stream = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(video).stem) or "video"
        server = RtspServer(devstack_state_dir, {stream: Path(video)}, loop=loop, name=f"rtsp-{len(servers)}")
        servers.append(server)
        _start_or_fail(f"the RTSP server for {video}", server.start)
        return server.url(stream)

    try:
        yield serve
    finally:
        for server in servers:
            server.stop()
