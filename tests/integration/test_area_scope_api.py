"""Area scope on the real API: a commune user reads only its commune's cameras, stations, alerts and projects.

Issue 9: "The API enforces the same rules as the pages (tests call the API directly to prove a commune user
cannot read another commune's cameras or alerts)". Two communes of Huế (Phú Hội and Kim Long), each with a
camera, a water-level station, a junction and a construction project; a Phú Hội operator, a province
operator, and users of other roles. The real app (``create_app``, its alert engine and SSE stream) is served
by uvicorn in a thread; every call goes over HTTP with a bearer session.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
import uvicorn

from central_ingest.access.roles import Role
from central_ingest.app import create_app
from central_ingest.audit import AuditFilter, list_audit
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from event_contract import CountBucket, CountIntervalEvent, ProgressEvent, SensorReadingEvent, ViolationEvent
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

PHU_HOI = "Huế/Phú Xuân/Phú Hội"
KIM_LONG = "Huế/Phú Xuân/Kim Long"
A, B = "agent-a", "agent-b"
PLACE = {"province": "Huế", "district": "Phú Xuân"}
SITES = (
    SiteConfig(id="cam-a", agent_id=A, name="Cầu Trường Tiền", lat=16.468, lon=107.585, commune="Phú Hội",
               project_id="du-an-a", **PLACE),
    SiteConfig(id="tram-a", agent_id=A, kind="sensor", name="Trạm Phú Hội", lat=16.462, lon=107.596,
               commune="Phú Hội", **PLACE),
    SiteConfig(id="cam-b", agent_id=B, name="Hầm chui Kim Long", lat=16.458, lon=107.551, commune="Kim Long",
               project_id="du-an-b", **PLACE),
    SiteConfig(id="tram-b", agent_id=B, kind="sensor", name="Trạm Kim Long", lat=16.464, lon=107.554,
               commune="Kim Long", **PLACE),
)  # fmt: skip
RULES = """
junctions:
  - {id: nga-tu-a, cameras: [{agent_id: agent-a, source_id: cam-a}]}
  - {id: nga-tu-b, cameras: [{agent_id: agent-b, source_id: cam-b}]}
rules:
  - id: im-lang
    kind: source_silent
    silent_after_s: 600
    sources: [{agent_id: agent-a, source_id: cam-a}, {agent_id: agent-b, source_id: cam-b}]
"""
DEADLINE_S = 15.0
# user -> (roles, areas)
USERS: dict[str, tuple[tuple[Role, ...], tuple[str, ...]]] = {
    "xa.phuhoi": (("operator",), (PHU_HOI,)),
    "tinh.hue": (("operator",), ()),
    "ky.thuat": (("technician",), (PHU_HOI,)),
    "ban.qlda": (("project_unit",), ()),
}


def events(at: dt.datetime) -> list[Any]:
    """Per commune: a count interval and a violation of its camera, a reading of its station, a progress figure."""
    found: list[Any] = []
    communes = ((A, "cam-a", "tram-a", "du-an-a", 3.1), (B, "cam-b", "tram-b", "du-an-b", 4.2))
    for agent, camera, station, project, level in communes:
        found += [
            CountIntervalEvent(
                agent_id=agent, source_id=camera, line_id="line-1", time=at, interval_s=60,
                counts=(CountBucket(vehicle_class="car", direction="in", count=7),),
            ),
            ViolationEvent(
                agent_id=agent, source_id=camera, time=at, violation_type="red_light", category="violation", track_id=1
            ),
            SensorReadingEvent(
                agent_id=agent, source_id=station, time=at, sensor_kind="water_level", values={"water_level_m": level}
            ),
            ProgressEvent(
                agent_id=agent, source_id=camera, time=at, project_id=project, package_id="mong", percent_complete=40,
                method="camera_visual", confidence=0.8,
            ),
        ]  # fmt: skip
    return found


async def _populate(dsn: str, at: dt.datetime) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await store_events(conn, events(at))
        # Alerts of junctions and projects, written as the engine would (the silence rule makes the cameras').
        for subject in ("junction:nga-tu-a", "junction:nga-tu-b", "project:du-an-a/mong", "project:du-an-b"):
            await conn.execute(
                "INSERT INTO alerts (alert_id, opened_at, rule_id, rule_kind, subject, status, severity, message_vi, "
                "message_en, changed_at) VALUES (%s, %s, 'thu-cong', 'violation_increase', %s, 'open', 'warning', "
                "'Cảnh báo', 'Alert', %s)",
                (uuid4(), at, subject, at),
            )


@dataclass
class World:
    url: str
    dsn: str
    headers: dict[str, dict[str, str]]

    def get(self, user: str | None, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, headers=self.headers.get(user or "", {}), timeout=10)

    def ok(self, user: str, path: str, **params: Any) -> Any:
        answer = self.get(user, path, **params)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    def post(self, user: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self.headers[user], timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    apply_migrations(pg_dsn)
    at = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=2)
    with psycopg.connect(pg_dsn) as conn:
        for agent in (A, B):
            add_agent(conn, agent)
        import_sites(conn, SITES)
    asyncio.run(_populate(pg_dsn, at))
    headers = {user: api_headers(pg_dsn, user, roles, areas=areas) for user, (roles, areas) in USERS.items()}
    rules = Path(tmp_path_factory.mktemp("scope")) / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = Settings(
        database_url=pg_dsn,
        alert_rules_path=rules,
        maintenance_enabled=False,
        pool_max_size=4,
        migrate_on_start=False,
        alert_sinks={"sse": {"heartbeat_s": 0.2}},  # stream readers see a line soon after they are told to stop
    )
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", ws="none", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, "uvicorn to start")
        found = World(f"http://127.0.0.1:{port}", pg_dsn, headers)
        # The engine's first full pass opens the two silent cameras' alerts.
        _wait(lambda: len(found.ok("tinh.hue", "/api/v1/alerts")["items"]) == 6, "the silence alerts")
        yield found
    finally:
        server.should_exit = True
        thread.join(timeout=DEADLINE_S)


def _pairs(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(row["agent_id"], row["source_id"]) for row in rows}


def test_me_shows_the_area_scope(world: World) -> None:
    me = world.ok("xa.phuhoi", "/api/v1/auth/me")
    assert (me["username"], me["areas"], me["roles"]) == ("xa.phuhoi", [PHU_HOI], ["operator"])
    assert "display_name" in me
    assert world.ok("tinh.hue", "/api/v1/auth/me")["areas"] is None


def test_sites_of_the_commune_only(world: World) -> None:
    assert {(s["agent_id"], s["id"]) for s in world.ok("xa.phuhoi", "/api/v1/sites")} == {(A, "cam-a"), (A, "tram-a")}
    assert len(world.ok("tinh.hue", "/api/v1/sites")) == 4


def test_traffic_reads_hold_only_the_communes_cameras(world: World) -> None:
    day = {"start": (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()}
    for user, expected in (("xa.phuhoi", {(A, "cam-a")}), ("tinh.hue", {(A, "cam-a"), (B, "cam-b")})):
        counts = world.ok(user, "/api/v1/counts", group_by="agent_id,source_id", **day)
        assert _pairs(counts) == expected
        assert _pairs(world.ok(user, "/api/v1/counts/totals", **day)) == expected
        assert _pairs(world.ok(user, "/api/v1/violations", **day)["items"]) == expected
        export = world.get(user, "/api/v1/counts/export", **day)
        assert _pairs(list(csv.DictReader(io.StringIO(export.text)))) == expected
    # Naming the other commune's camera answers 404, as if it did not exist; the own camera answers.
    other = {"agent_id": B, "source_id": "cam-b", **day}
    for path in ("/api/v1/counts", "/api/v1/counts/totals", "/api/v1/violations", "/api/v1/zones"):
        answer = world.get("xa.phuhoi", path, **other)
        assert answer.status_code == 404, (path, answer.text)
        assert "khu vực" in answer.json()["detail"]
        assert world.get("xa.phuhoi", path, agent_id=A, source_id="cam-a", **day).status_code == 200
        assert world.get("tinh.hue", path, **other).status_code == 200


def test_sensor_readings_of_the_communes_stations(world: World) -> None:
    day = {"start": (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()}
    own = world.ok("xa.phuhoi", "/api/v1/sensors/readings", source_id="tram-a", **day)["items"]
    assert [(r["source_id"], r["value"]) for r in own] == [("tram-a", 3.1)]
    # Without the agent the other station is just absent; naming it is a 404.
    assert world.ok("xa.phuhoi", "/api/v1/sensors/readings", source_id="tram-b", **day)["items"] == []
    assert world.get("xa.phuhoi", "/api/v1/sensors/readings", agent_id=B, source_id="tram-b").status_code == 404
    assert world.ok("xa.phuhoi", "/api/v1/sensors/readings", source_id="tram-b", bucket="1h", **day)["items"] == []
    assert len(world.ok("tinh.hue", "/api/v1/sensors/readings", source_id="tram-b", **day)["items"]) == 1


def test_agent_health_of_the_communes_agents(world: World) -> None:
    assert [row["agent_id"] for row in world.ok("xa.phuhoi", "/api/v1/ingest/agents")] == [A]
    assert [row["agent_id"] for row in world.ok("ky.thuat", "/api/v1/ingest/agents")] == [A]  # technician, scoped
    assert [row["agent_id"] for row in world.ok("tinh.hue", "/api/v1/ingest/agents")] == [A, B]
    assert world.get("xa.phuhoi", "/api/v1/ingest/dead-letters", agent_id=B).status_code == 404
    assert world.ok("xa.phuhoi", "/api/v1/ingest/dead-letters", agent_id=A)["items"] == []


def _subjects(world: World, user: str) -> dict[str, str]:
    return {item["subject"]: item["alert_id"] for item in world.ok(user, "/api/v1/alerts")["items"]}


def test_alerts_of_the_commune_only(world: World) -> None:
    own = _subjects(world, "xa.phuhoi")
    assert set(own) == {"source:agent-a/cam-a", "junction:nga-tu-a", "project:du-an-a/mong"}
    everything = _subjects(world, "tinh.hue")
    assert set(everything) == set(own) | {"source:agent-b/cam-b", "junction:nga-tu-b", "project:du-an-b"}
    for subject in set(everything) - set(own):
        alert_id = everything[subject]
        assert world.get("xa.phuhoi", f"/api/v1/alerts/{alert_id}").status_code == 404
        answer = world.post("xa.phuhoi", f"/api/v1/alerts/{alert_id}/acknowledge", {"comment": "không phải của tôi"})
        assert answer.status_code == 404
        assert world.get("tinh.hue", f"/api/v1/alerts/{alert_id}").status_code == 200
    assert world.ok("xa.phuhoi", f"/api/v1/alerts/{own['junction:nga-tu-a']}")["subject"] == "junction:nga-tu-a"
    assert world.ok("xa.phuhoi", "/api/v1/alerts", subject="junction:nga-tu-b")["items"] == []
    (rule,) = world.ok("xa.phuhoi", "/api/v1/alerts/rules")
    assert [s["subject"] for s in rule["subjects"]] == ["source:agent-a/cam-a"]
    assert rule["sources"] == [{"agent_id": A, "source_id": "cam-a"}]
    (whole,) = world.ok("tinh.hue", "/api/v1/alerts/rules")
    assert len(whole["subjects"]) == 2


class SseReader:
    """The alert stream of one user, read in a thread; alert notices land in ``notices``."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.notices: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: int | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(5.0, read=30.0)
        with httpx.Client(timeout=timeout, headers=headers) as client, client.stream("GET", url) as response:
            self.status = response.status_code
            for line in response.iter_lines():
                if line == ": connected":
                    self.connected.set()
                if self._stop.is_set():
                    return
                if line.startswith("data:"):
                    self.notices.put(json.loads(line[5:]))

    def next_subject(self) -> str:
        return str(self.notices.get(timeout=DEADLINE_S)["subject"])

    def close(self) -> None:
        """Stop reading and disconnect (at the next heartbeat)."""
        self._stop.set()
        self._thread.join(timeout=DEADLINE_S)


def test_the_alert_stream_carries_only_the_communes_notices(world: World) -> None:
    everything = _subjects(world, "tinh.hue")
    commune = SseReader(f"{world.url}/api/v1/alerts/stream", world.headers["xa.phuhoi"])
    province = SseReader(f"{world.url}/api/v1/alerts/stream", world.headers["tinh.hue"])
    try:
        assert commune.connected.wait(DEADLINE_S)
        assert province.connected.wait(DEADLINE_S)
        # Kim Long's camera first, then Phú Hội's: had the commune's stream let the first through, it would be
        # its first notice (one queue per subscriber, in order).
        for subject in ("source:agent-b/cam-b", "source:agent-a/cam-a"):
            acked = world.post("tinh.hue", f"/api/v1/alerts/{everything[subject]}/acknowledge", {"comment": "ok"})
            assert acked.status_code == 200, acked.text
            assert acked.json()["status"] == "acknowledged"
        assert commune.next_subject() == "source:agent-a/cam-a"
        assert [province.next_subject(), province.next_subject()] == ["source:agent-b/cam-b", "source:agent-a/cam-a"]
    finally:
        commune.close()
        province.close()
    detail = world.ok("tinh.hue", f"/api/v1/alerts/{everything['source:agent-a/cam-a']}")
    assert detail["acknowledged_by"] == "tinh.hue"  # the signed-in user, never a name from the body


def test_projects_of_the_commune_only(world: World) -> None:
    assert [p["project_id"] for p in world.ok("xa.phuhoi", "/api/v1/projects")] == ["du-an-a"]
    assert [p["project_id"] for p in world.ok("tinh.hue", "/api/v1/projects")] == ["du-an-a", "du-an-b"]
    assert _pairs(world.ok("xa.phuhoi", "/api/v1/projects/du-an-a/cameras")) == {(A, "cam-a")}
    for path in ("/api/v1/projects/du-an-b/cameras", "/api/v1/projects/du-an-b/progress"):
        assert world.get("xa.phuhoi", path).status_code == 404
        assert world.get("tinh.hue", path).status_code == 200
    assert world.get("xa.phuhoi", "/api/v1/progress", project_id="du-an-b").status_code == 404
    assert len(world.ok("xa.phuhoi", "/api/v1/progress", project_id="du-an-a")["items"]) == 1


def test_no_session_is_401_and_a_wrong_role_is_403_and_audited(world: World) -> None:
    paths = (
        "/api/v1/counts", "/api/v1/counts/totals", "/api/v1/counts/export", "/api/v1/violations", "/api/v1/zones",
        "/api/v1/congestion", "/api/v1/ingest/agents", "/api/v1/ingest/dead-letters", "/api/v1/alerts",
        "/api/v1/alerts/rules", "/api/v1/alerts/stream",
    )  # fmt: skip
    for path in paths:
        assert world.get(None, path).status_code == 401, path
    assert world.get(None, "/api/v1/sensors/readings", source_id="tram-a").status_code == 401
    assert world.get(None, "/api/v1/progress", project_id="du-an-a").status_code == 401
    # A project unit reads no traffic, a technician acts on no alert.
    assert world.get("ban.qlda", "/api/v1/counts").status_code == 403
    alert_id = _subjects(world, "ky.thuat")["junction:nga-tu-a"]
    assert world.post("ky.thuat", f"/api/v1/alerts/{alert_id}/resolve", {"comment": "x"}).status_code == 403

    async def denials() -> list[tuple[str, str]]:
        async with await psycopg.AsyncConnection.connect(world.dsn) as conn:
            records = await list_audit(conn, AuditFilter(), 1000)
        return [(r.actor, r.target["path"]) for r in records if r.action == "access_denied"]

    assert {("ban.qlda", "/api/v1/counts"), ("ky.thuat", f"/api/v1/alerts/{alert_id}/resolve")} <= set(
        asyncio.run(denials())
    )
