"""Central's live proxy end to end: the real app served by uvicorn on TimescaleDB, real WebSocket viewers, and a
real agent preview server (fed by hand, no camera) as the upstream.

Two viewers of one camera share one agent connection and get the agent's records byte for byte; the proxy
refuses strangers (4401), wrong roles and cameras outside a commune user's area (4403), unknown cameras (4404)
and cross-site handshakes (403); when the agent restarts, the proxy reconnects and the viewer gets frames again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from central_ingest.access.roles import Role
from central_ingest.app import create_app
from central_ingest.live.hub import LiveCapacityError, LiveHub
from central_ingest.live.routes import close_live_hub
from central_ingest.live.settings import LiveSettings
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from devstack.ports import free_port, wait_until
from edge_agent.analytics.lines import LineConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.types import Frame
from edge_agent.pipeline import StepResult
from edge_agent.preview.config import PreviewConfig
from edge_agent.preview.feed import CameraFeed
from edge_agent.preview.server import PreviewServer, PreviewSources
from ioc_common.backoff import BackoffConfig
from ioc_common.live_records import CONTENT_TYPE, LiveRecord, decode_records, encode_record
from tests.api_sessions import API_PASSWORD, open_users
from tests.unit.test_annotate import cars
from tests.unit.test_preview_server import stats

pytestmark = pytest.mark.integration

AGENT = "hue-agent-1"
PASSWORD = API_PASSWORD
LINE = LineConfig(id="north", start=(0.0, 0.5), end=(1.0, 0.5))
T0 = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)
WAIT_S = 10.0
USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "operator.an": ("operator", ()),
    "operator.kimlong": ("operator", ("Huế/Phú Xuân/Kim Long",)),
    "police.binh": ("police", ()),
    "tech.chi": ("technician", ()),
}
LIVE = LiveSettings(
    idle_close_s=0.2,
    reconnect_backoff=BackoffConfig(base_s=0.05, ceiling_s=0.2),
    down_after_failures=1000,
    stall_after_s=60,
)


class Agent:
    """A real preview server for cameras cam-1 and cam-2, fed by hand; restartable on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.cameras = tuple(CameraConfig(id=c, url="rtsp://example/1", lines=(LINE,)) for c in ("cam-1", "cam-2"))
        self.feeds = {c.id: CameraFeed(c.id, c.lines) for c in self.cameras}
        self.sequence = 0
        self.server = self._start()

    def _start(self) -> PreviewServer:
        sources = PreviewSources(
            agent_id=AGENT,
            cameras=self.cameras,
            feeds=self.feeds,
            pipeline_stats=lambda: [stats(c.id) for c in self.cameras],
        )
        server = PreviewServer(PreviewConfig(port=self.port, max_fps=30, keepalive_s=0.2), sources)
        server.start()
        return server

    def restart(self) -> None:
        self.server.stop()
        self.server = self._start()

    def live_url(self, camera_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/cameras/{camera_id}/live"

    def push(self, camera_id: str = "cam-1") -> None:
        self.sequence += 1
        image = np.full((360, 640, 3), 60 + self.sequence % 100, np.uint8)
        frame = Frame(image, camera_id, self.sequence, T0 + dt.timedelta(seconds=self.sequence))
        result = StepResult(tracked=cars([(100, 100, 200, 200)], [7]), crossings=(), events=())
        self.feeds[camera_id].observe(frame, result)

    def open_live_streams(self) -> int:
        return self.server.limiter.open_streams()["live"]


@dataclass
class World:
    agent: Agent
    url: str
    sessions: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.url

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sessions[username]}"}

    def viewer(
        self, camera: str = "cam-1", username: str | None = "operator.an", origin: str | None = "own"
    ) -> ClientConnection:
        headers = {"Cookie": f"ioc_session={self.sessions[username]}"} if username else {}
        return connect(
            f"ws{self.url.removeprefix('http')}/api/v1/live/{AGENT}/{camera}/ws",
            origin=self.origin if origin == "own" else origin,  # type: ignore[arg-type]
            additional_headers=headers,
            proxy=None,
            compression=None,
            open_timeout=WAIT_S,
        )

    def get(self, path: str, username: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.bearer(username), timeout=WAIT_S, trust_env=False)

    def stats(self) -> dict[str, Any]:
        answer = self.get("/api/v1/live/stats", "tech.chi")
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document


def next_record(ws: ClientConnection, statuses: list[str] | None = None) -> LiveRecord:
    """The next binary message as a record; status messages on the way are noted in ``statuses``."""
    while True:
        message = ws.recv(timeout=WAIT_S)
        if isinstance(message, bytes):
            [record] = decode_records([message])
            return record
        status = json.loads(message)
        assert status["type"] == "status", status
        assert status["detail_vi"], status
        assert status["detail_en"], status
        if statuses is not None:
            statuses.append(status["state"])


def next_frame(ws: ClientConnection, statuses: list[str] | None = None) -> LiveRecord:
    """The next picture record, skipping keepalives (the agent sends one every 0.2 s while no frame comes)."""
    for _ in range(int(WAIT_S / 0.2)):
        record = next_record(ws, statuses)
        if not record.keepalive:
            return record
    raise AssertionError("only keepalives: no frame reached the viewer")


def _read_until_closed(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=WAIT_S)


def close_code(connection: ClientConnection) -> int | None:
    """The code the proxy closed ``connection`` with (after whatever it sent first)."""
    with connection as ws, pytest.raises(ConnectionClosed) as closed:
        _read_until_closed(ws)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def eventually(condition: Callable[[], bool], what: str) -> None:
    assert wait_until(condition, timeout_s=WAIT_S, still_worth_waiting=lambda: True), what


async def _populate(dsn: str, world: World) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        world.sessions.update(await open_users(conn, USERS))


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    apply_migrations(pg_dsn)
    agent = Agent()
    sites = (
        SiteConfig(
            id="cam-1",
            agent_id=AGENT,
            name="Cầu Trường Tiền",
            lat=16.4685,
            lon=107.5857,
            province="Huế",
            district="Phú Xuân",
            commune="Phú Hội",
            live_url=agent.live_url("cam-1"),
        ),
        SiteConfig(
            id="cam-2",
            agent_id=AGENT,
            name="Hầm chui Kim Long",
            lat=16.458,
            lon=107.5512,
            province="Huế",
            district="Phú Xuân",
            commune="Kim Long",
            preview_url=f"http://127.0.0.1:{agent.port}/cameras/cam-2/preview.mjpg",
        ),
        SiteConfig(id="cam-3", agent_id=AGENT, name="Chưa nối", lat=16.46, lon=107.59, province="Huế"),
    )
    with psycopg.connect(pg_dsn) as conn:
        add_agent(conn, AGENT)
        import_sites(conn, sites)
    keys = tmp_path_factory.mktemp("live") / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    settings = Settings(
        database_url=pg_dsn, plate_keys_file=keys, pool_max_size=4, maintenance_enabled=False, migrate_on_start=False
    )
    app = create_app(settings)
    app.state.ioc_live_settings = LIVE
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    loop_box: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loop_box.append(loop)
        loop.run_until_complete(server.serve())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    world = World(agent, f"http://127.0.0.1:{port}")
    asyncio.run(_populate(pg_dsn, world))
    try:
        eventually(lambda: server.started, "uvicorn to start")
        yield world
    finally:
        if loop_box and server.started:
            asyncio.run_coroutine_threadsafe(close_live_hub(app), loop_box[0]).result(timeout=WAIT_S)
        server.should_exit = True
        thread.join(timeout=WAIT_S)
        agent.server.stop()


def test_cameras_list_only_the_callers_area(world: World) -> None:
    everything = world.get("/api/v1/live/cameras", "operator.an")
    assert everything.status_code == 200, everything.text
    assert [(c["camera_id"], c["area_path"], c["live"]) for c in everything.json()] == [
        ("cam-1", "Huế/Phú Xuân/Phú Hội", True),
        ("cam-2", "Huế/Phú Xuân/Kim Long", True),  # derived from its preview_url
        ("cam-3", "Huế", False),
    ]
    commune = world.get("/api/v1/live/cameras", "operator.kimlong").json()
    assert [(c["agent_id"], c["camera_id"], c["name"], c["commune"]) for c in commune] == [
        (AGENT, "cam-2", "Hầm chui Kim Long", "Kim Long")
    ]
    assert world.get("/api/v1/live/cameras", "police.binh").status_code == 403
    assert world.get("/api/v1/live/stats", "operator.an").status_code == 403


def test_two_viewers_share_one_upstream_and_get_the_agents_bytes(world: World) -> None:
    agent = world.agent
    agent.push()
    with world.viewer() as first, world.viewer() as second:
        statuses: list[str] = []
        records = [next_frame(first, statuses), next_frame(second)]
        assert statuses[-1] == "live"
        sample = agent.feeds["cam-1"].latest()
        assert sample is not None
        sent = agent.server.live.frame_record("cam-1", sample)  # the agent's cached record of that frame
        assert [r.raw for r in records] == [sent, sent]  # byte for byte: no re-encode, no header rewrite
        assert records[0].header["camera_id"] == "cam-1"
        assert agent.open_live_streams() == 1
        agent.push()
        assert next_frame(first).header["sequence"] == next_frame(second).header["sequence"] == sample.sequence + 1
        [camera] = [c for c in world.stats()["cameras"] if c["camera_id"] == "cam-1"]
        assert (camera["viewers"], camera["state"]) == (2, "live")
        assert camera["frames_relayed"] >= 2
    # The last viewer left: the agent connection closes a moment later.
    eventually(lambda: agent.open_live_streams() == 0, "the upstream to close after the last viewer")
    eventually(lambda: world.stats()["upstreams"] == 0, "the hub to forget the camera")


def test_refusals_carry_their_close_codes(world: World) -> None:
    before = world.stats()["refused"]
    assert close_code(world.viewer(username=None)) == 4401
    assert close_code(world.viewer(username="police.binh")) == 4403  # wrong role
    assert close_code(world.viewer("cam-1", username="operator.kimlong")) == 4403  # outside the user's area
    assert close_code(world.viewer("cam-9", username="operator.kimlong")) == 4403  # says nothing about existence
    assert close_code(world.viewer("cam-9")) == 4404
    assert close_code(world.viewer("cam-3")) == 4404  # registered, but no live address known
    for origin in ("http://evil.example", None):  # cross-site hijacking, or a cookie without any Origin
        with pytest.raises(InvalidStatus) as refused:
            world.viewer(origin=origin)
        assert refused.value.response.status_code == 403
    after = world.stats()["refused"]
    assert after.get("origin", 0) - before.get("origin", 0) == 2
    assert after.get("unauthenticated", 0) - before.get("unauthenticated", 0) == 1
    assert after.get("forbidden", 0) - before.get("forbidden", 0) == 3
    assert after.get("not_found", 0) - before.get("not_found", 0) == 2


def test_the_commune_user_watches_its_own_camera(world: World) -> None:
    world.agent.push("cam-2")
    with world.viewer("cam-2", username="operator.kimlong") as viewer:
        assert next_frame(viewer).header["camera_id"] == "cam-2"


def test_the_proxy_reconnects_when_the_agent_restarts(world: World) -> None:
    agent = world.agent
    agent.push()
    with world.viewer() as viewer:
        statuses: list[str] = []
        before = next_frame(viewer, statuses)
        agent.restart()
        agent.push()
        after = next_frame(viewer, statuses)
        assert after.header["sequence"] > before.header["sequence"]
        assert "connecting" in statuses[statuses.index("live") :]  # told while the agent was away
        assert statuses[-1] == "live"
        [camera] = [c for c in world.stats()["cameras"] if c["camera_id"] == "cam-1"]
        assert camera["reconnects"] >= 1


# -- the hub on its own (no central, no database): bounds, drops and the down state --------------------------------


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_S / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_slow_viewer_keeps_only_the_newest_records_and_the_drops_are_counted() -> None:
    agent = Agent()

    async def scenario() -> None:
        hub = LiveHub(LIVE)
        channel, viewer = hub.join((AGENT, "cam-1"), agent.live_url("cam-1"))
        try:
            # The viewer reads nothing while frames come: its queue holds 2 records, older ones are dropped.
            while channel.stats.frames_relayed < 5:
                agent.push()
                await asyncio.sleep(0.02)
            offered = channel.stats.frames_relayed + channel.stats.keepalives_relayed
            assert channel.stats.dropped == offered - LIVE.viewer_queue_records
            messages = [await viewer.get(0) for _ in range(4)]
            assert isinstance(messages[0], str)  # the latest status comes first
            records = [decode_records([m])[0] for m in messages[1:3] if isinstance(m, bytes)]
            assert len(records) == 2
            assert messages[3] is None  # nothing else was kept
        finally:
            await hub.aclose()

    try:
        asyncio.run(scenario())
    finally:
        agent.server.stop()


def test_bounds_refuse_viewers_and_upstreams_beyond_them() -> None:
    async def scenario() -> None:
        hub = LiveHub(LiveSettings(max_upstreams=1, max_viewers_per_camera=1, max_viewers=5))
        try:
            hub.join((AGENT, "cam-1"), "http://127.0.0.1:9/cameras/cam-1/live")
            with pytest.raises(LiveCapacityError, match="too many cameras"):
                hub.join((AGENT, "cam-2"), "http://127.0.0.1:9/cameras/cam-2/live")
            with pytest.raises(LiveCapacityError, match="too many viewers"):
                hub.join((AGENT, "cam-1"), "http://127.0.0.1:9/cameras/cam-1/live")
            assert hub.stats_document()["refused"] == {"upstreams": 1, "viewers": 1}
            assert hub.viewers == 1
        finally:
            await hub.aclose()

    asyncio.run(scenario())


def test_an_upstream_that_is_not_a_live_stream_ends_down_and_keeps_being_retried() -> None:
    agent = Agent()
    settings = LIVE.model_copy(update={"down_after_failures": 2, "down_retry_s": 0.05})

    async def scenario() -> None:
        hub = LiveHub(settings)
        mjpeg = f"http://127.0.0.1:{agent.port}/cameras/cam-1/preview.mjpg"  # the agent answers, but with MJPEG
        channel, viewer = hub.join((AGENT, "cam-1"), mjpeg)
        try:
            states: list[str] = []
            while not states or states[-1] != "down":
                message = await viewer.get(WAIT_S)
                assert isinstance(message, str), "no status came"
                states.append(json.loads(message)["state"])
            assert states[0] == "connecting"
            assert "not application/x-ioc-live" in channel.stats.last_error
            await _until(lambda: channel.stats.reconnects >= 4, "retries while down")
        finally:
            await hub.aclose()

    try:
        asyncio.run(scenario())
    finally:
        agent.server.stop()


class ShortLivedAgent:
    """An agent whose live stream dies right after connecting: it answers 200, sends its opening keepalive (and,
    with ``frame``, one picture) and closes. The time of every connection is kept."""

    def __init__(self, *, frame: bool = False) -> None:
        self.frame = frame
        self.connected_at: list[float] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/cameras/cam-1/live"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected_at.append(asyncio.get_running_loop().time())
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            body = encode_record({"type": "keepalive", "camera_id": "cam-1", "sequence": 0, "sent_at_ms": 0})
            if self.frame:
                body += encode_record({"type": "frame", "camera_id": "cam-1", "sequence": 1}, b"\xff\xd8jpeg\xff\xd9")
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def test_a_stream_that_dies_after_its_opening_keepalive_backs_off_and_ends_down() -> None:
    # Before the fix the keepalive reset the failures: reconnected ~every 25 ms forever, never reported down.
    settings = LIVE.model_copy(update={"down_after_failures": 4, "down_retry_s": 0.5, "stall_after_s": 60})
    agent = ShortLivedAgent()

    async def scenario() -> None:
        url = await agent.start()
        hub = LiveHub(settings)
        channel, viewer = hub.join((AGENT, "cam-1"), url)
        try:
            await _until(lambda: channel.state == "down", "the camera to be reported down")
            assert channel.stats.connects == channel.stats.reconnects == settings.down_after_failures
            assert channel.stats.keepalives_relayed == settings.down_after_failures
            down_at = asyncio.get_running_loop().time()
            await asyncio.sleep(1.6)
            assert channel.state == "down"
            later = [at for at in agent.connected_at if at > down_at]
            # Down: one try per down_retry_s (0.5 s), i.e. at most 4 in 1.6 s, not the ~60 at the backoff's base.
            assert 2 <= len(later) <= 4, later
            gaps = [b - a for a, b in itertools.pairwise(later)]
            assert all(gap >= settings.down_retry_s * 0.9 for gap in gaps), gaps
            states = []
            while (message := await viewer.get(0)) is not None:
                if isinstance(message, str):
                    states.append(json.loads(message)["state"])
            assert states[-1] == "down"
        finally:
            await hub.aclose()
            await agent.aclose()

    asyncio.run(scenario())


def test_a_stream_that_delivered_a_picture_counts_as_working_and_is_not_reported_down() -> None:
    settings = LIVE.model_copy(update={"down_after_failures": 2, "down_retry_s": 5, "stall_after_s": 60})
    agent = ShortLivedAgent(frame=True)

    async def scenario() -> None:
        url = await agent.start()
        hub = LiveHub(settings)
        channel, _ = hub.join((AGENT, "cam-1"), url)
        try:
            # Each connection brought a frame: the failures start from zero each time, the backoff stays at its base.
            await _until(lambda: channel.stats.connects >= 3 * settings.down_after_failures, "repeated reconnects")
            assert channel.state != "down"
            assert channel.stats.frames_relayed >= 3 * settings.down_after_failures
        finally:
            await hub.aclose()
            await agent.aclose()

    asyncio.run(scenario())
