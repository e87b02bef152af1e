"""Open streams follow the user's sign-out, disabling, roles and areas: the real app on TimescaleDB, served by
uvicorn in a thread, with the recheck intervals shortened to 0.3 s.

The alert event stream ends (``: session ended``) after a sign-out, a disabled user or a lost reader role, and
its visible notices follow an area change; a live view WebSocket closes with 4401 (session gone) or 4403 (no live
role, camera no longer in the user's area); the live proxy's counters list only the caller's cameras.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from central_ingest.access.admin import set_areas, set_disabled, set_roles
from central_ingest.access.roles import Role
from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.sinks import SseBroker
from central_ingest.alerts.sinks import routes as stream_routes
from central_ingest.app import create_app
from central_ingest.live import routes as live_routes
from central_ingest.live.routes import close_live_hub
from central_ingest.live.settings import LiveSettings
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from devstack.ports import free_port, wait_until
from tests.api_sessions import CHEAP_KDF, SETUP_ACTOR, bearer, open_api_session

pytestmark = pytest.mark.integration

PHU_HOI = "Huế/Phú Xuân/Phú Hội"
KIM_LONG = "Huế/Phú Xuân/Kim Long"
A, B = "agent-a", "agent-b"
OWN, OTHER = f"source:{A}/cam-a", f"source:{B}/cam-b"
"""The Phú Hội camera's and the Kim Long camera's alert subjects."""
RECHECK_S = 0.3
WAIT_S = 10.0
LIVE = LiveSettings(idle_close_s=0.2, status_every_s=0.2, connect_timeout_s=0.5)


@dataclass
class World:
    url: str
    dsn: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop
    users: int = 0

    def db(self, action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]]) -> Any:
        async def run() -> Any:
            async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                return await action(conn)

        return asyncio.run(run())

    def user(self, role: Role, *areas: str) -> tuple[str, dict[str, str]]:
        """A new user of ``role`` and ``areas`` (none: the whole province), and its bearer header."""
        self.users += 1
        username = f"user.{self.users}"
        token = self.db(lambda conn: open_api_session(conn, username, (role,), areas=areas))
        return username, bearer(token)

    def broker(self) -> SseBroker:
        broker: SseBroker = self.app.state.ioc_sse
        return broker

    def publish(self, subject: str) -> None:
        """A notice of ``subject`` straight into the stream broker, on the server's loop."""
        notice = notice_of(subject)
        asyncio.run_coroutine_threadsafe(self.broker().deliver(notice), self.loop).result(timeout=WAIT_S)

    def viewer(self, headers: dict[str, str], camera: str = "cam-a", agent: str = A) -> ClientConnection:
        return connect(
            f"ws{self.url.removeprefix('http')}/api/v1/live/{agent}/{camera}/ws",
            additional_headers=headers,  # a bearer token and no Origin: an API client
            proxy=None,
            open_timeout=WAIT_S,
        )


def notice_of(subject: str) -> AlertNotice:
    return AlertNotice.model_validate(
        {
            "alert_id": uuid.uuid4(),
            "rule_id": "im-lang",
            "rule_kind": "source_silent",
            "subject": subject,
            "status": "open",
            "transition": "opened",
            "severity": "warning",
            "message_vi": "Camera im lặng",
            "message_en": "Camera silent",
            "opened_at": "2025-03-01T08:30:00Z",
            "changed_at": "2025-03-01T08:30:00Z",
        }
    )


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    apply_migrations(pg_dsn)
    dead = f"http://127.0.0.1:{free_port()}"  # no agent answers: the views are about access, not pictures
    place = {"province": "Huế", "district": "Phú Xuân"}
    sites = (
        SiteConfig(id="cam-a", agent_id=A, name="Cầu Trường Tiền", lat=16.468, lon=107.585, commune="Phú Hội",
                   live_url=f"{dead}/cameras/cam-a/live", **place),
        SiteConfig(id="cam-b", agent_id=B, name="Hầm chui Kim Long", lat=16.458, lon=107.551, commune="Kim Long",
                   live_url=f"{dead}/cameras/cam-b/live", **place),
    )  # fmt: skip
    with psycopg.connect(pg_dsn) as conn:
        for agent in (A, B):
            add_agent(conn, agent)
        import_sites(conn, sites)
    keys = tmp_path_factory.mktemp("revocation") / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    settings = Settings(
        database_url=pg_dsn,
        plate_keys_file=keys,
        pool_max_size=4,
        maintenance_enabled=False,
        migrate_on_start=False,
        alert_sinks={"sse": {"heartbeat_s": 0.2}},
    )
    app = create_app(settings)
    app.state.ioc_live_settings = LIVE
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        loop.run_until_complete(server.serve())
        loop.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream_routes, "SESSION_RECHECK_S", RECHECK_S)
        patch.setattr(live_routes, "SESSION_RECHECK_S", RECHECK_S)
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            assert wait_until(lambda: server.started, timeout_s=WAIT_S, still_worth_waiting=lambda: True)
            yield World(f"http://127.0.0.1:{port}", pg_dsn, app, loops[0])
        finally:
            if loops and server.started:
                asyncio.run_coroutine_threadsafe(close_live_hub(app), loops[0]).result(timeout=WAIT_S)
            server.should_exit = True
            thread.join(timeout=WAIT_S)


class AlertStream:
    """One user's alert stream, read in a thread: notices' subjects land in ``subjects``, comments in ``comments``;
    ``ended`` is set when the server ends the response."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.subjects: queue.Queue[str] = queue.Queue()
        self.comments: list[str] = []
        self.connected = threading.Event()
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()
        assert self.connected.wait(WAIT_S), "the stream did not say connected"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(5.0, read=WAIT_S)
        with httpx.Client(timeout=timeout, headers=headers) as client, client.stream("GET", url) as response:
            assert response.status_code == 200, response.read()
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                    self.connected.set()
                elif line.startswith("data:"):
                    self.subjects.put(AlertNotice.model_validate_json(line[5:]).subject)
        self.ended.set()

    def next_subject(self, timeout_s: float = WAIT_S) -> str | None:
        try:
            return self.subjects.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_S)


def _revoke(world: World, how: str, username: str, headers: dict[str, str]) -> None:
    if how == "sign_out":
        answer = httpx.post(f"{world.url}/api/v1/auth/logout", headers=headers, timeout=WAIT_S)
        assert answer.status_code == 200, answer.text
    elif how == "disabled":
        world.db(lambda conn: set_disabled(conn, SETUP_ACTOR, username, True, dt.datetime.now(dt.UTC)))
    else:  # the role is replaced by one that may not read alerts nor watch cameras
        world.db(lambda conn: set_roles(conn, SETUP_ACTOR, CHEAP_KDF, username, frozenset({"auditor"})))


@pytest.mark.parametrize("how", ["sign_out", "disabled", "role"])
def test_the_alert_stream_ends_when_the_user_may_no_longer_read(world: World, how: str) -> None:
    username, headers = world.user("operator")
    revoked_before = world.broker().stats()["streams_revoked"]
    stream = AlertStream(f"{world.url}/api/v1/alerts/stream", headers)
    try:
        world.publish(OWN)
        assert stream.next_subject() == OWN
        _revoke(world, how, username, headers)
        assert stream.ended.wait(WAIT_S), f"the stream outlived the {how}"
        assert stream.comments[-1] == ": session ended"
    finally:
        stream.close()
    assert world.broker().stats()["streams_revoked"] == revoked_before + 1
    # The browser's reconnect is then refused: 401 (session gone) or 403 (role).
    again = httpx.get(f"{world.url}/api/v1/alerts/stream", headers=headers, timeout=WAIT_S)
    assert again.status_code == (403 if how == "role" else 401)


def test_a_stream_still_allowed_stays_open_across_rechecks(world: World) -> None:
    _, headers = world.user("technician", PHU_HOI)
    stream = AlertStream(f"{world.url}/api/v1/alerts/stream", headers)
    try:
        assert stream.next_subject(4 * RECHECK_S) is None  # several rechecks pass
        assert not stream.ended.is_set()
        world.publish(OTHER)
        world.publish(OWN)
        assert stream.next_subject() == OWN
    finally:
        stream.close()


@pytest.mark.parametrize("areas", [(PHU_HOI,), ()], ids=["commune", "whole_province"])
def test_the_alert_stream_follows_an_area_change(world: World, areas: tuple[str, ...]) -> None:
    username, headers = world.user("operator", *areas)
    stream = AlertStream(f"{world.url}/api/v1/alerts/stream", headers)
    try:
        world.publish(OWN)
        assert stream.next_subject() == OWN
        world.db(lambda conn: set_areas(conn, SETUP_ACTOR, username, [KIM_LONG]))
        # Within a recheck or two the stream carries Kim Long's notices, and no longer Phú Hội's.
        for _ in range(int(WAIT_S / RECHECK_S)):
            world.publish(OTHER)
            if (subject := stream.next_subject(RECHECK_S)) == OTHER:
                break
            assert subject in (None, OWN)
        else:
            raise AssertionError("the stream never carried the new area's notices")
        while stream.next_subject(2 * RECHECK_S) is not None:  # late OTHER duplicates
            pass
        world.publish(OWN)
        world.publish(OTHER)
        assert stream.next_subject() == OTHER  # the OWN one before it was not sent
        assert not stream.ended.is_set()
    finally:
        stream.close()


def _read_until_closed(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=WAIT_S)  # status messages, ignored


def _still_open(ws: ClientConnection, seconds: float) -> None:
    """Status messages (every 0.2 s) keep coming for ``seconds``: the rechecks left the view open."""
    for _ in range(int(seconds / 0.2)):
        assert isinstance(ws.recv(timeout=WAIT_S), str)


@pytest.mark.parametrize(("how", "code"), [("sign_out", 4401), ("disabled", 4401), ("role", 4403), ("area", 4403)])
def test_a_live_view_closes_when_the_user_may_no_longer_watch(world: World, how: str, code: int) -> None:
    username, headers = world.user("operator", PHU_HOI)
    with world.viewer(headers) as ws:
        _still_open(ws, 4 * RECHECK_S)
        if how == "area":
            world.db(lambda conn: set_areas(conn, SETUP_ACTOR, username, [KIM_LONG]))
        else:
            _revoke(world, how, username, headers)
        with pytest.raises(ConnectionClosed) as closed:
            _read_until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


def test_a_live_view_of_a_camera_still_in_the_new_area_stays_open(world: World) -> None:
    username, headers = world.user("technician")
    with world.viewer(headers) as ws:
        world.db(lambda conn: set_areas(conn, SETUP_ACTOR, username, [PHU_HOI]))
        _still_open(ws, 4 * RECHECK_S)


def test_live_stats_list_only_the_callers_cameras(world: World) -> None:
    _, operator = world.user("operator")
    for camera, agent in (("cam-a", A), ("cam-b", B)):  # both cameras get counters in the hub
        with world.viewer(operator, camera, agent) as ws:
            assert isinstance(ws.recv(timeout=WAIT_S), str)
    _, commune_tech = world.user("technician", PHU_HOI)
    _, province_tech = world.user("technician")

    def cameras(headers: dict[str, str]) -> list[tuple[str, str]]:
        answer = httpx.get(f"{world.url}/api/v1/live/stats", headers=headers, timeout=WAIT_S)
        assert answer.status_code == 200, answer.text
        return [(c["agent_id"], c["camera_id"]) for c in answer.json()["cameras"]]

    assert cameras(commune_tech) == [(A, "cam-a")]
    assert cameras(province_tech) == [(A, "cam-a"), (B, "cam-b")]
