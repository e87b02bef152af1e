"""``GET /api/v1/health/agents`` on the real app and TimescaleDB: every agent with its cameras and sensors,
for operators, technicians and admins only, and scoped (an agent is listed when one of its sites is in the
caller's area, with only those sites under it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from tests.integration.test_map_api import AGENT_1, AGENT_2, MapWorld, build_map_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> MapWorld:
    return build_map_world(pg_dsn, tmp_path_factory.mktemp("health_world"), boundaries=False)


@pytest.fixture(scope="module")
def client(world: MapWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def agents_of(client: TestClient, world: MapWorld, username: str) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/v1/health/agents", headers=world.bearer(username))
    assert answer.status_code == 200, answer.text
    return {agent["agent_id"]: agent for agent in answer.json()}


def test_roles(client: TestClient, world: MapWorld) -> None:
    assert client.get("/api/v1/health/agents").status_code == 401
    assert client.get("/api/v1/health/agents", headers=world.bearer("pmu.lan")).status_code == 403
    assert client.get("/api/v1/health/agents", headers=world.bearer("kiemtoan.an")).status_code == 403


def test_the_province_sees_every_agent_and_source(client: TestClient, world: MapWorld) -> None:
    agents = agents_of(client, world, "op.tinh")
    assert set(agents) == {AGENT_1, AGENT_2}
    first = agents[AGENT_1]
    assert (first["state"], first["stale"], first["uptime_s"]) == ("live", False, 86_400.0)
    assert first["delivery"]["spool_events"] == 17
    assert first["delivery"]["dropped_events"] == 3
    assert first["last_batch_at"] is not None
    assert first["events_refused"] == 0
    sources = {s["id"]: s for s in first["sources"]}
    assert set(sources) == {"cam-a", "cam-b", "tram-1", "cam-e", "cam-unregistered"}
    assert (sources["cam-a"]["state"], sources["cam-a"]["fps"], sources["cam-a"]["frames_dropped"]) == ("live", 12.5, 4)
    assert sources["cam-a"]["uptime_s"] == 7200.0
    assert sources["cam-b"]["state"] == "stalled"
    assert sources["tram-1"]["kind"] == "sensor"
    assert sources["tram-1"]["last_event_time"] is not None
    assert sources["cam-e"]["stale"] is True  # heard through a count interval, no health report
    assert (sources["cam-unregistered"]["registered"], sources["cam-unregistered"]["state"]) == (False, "live")
    second = agents[AGENT_2]
    # no health report of its own, but its batch just arrived: the agent talks, its cameras are down
    assert (second["state"], second["reason"], second["delivery"]) == ("live", "recent_event", None)
    assert {s["id"]: s["state"] for s in second["sources"]} == {"cam-c": "down", "cam-d": "unknown"}


def test_scoped_users_see_their_agents_with_their_sites_only(client: TestClient, world: MapWorld) -> None:
    kim_long = agents_of(client, world, "op.kimlong")
    assert set(kim_long) == {AGENT_2}
    assert {s["id"] for s in kim_long[AGENT_2]["sources"]} == {"cam-c", "cam-d"}
    phu_hoi = agents_of(client, world, "kt.phuhoi")
    assert set(phu_hoi) == {AGENT_1}
    assert {s["id"] for s in phu_hoi[AGENT_1]["sources"]} == {"cam-a", "cam-b", "tram-1"}
