"""``/api/v1/map/*`` on the real app and TimescaleDB: config, boundaries, and each site's state, filtered by the
caller's area scope (a Kim Long user never sees a Phú Hội camera; a site with no place only the province).

``build_map_world`` is shared with the health API test and the map/health page tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.access.roles import Role
from central_ingest.app import create_app
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from event_contract import CountIntervalEvent, DeliveryHealth, Event, HealthEvent, SensorReadingEvent
from tests.api_sessions import API_PASSWORD, open_users

pytestmark = pytest.mark.integration

DEMO_BOUNDARIES = Path(__file__).resolve().parents[2] / "configs" / "boundaries.demo.geojson"
AGENT_1 = "hue-agent-1"
AGENT_2 = "hue-agent-2"
PASSWORD = API_PASSWORD
PROVINCE = "Thành phố Huế"
PHU_HOI = f"{PROVINCE}/Phường Phú Hội"
KIM_LONG = f"{PROVINCE}/Phường Kim Long"


def _site(
    agent: str, source: str, name: str, where: tuple[float, float], commune: str | None, **extra: str
) -> SiteConfig:
    place = {"province": PROVINCE, "commune": commune} if commune else {}
    return SiteConfig(id=source, agent_id=agent, name=name, lat=where[0], lon=where[1], **place, **extra)


SITES = (
    _site(AGENT_1, "cam-a", "Cầu Trường Tiền", (16.4685, 107.5857), "Phường Phú Hội"),
    _site(AGENT_1, "cam-b", "Ngã tư Hùng Vương", (16.4622, 107.5963), "Phường Phú Hội"),
    _site(AGENT_1, "tram-1", "Trạm mực nước Phú Hội", (16.4641, 107.5875), "Phường Phú Hội", kind="sensor"),
    _site(AGENT_2, "cam-c", "Hầm chui Kim Long", (16.4580, 107.5512), "Phường Kim Long"),
    _site(AGENT_2, "cam-d", "Chợ Kim Long", (16.4601, 107.5530), "Phường Kim Long"),
    _site(AGENT_1, "cam-e", "Camera chưa gán khu vực", (16.4700, 107.5800), None),
)
EXPECTED_STATES = {
    f"{AGENT_1}/cam-a": "live",
    f"{AGENT_1}/cam-b": "stalled",
    f"{AGENT_1}/tram-1": "live",
    f"{AGENT_2}/cam-c": "down",
    f"{AGENT_2}/cam-d": "unknown",
    f"{AGENT_1}/cam-e": "live",
}
USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "op.tinh": ("operator", ()),
    "op.kimlong": ("operator", (KIM_LONG,)),
    "kt.phuhoi": ("technician", (PHU_HOI,)),
    "pmu.lan": ("project_unit", ()),
    "kiemtoan.an": ("auditor", (KIM_LONG,)),
}
RULES = """\
rules:
  - id: muc-nuoc
    kind: sensor_threshold
    sensor_kind: water_level
    metric: water_level_m
    levels:
      - {name: bao_dong_1, value: 3.0, severity: notice}
      - {name: bao_dong_2, value: 4.0, severity: warning}
      - {name: bao_dong_3, value: 5.0, severity: critical}
"""


@dataclass
class MapWorld:
    settings: Settings
    now: dt.datetime
    agent_tokens: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sessions[username]}"}


def world_events(now: dt.datetime) -> dict[str, list[Event]]:
    """Per agent: what makes each site's expected state (see ``EXPECTED_STATES``)."""

    def ago(seconds: float) -> dt.datetime:
        return now - dt.timedelta(seconds=seconds)

    def health(agent: str, source: str, seconds: float, state: str, **extra: object) -> HealthEvent:
        return HealthEvent(agent_id=agent, source_id=source, time=ago(seconds), state=state, **extra)

    interval = CountIntervalEvent(
        agent_id=AGENT_1, source_id="cam-e", time=ago(30), line_id="l1", interval_s=60, counts=()
    )
    delivery = DeliveryHealth(spool_events=17, spool_bytes=4096, dropped_events=3)
    return {
        AGENT_1: [
            health(AGENT_1, "cam-a", 20, "live", fps=12.5, uptime_s=7200.0, frames_dropped=4),
            health(AGENT_1, "cam-b", 40, "stalled", reason="no frames for 30 s", uptime_s=60.0),
            SensorReadingEvent(
                agent_id=AGENT_1,
                source_id="tram-1",
                time=ago(60),
                sensor_kind="water_level",
                values={"water_level_m": 4.3},
            ),
            interval,
            health(AGENT_1, AGENT_1, 15, "live", uptime_s=86_400.0, delivery=delivery),
            health(AGENT_1, "cam-unregistered", 25, "live", fps=5.0),
        ],
        AGENT_2: [health(AGENT_2, "cam-c", 20 * 60, "live", fps=10.0)],
    }


async def _populate(world: MapWorld, dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for agent, events in world_events(world.now).items():
            await store_events(conn, events, agent_id=agent)
        world.sessions.update(await open_users(conn, USERS))


def build_map_world(dsn: str, state_dir: Path, *, boundaries: bool = True) -> MapWorld:
    """Migrate; register the agents and sites; store the events behind each state; create users and sessions."""
    apply_migrations(dsn)
    rules = state_dir / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    settings = Settings(
        database_url=dsn,
        pool_max_size=4,
        maintenance_enabled=False,
        migrate_on_start=False,
        alert_rules_path=rules,
        map_boundaries_path=DEMO_BOUNDARIES if boundaries else None,
    )
    world = MapWorld(settings=settings, now=dt.datetime.now(dt.UTC).replace(microsecond=0))
    with psycopg.connect(dsn) as conn:
        for agent in (AGENT_1, AGENT_2):
            world.agent_tokens[agent] = add_agent(conn, agent)
        import_sites(conn, SITES)
    asyncio.run(_populate(world, dsn))
    return world


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> MapWorld:
    return build_map_world(pg_dsn, tmp_path_factory.mktemp("map_world"))


@pytest.fixture(scope="module")
def client(world: MapWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def keys(sites: list[dict[str, object]]) -> set[str]:
    return {f"{s['agent_id']}/{s['id']}" for s in sites}


def test_sign_in_is_needed(client: TestClient) -> None:
    for path in ("/api/v1/map/config", "/api/v1/map/boundaries", "/api/v1/map/sites"):
        assert client.get(path).status_code == 401, path


def test_config_and_boundaries(client: TestClient, world: MapWorld) -> None:
    config = client.get("/api/v1/map/config", headers=world.bearer("pmu.lan"))
    assert config.status_code == 200, config.text
    body = config.json()
    assert body["tile_url"] is None
    assert body["has_boundaries"] is True
    assert body["center"] == {"lat": world.settings.map_center_lat, "lon": world.settings.map_center_lon}
    assert body["refresh_s"] == 15
    assert body["thresholds_s"]["camera_live_within"] == 120
    boundaries = client.get("/api/v1/map/boundaries", headers=world.bearer("kiemtoan.an"))
    assert boundaries.status_code == 200
    assert boundaries.headers["content-type"] == "application/geo+json"
    assert boundaries.json()["type"] == "FeatureCollection"


def test_the_province_sees_every_site_with_its_state(client: TestClient, world: MapWorld) -> None:
    answer = client.get("/api/v1/map/sites", headers=world.bearer("op.tinh"))
    assert answer.status_code == 200, answer.text
    sites = answer.json()
    assert {f"{s['agent_id']}/{s['id']}": s["state"] for s in sites} == EXPECTED_STATES
    by_key = {f"{s['agent_id']}/{s['id']}": s for s in sites}
    live = by_key[f"{AGENT_1}/cam-a"]
    assert (live["province"], live["commune"], live["area_path"]) == (PROVINCE, "Phường Phú Hội", PHU_HOI)
    assert live["detail"]["fps"] == 12.5
    assert live["detail"]["link"] == f"/live?grid=1&cameras={AGENT_1}/cam-a"
    stalled = by_key[f"{AGENT_1}/cam-b"]["detail"]
    assert stalled["reason"] == "health_stalled"
    assert "no frames for 30 s" in stalled["text_en"]
    assert by_key[f"{AGENT_2}/cam-c"]["detail"]["reason"] == "silent"
    sensor = by_key[f"{AGENT_1}/tram-1"]["sensor"]
    assert (sensor["level"], sensor["severity"], sensor["threshold"]) == ("bao_dong_2", "warning", 4.0)
    assert sensor["reading"]["value"] == 4.3
    assert sensor["reading"]["unit"] == "m"
    assert sensor["link"] == f"/sensors?station={AGENT_1}/tram-1"
    assert "cam-unregistered" not in {s["id"] for s in sites}  # no coordinates: not on the map


def test_a_commune_user_sees_only_its_commune(client: TestClient, world: MapWorld) -> None:
    kim_long = client.get("/api/v1/map/sites", headers=world.bearer("op.kimlong")).json()
    assert keys(kim_long) == {f"{AGENT_2}/cam-c", f"{AGENT_2}/cam-d"}
    phu_hoi = client.get("/api/v1/map/sites", headers=world.bearer("kt.phuhoi")).json()
    assert keys(phu_hoi) == {f"{AGENT_1}/cam-a", f"{AGENT_1}/cam-b", f"{AGENT_1}/tram-1"}
    auditor = client.get("/api/v1/map/sites", headers=world.bearer("kiemtoan.an"))
    assert auditor.status_code == 200  # any signed-in role, still scoped
    assert keys(auditor.json()) == {f"{AGENT_2}/cam-c", f"{AGENT_2}/cam-d"}
