"""Area scope inside the projects APIs on the real app: plans, a project shared by two communes, agent addresses.

Two communes of Huế (Phú Hội and Kim Long). ``du-an-a`` has a Phú Hội camera, ``du-an-b`` a Kim Long one,
``du-an-chung`` one camera in each (so a Phú Hội user sees the project, but only its own camera's rows), and
``du-an-moi`` no camera at all. Users: a Phú Hội PMU and operator, a whole-province PMU and operator.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.access.roles import Role
from central_ingest.alerts.plans import save_plan
from central_ingest.app import create_app
from central_ingest.plates.evidence_store import store_evidence
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.plates.vault import PlateVault, vault_from_settings
from central_ingest.projects.plan_model import PlanIn, PlanPointIn
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from event_contract import EvidenceRef, ProgressEvent, SiteActivityEvent
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

A, B = "agent-a", "agent-b"
PLACE = {"province": "Huế", "district": "Phú Xuân"}
PHU_HOI = "Huế/Phú Xuân/Phú Hội"
SHARED = "du-an-chung"
SITES = (
    SiteConfig(id="cam-a", agent_id=A, name="Mố cầu A", lat=16.468, lon=107.585, commune="Phú Hội",
               project_id="du-an-a", **PLACE),
    SiteConfig(id="cam-b", agent_id=B, name="Mố cầu B", lat=16.458, lon=107.551, commune="Kim Long",
               project_id="du-an-b", **PLACE),
    SiteConfig(id="cam-a2", agent_id=A, name="Kè bờ Phú Hội", lat=16.467, lon=107.590, commune="Phú Hội",
               project_id=SHARED, preview_url="http://10.0.0.11:8091/cameras/cam-a2/preview.mjpg", **PLACE),
    SiteConfig(id="cam-b2", agent_id=B, name="Kè bờ Kim Long", lat=16.459, lon=107.553, commune="Kim Long",
               project_id=SHARED, preview_url="http://10.0.0.12:8091/cameras/cam-b2/preview.mjpg",
               live_url="http://10.0.0.12:8091/cameras/cam-b2/live", **PLACE),
)  # fmt: skip
# user -> (roles, areas)
USERS: dict[str, tuple[tuple[Role, ...], tuple[str, ...]]] = {
    "pmu.phuhoi": (("project_unit",), (PHU_HOI,)),
    "pmu.tinh": (("project_unit",), ()),
    "xa.phuhoi": (("operator",), (PHU_HOI,)),
    "tinh.hue": (("operator",), ()),
}
PLAN_CSV = (Path(__file__).resolve().parents[2] / "configs" / "plans" / "example_plan.csv").read_bytes()


def jpeg(seed: int) -> bytes:
    image = np.full((48, 64, 3), 30 + seed * 25, dtype=np.uint8)
    cv2.putText(image, str(seed), (8, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FRAMES = {"cam-a2": jpeg(1), "cam-b2": jpeg(2)}


def plan(note: str) -> PlanIn:
    points = (PlanPointIn(package_id="", date=dt.date(2025, 1, 1), planned_pct=0.0),
              PlanPointIn(package_id="", date=dt.date(2026, 12, 31), planned_pct=100.0))  # fmt: skip
    return PlanIn(points=points, note=note)


@dataclass
class World:
    client: TestClient
    headers: dict[str, dict[str, str]]
    at: dt.datetime

    def get(self, user: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers[user])

    def ok(self, user: str, path: str, **params: Any) -> Any:
        answer = self.get(user, path, **params)
        assert answer.status_code == 200, (user, path, answer.text)
        return answer.json()


def _events(at: dt.datetime) -> list[Any]:
    found: list[Any] = []
    for agent, camera in ((A, "cam-a"), (B, "cam-b"), (A, "cam-a2"), (B, "cam-b2")):
        project = SHARED if camera.endswith("2") else f"du-an-{camera[-1]}"
        frame = FRAMES.get(camera)
        evidence = () if frame is None else (EvidenceRef(kind="keyframe", uri="k.jpg", time=at, sha256=sha(frame)),)
        found += [
            ProgressEvent(
                agent_id=agent, source_id=camera, time=at, project_id=project, percent_complete=40,
                method="camera_visual", confidence=0.8, evidence=evidence,
            ),
            SiteActivityEvent(
                agent_id=agent, source_id=camera, time=at, start=at - dt.timedelta(hours=1), project_id=project,
                zone_id="bai", frames=360, covered_s=3600.0, activity_index=0.5, active_s=1800.0,
            ),
        ]  # fmt: skip
    return found


async def _populate(dsn: str, vault: PlateVault, at: dt.datetime) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await store_events(conn, _events(at))
        for camera, frame in FRAMES.items():
            agent = A if camera == "cam-a2" else B
            await store_evidence(
                conn, vault, agent_id=agent, sha256=sha(frame), content_type="image/jpeg", time=at, data=frame
            )
        for project in ("du-an-a", "du-an-b"):
            await save_plan(conn, project, plan("QĐ 1"), at, approved_by="pmu.tinh")


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    apply_migrations(pg_dsn)
    keys = tmp_path_factory.mktemp("keys") / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    settings = Settings(
        database_url=pg_dsn, plate_keys_file=keys, pool_max_size=4, maintenance_enabled=False, migrate_on_start=False
    )
    vault = vault_from_settings(settings)
    assert vault is not None
    at = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    with psycopg.connect(pg_dsn) as conn:
        for agent in (A, B):
            add_agent(conn, agent)
        import_sites(conn, SITES)
    asyncio.run(_populate(pg_dsn, vault, at))
    headers = {user: api_headers(pg_dsn, user, roles, areas=areas) for user, (roles, areas) in USERS.items()}
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield World(client, headers, at)


def test_a_commune_pmu_neither_reads_nor_writes_another_communes_plan(world: World) -> None:
    other = "/api/v1/projects/du-an-b/plan"
    body = plan("ghi đè").model_dump(mode="json")
    csv = {"Content-Type": "text/csv", **world.headers["pmu.phuhoi"]}
    refused = {
        "put": world.client.put(other, json=body, headers=world.headers["pmu.phuhoi"]),
        "import": world.client.post(f"{other}/import", content=PLAN_CSV, headers=csv),
        "get": world.get("pmu.phuhoi", other),
        "versions": world.get("pmu.phuhoi", f"{other}/versions"),
        "read as operator": world.get("xa.phuhoi", other),
    }
    for what, answer in refused.items():
        assert answer.status_code == 404, (what, answer.text)
        assert "No such project" in answer.json()["detail"], what
    # Nothing was written: the province still sees version 1 alone.
    assert [v["plan_version"] for v in world.ok("pmu.tinh", f"{other}/versions")] == [1]
    assert world.ok("tinh.hue", other)["note"] == "QĐ 1"

    own = "/api/v1/projects/du-an-a/plan"
    answer = world.client.put(own, json=body, headers=world.headers["pmu.phuhoi"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["plan_version"] == 2
    imported = world.client.post(f"{own}/import", content=PLAN_CSV, headers=csv)
    assert imported.status_code == 200, imported.text
    assert [v["plan_version"] for v in world.ok("pmu.phuhoi", f"{own}/versions")] == [3, 2, 1]
    assert world.ok("xa.phuhoi", own, version=2)["note"] == "ghi đè"
    # A shared project is visible (one of its cameras is in Phú Hội), so its plan is too.
    shared = world.client.put(f"/api/v1/projects/{SHARED}/plan", json=body, headers=world.headers["pmu.phuhoi"])
    assert shared.status_code == 200, shared.text


def test_a_project_with_no_camera_yet_gets_its_plan_from_the_whole_province(world: World) -> None:
    url = "/api/v1/projects/du-an-moi/plan"
    body = plan("dự án mới").model_dump(mode="json")
    assert world.client.put(url, json=body, headers=world.headers["pmu.phuhoi"]).status_code == 404
    answer = world.client.put(url, json=body, headers=world.headers["pmu.tinh"])
    assert answer.status_code == 200, answer.text
    assert world.ok("pmu.tinh", url)["note"] == "dự án mới"
    assert world.get("pmu.phuhoi", url).status_code == 404  # still no camera of Phú Hội watches it


def _pairs(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(row["agent_id"], row["source_id"]) for row in rows}


def test_a_shared_project_shows_a_commune_only_its_cameras_rows(world: World) -> None:
    url = f"/api/v1/projects/{SHARED}"
    both = {(A, "cam-a2"), (B, "cam-b2")}
    assert _pairs(world.ok("xa.phuhoi", f"{url}/activity")["days"]) == {(A, "cam-a2")}
    assert _pairs(world.ok("tinh.hue", f"{url}/activity")["days"]) == both
    assert _pairs(world.ok("xa.phuhoi", f"{url}/timelapse")["cameras"]) == {(A, "cam-a2")}
    assert _pairs(world.ok("xa.phuhoi", f"{url}/cameras")) == {(A, "cam-a2")}
    assert _pairs(world.ok("tinh.hue", f"{url}/cameras")) == both

    own, other = (f"{url}/keyframes/{sha(FRAMES[camera])}" for camera in ("cam-a2", "cam-b2"))
    assert world.get("xa.phuhoi", own).content == FRAMES["cam-a2"]
    refused = world.get("xa.phuhoi", other)  # Kim Long's keyframe, though the project is visible
    assert refused.status_code == 404
    assert "references" in refused.json()["detail"]
    assert world.get("tinh.hue", other).content == FRAMES["cam-b2"]


def test_the_progress_list_keeps_the_pmus_rows_and_the_visible_cameras(world: World) -> None:
    photo = jpeg(7)
    body = {
        "date": world.at.date().isoformat(),
        "percent_complete": 45.0,
        "note": "Biên bản nghiệm thu số 3",
        "photo_base64": base64.b64encode(photo).decode(),
    }
    confirmed = world.client.post(f"/api/v1/projects/{SHARED}/progress/confirm", json=body,
                                  headers=world.headers["pmu.tinh"])  # fmt: skip
    assert confirmed.status_code == 201, confirmed.text
    pmu = ("central", "pmu.tinh")
    start = (world.at - dt.timedelta(days=2)).isoformat()
    mine = world.ok("xa.phuhoi", "/api/v1/progress", project_id=SHARED, start=start)["items"]
    assert _pairs(mine) == {(A, "cam-a2"), pmu}
    everything = world.ok("tinh.hue", "/api/v1/progress", project_id=SHARED, start=start)["items"]
    assert _pairs(everything) == {(A, "cam-a2"), (B, "cam-b2"), pmu}
    # Paging one row at a time gives the same rows (the scope's condition holds across cursors).
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"project_id": SHARED, "start": start, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = world.ok("xa.phuhoi", "/api/v1/progress", **params)
        paged += page["items"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert [row["event_id"] for row in paged] == [row["event_id"] for row in mine]
    # The PMU's photo belongs to the project: a Phú Hội user may see it.
    photo_url = confirmed.json()["photo"]["url"]
    assert world.get("xa.phuhoi", photo_url).content == photo


def test_no_answer_hands_out_the_agents_addresses(world: World) -> None:
    for user in USERS:
        sites = world.ok(user, "/api/v1/sites")
        assert sites, user
        assert not {"preview_url", "live_url"} & {key for site in sites for key in site}, user
    cameras = world.ok("tinh.hue", f"/api/v1/projects/{SHARED}/cameras")
    assert not {"preview_url", "live_url"} & {key for camera in cameras for key in camera}
    # ``live`` still says whether central can relay the camera (both have an agent address on the server).
    assert [camera["live"] for camera in cameras] == [True, True]
