"""The projects API on the real app and TimescaleDB: the project list, plan vs actual per package, timelapse
keyframes, activity hours, cameras with their live view, keyframe access, and the PMU's audited
confirmation (photo sealed in the evidence store, the confirmed figure winning in the views)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.access.admin import Actor, create_user
from central_ingest.access.dependencies import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from central_ingest.access.roles import Role
from central_ingest.access.sessions import csrf_for, open_session
from central_ingest.access.settings import AccessSettings
from central_ingest.alerts.plans import save_plan
from central_ingest.app import create_app
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from central_ingest.plates.evidence_store import store_evidence
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.plates.vault import PlateVault, vault_from_settings
from central_ingest.projects.plan_model import PackageIn, PlanIn, PlanPointIn
from central_ingest.settings import Settings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from event_contract import EvidenceRef, ProgressEvent, SiteActivityEvent

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PROJECT = "cau-moi"
AGENT = "ct-agent"
USERS: dict[str, Role] = {"pmu.lan": "project_unit", "operator.chi": "operator", "officer.an": "police"}
PASSWORD = "mat-khau-that-dai-2025"
PREVIEW = "https://ioc.example.vn/edge/ct-agent/cameras/cam-ct-1/preview.mjpg"


def jpeg(seed: int) -> bytes:
    image = np.full((48, 64, 3), 40 + seed * 20, dtype=np.uint8)
    cv2.putText(image, str(seed), (8, 36), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), TZ).astimezone(dt.UTC)


@dataclass
class World:
    settings: Settings
    vault: PlateVault
    today: dt.date
    frames: dict[int, bytes]
    """days ago -> the timelapse keyframe of cam-ct-1 (uploaded for 2 and 1 days ago, not for 3)."""
    sessions: dict[str, str] = field(default_factory=dict)

    def bearer(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sessions[user]}"}


def estimate(package: str, day: dt.date, pct: float, frame: bytes, camera: str = "cam-ct-1") -> ProgressEvent:
    time = local(day, 17)
    ref = EvidenceRef(kind="keyframe", uri=f"timelapse/{sha(frame)}.jpg", time=local(day, 12), sha256=sha(frame))
    return ProgressEvent(
        agent_id=AGENT, source_id=camera, time=time, project_id=PROJECT, package_id=package, percent_complete=pct,
        method="camera_visual", confidence=0.8, raw_percent=pct + 1, frames_used=30, frames_rejected=5, quality=0.8,
        evidence=(ref,),
    )  # fmt: skip


def window(start: dt.datetime, active_s: float, *, camera: str = "cam-ct-1") -> SiteActivityEvent:
    return SiteActivityEvent(
        agent_id=AGENT, source_id=camera, time=start + dt.timedelta(hours=1), start=start, project_id=PROJECT,
        zone_id="bai-dao", frames=360, covered_s=3600.0, activity_index=active_s / 3600, active_s=active_s,
        mean_present={"worker": 2.0, "machine": 1.0}, peak_present={"worker": 5, "machine": 1},
    )  # fmt: skip


async def _populate(world: World, dsn: str) -> None:
    today = world.today
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        plan = PlanIn(
            packages=(PackageIn(id="mong", name="Móng", weight=1, critical=True), PackageIn(id="tru", weight=1)),
            points=tuple(
                PlanPointIn(package_id=p, date=today + dt.timedelta(days=d), planned_pct=pct)
                for p in ("mong", "tru")
                for d, pct in ((-10, 0.0), (10, 100.0))
            ),
            project_name_vi="Cầu mới",
            project_name_en="New bridge",
        )
        await save_plan(conn, PROJECT, plan, local(today, 8) - dt.timedelta(days=20))
        events: list[Any] = []
        for back, frame in world.frames.items():
            day = today - dt.timedelta(days=back)
            events += [estimate("mong", day, 40 - 5 * back, frame), estimate("tru", day, 30 - 5 * back, frame)]
        yesterday = today - dt.timedelta(days=1)
        events += [
            window(local(yesterday, 8), 1800),
            window(local(yesterday, 9), 3600),
            window(local(yesterday, 10), 0),
            window(local(yesterday, 0) - dt.timedelta(hours=1), 900),  # 23:00 the day before: that day's
            window(local(yesterday, 8), 600, camera="cam-ct-2"),
        ]
        await store_events(conn, events)
        for back in (1, 2):
            frame = world.frames[back]
            await store_evidence(
                conn, world.vault, agent_id=AGENT, sha256=sha(frame), content_type="image/jpeg",
                time=local(today - dt.timedelta(days=back), 12), data=frame,
            )  # fmt: skip
        other = jpeg(9)  # stored, but no progress row of this project references it
        await store_evidence(
            conn, world.vault, agent_id=AGENT, sha256=sha(other), content_type="image/jpeg", time=local(today, 1),
            data=other,
        )  # fmt: skip
        access = AccessSettings(password_kdf_log2_n=10)
        for username, role in USERS.items():
            change = await create_user(
                conn,
                Actor("test-setup", "admin"),
                access,
                username=username,
                password=PASSWORD,
                roles=frozenset({role}),
            )
            grant = await open_session(conn, change.user.user_id, access, dt.datetime.now(dt.UTC), "test")
            world.sessions[username] = grant.token


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    apply_migrations(pg_dsn)
    keys: Path = tmp_path_factory.mktemp("keys") / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    settings = Settings(
        database_url=pg_dsn, plate_keys_file=keys, pool_max_size=4, maintenance_enabled=False, migrate_on_start=False
    )
    vault = vault_from_settings(settings)
    assert vault is not None
    today = dt.datetime.now(dt.UTC).astimezone(TZ).date()
    built = World(settings, vault, today, {back: jpeg(back) for back in (3, 2, 1)})
    with psycopg.connect(pg_dsn) as conn:
        import_sites(
            conn,
            [
                SiteConfig(
                    id="cam-ct-1", agent_id=AGENT, name="Công trường mố M1", lat=16.47, lon=107.59, preview_url=PREVIEW
                ),
                # Registered for the project, silent so far: the live grid lists it from the start.
                SiteConfig(
                    id="cam-ct-3", agent_id=AGENT, name="Cổng công trường", lat=16.47, lon=107.59, project_id=PROJECT
                ),
                # Another project's camera: never listed here.
                SiteConfig(id="cam-khac", agent_id=AGENT, name="Dự án khác", lat=16.4, lon=107.5, project_id="khac"),
            ],
        )
    asyncio.run(_populate(built, pg_dsn))
    return built


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def audit_of(dsn: str, action: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await list_audit(conn, AuditFilter(action=action), 1000)

    return asyncio.run(read())


def test_reads_need_an_operator_pmu_or_admin_session(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/projects").status_code == 401
    assert client.get("/api/v1/projects", headers=world.bearer("officer.an")).status_code == 403
    answer = client.get("/api/v1/projects", headers=world.bearer("operator.chi"))
    assert answer.status_code == 200, answer.text
    [project] = [p for p in answer.json() if p["project_id"] == PROJECT]
    assert (project["name_vi"], project["planned_pct"], project["critical_packages"]) == ("Cầu mới", 50.0, ["mong"])
    assert client.get("/api/v1/projects/khong-co/cameras", headers=world.bearer("operator.chi")).status_code == 404


def test_progress_view_gives_planned_and_actual_series(client: TestClient, world: World) -> None:
    start, end = world.today - dt.timedelta(days=3), world.today
    answer = client.get(
        f"/api/v1/projects/{PROJECT}/progress",
        params={"start": start.isoformat(), "end": end.isoformat()},
        headers=world.bearer("pmu.lan"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    mong = next(p for p in body["packages"] if p["package_id"] == "mong")
    assert (mong["name"], mong["weight"], mong["critical"]) == ("Móng", 0.5, True)
    assert [(p["date"], p["planned_pct"]) for p in mong["planned"]][-1] == (end.isoformat(), 50.0)
    assert len(mong["planned"]) == 4
    assert [(p["percent"], p["basis"]) for p in mong["actual"]] == [
        (25.0, "estimate"),
        (30.0, "estimate"),
        (35.0, "estimate"),
    ]
    first = mong["actual"][0]["evidence"][0]
    assert (first["sha256"], first["uploaded"]) == (sha(world.frames[3]), False)
    assert mong["actual"][-1]["evidence"][0]["uploaded"] is True
    project = body["project"]["actual"]
    assert [(p["percent"], p["coverage"]) for p in project] == [(20.0, 1.0), (25.0, 1.0), (30.0, 1.0)]
    assert body["project"]["planned"][-1]["planned_pct"] == 50.0
    refused = client.get(
        f"/api/v1/projects/{PROJECT}/progress", params={"start": "2020-01-01", "end": "2035-01-01"},
        headers=world.bearer("pmu.lan"),
    )  # fmt: skip
    assert refused.status_code == 422


def test_timelapse_and_keyframe_access(client: TestClient, world: World) -> None:
    answer = client.get(f"/api/v1/projects/{PROJECT}/timelapse", headers=world.bearer("operator.chi"))
    assert answer.status_code == 200, answer.text
    [camera] = answer.json()["cameras"]
    assert (camera["source_id"], camera["name"]) == ("cam-ct-1", "Công trường mố M1")
    days = [(d["date"], d["sha256"], d["uploaded"]) for d in camera["days"]]
    assert days == [
        ((world.today - dt.timedelta(days=back)).isoformat(), sha(world.frames[back]), back != 3) for back in (3, 2, 1)
    ]
    image = client.get(camera["days"][-1]["url"], headers=world.bearer("operator.chi"))
    assert image.status_code == 200
    assert (image.content, image.headers["content-type"], image.headers["cache-control"]) == (
        world.frames[1], "image/jpeg", "no-store",
    )  # fmt: skip
    missing = client.get(camera["days"][0]["url"], headers=world.bearer("operator.chi"))
    assert (missing.status_code, "not been uploaded" in missing.json()["detail"]) == (404, True)
    foreign = client.get(f"/api/v1/projects/{PROJECT}/keyframes/{sha(jpeg(9))}", headers=world.bearer("operator.chi"))
    assert (foreign.status_code, "references" in foreign.json()["detail"]) == (404, True)
    assert client.get(camera["days"][-1]["url"], headers=world.bearer("officer.an")).status_code == 403


def test_activity_hours_per_camera_zone_and_local_day(client: TestClient, world: World) -> None:
    yesterday, before = world.today - dt.timedelta(days=1), world.today - dt.timedelta(days=2)
    answer = client.get(f"/api/v1/projects/{PROJECT}/activity", headers=world.bearer("operator.chi"))
    assert answer.status_code == 200, answer.text
    days = {(d["source_id"], d["date"]): d for d in answer.json()["days"]}
    assert set(days) == {
        ("cam-ct-1", before.isoformat()),
        ("cam-ct-1", yesterday.isoformat()),
        ("cam-ct-2", yesterday.isoformat()),
    }
    main = days[("cam-ct-1", yesterday.isoformat())]
    assert (main["working_hours"], main["covered_hours"], main["windows"], main["activity_index"]) == (1.5, 3.0, 3, 0.5)
    assert (main["peak_present"], main["mean_present"], main["camera_name"]) == (
        {"worker": 5, "machine": 1}, {"worker": 2.0, "machine": 1.0}, "Công trường mố M1",
    )  # fmt: skip
    assert days[("cam-ct-1", before.isoformat())]["working_hours"] == 0.25


def test_cameras_with_registry_and_live_view(client: TestClient, world: World) -> None:
    answer = client.get(f"/api/v1/projects/{PROJECT}/cameras", headers=world.bearer("pmu.lan"))
    assert answer.status_code == 200, answer.text
    cameras = {c["source_id"]: c for c in answer.json()}
    assert list(cameras) == ["cam-ct-1", "cam-ct-2", "cam-ct-3"]  # a PMU's confirmations are no camera
    assert (cameras["cam-ct-1"]["registered"], cameras["cam-ct-2"]["registered"]) == (True, False)
    # The agent's own addresses stay on the server: the live view goes through central's proxy.
    assert not {"preview_url", "live_url"} & {key for camera in cameras.values() for key in camera}
    assert (cameras["cam-ct-1"]["live"], cameras["cam-ct-2"]["live"]) == (PREVIEW.endswith("/preview.mjpg"), False)
    silent = cameras["cam-ct-3"]
    assert (silent["registered"], silent["last_seen"], silent["name"]) == (True, None, "Cổng công trường")
    assert cameras["cam-ct-1"]["last_seen"] is not None


def confirm_body(world: World, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "package_id": "mong",
        "date": world.today.isoformat(),
        "percent_complete": 48.0,
        "note": "Nghiệm thu móng M1, biên bản số 12",
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not None}


def test_confirmation_is_validated_audited_and_wins(client: TestClient, world: World, pg_dsn: str) -> None:
    url = f"/api/v1/projects/{PROJECT}/progress/confirm"
    photo = jpeg(7)
    body = confirm_body(world, photo_base64="data:image/jpeg;base64," + base64.b64encode(photo).decode())
    assert client.post(url, json=body, headers=world.bearer("operator.chi")).status_code == 403
    refusals = {
        "future": confirm_body(world, date=(world.today + dt.timedelta(days=1)).isoformat()),
        "package": confirm_body(world, package_id="mai"),
        "photo": confirm_body(world, photo_base64=base64.b64encode(b"GIF89a" + b"\x00" * 16).decode()),
        "base64": confirm_body(world, photo_base64="khong phai base64!"),
        "note": confirm_body(world, note="   "),
        "percent": confirm_body(world, percent_complete=101),
    }
    for why, bad in refusals.items():
        answer = client.post(url, json=bad, headers=world.bearer("pmu.lan"))
        assert answer.status_code == 422, (why, answer.text)
    # A cookie session must send the CSRF header.
    token = world.sessions["pmu.lan"]
    client.cookies.set(SESSION_COOKIE, token)
    client.cookies.set(CSRF_COOKIE, csrf_for(token))
    try:
        assert client.post(url, json=body).status_code == 403
        answer = client.post(url, json=body, headers={CSRF_HEADER: csrf_for(token)})
    finally:
        client.cookies.clear()
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert (stored["source_id"], stored["photo"]["sha256"], stored["confirmed"]) == ("pmu.lan", sha(photo), True)

    [entry] = [e for e in audit_of(pg_dsn, "progress_confirm") if e.target["event_id"] == stored["event_id"]]
    assert (entry.actor, entry.role, entry.reason) == ("pmu.lan", "project_unit", "Nghiệm thu móng M1, biên bản số 12")
    assert (entry.target["package_id"], entry.target["photo_sha256"]) == ("mong", sha(photo))
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(
            "SELECT agent_id, method, confirmed, confidence, percent_complete FROM progress WHERE event_id = %s",
            (stored["event_id"],),
        ).fetchone()
    assert row == ("central", "manual", True, 1.0, 48.0)

    image = client.get(stored["photo"]["url"], headers=world.bearer("operator.chi"))
    assert (image.status_code, image.content, image.headers["cache-control"]) == (200, photo, "no-store")
    view = client.get(f"/api/v1/projects/{PROJECT}/progress", headers=world.bearer("operator.chi")).json()
    mong = next(p for p in view["packages"] if p["package_id"] == "mong")
    last = mong["actual"][-1]
    assert (last["date"], last["percent"], last["basis"], last["note"]) == (
        world.today.isoformat(), 48.0, "confirmed", "Nghiệm thu móng M1, biên bản số 12",
    )  # fmt: skip
    assert last["evidence"][0]["uploaded"] is True
    listed = client.get("/api/v1/projects", headers=world.bearer("operator.chi")).json()
    [project] = [p for p in listed if p["project_id"] == PROJECT]
    # 0.5 * 48 (confirmed today) + 0.5 * 25 (tru's camera figure of yesterday)
    assert (project["actual_pct"], project["gap_points"], project["basis"]) == (36.5, 13.5, "partly_confirmed")
