"""The PMU projects page in a real browser (Debian's Chromium driven by Playwright) against a real
``central-ingest serve`` on TimescaleDB. The plan goes in through the plans API, the camera estimates,
activity windows and keyframes through the agents' own ingest and evidence endpoints. A PMU signs in,
finds the project behind schedule, reads the S-curve (both curves, one mark per figure, the low-confidence
estimate hollow), checks the package table against the API, plays the timelapse, sees the live grid, and
confirms a figure with a note and a photo, which appears as a confirmed mark; an operator sees the same
project without the form. Screenshots go to the test's tmp dir, and to ``benchmarks/results/screenshots/``
when that directory exists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psycopg
import pytest
from playwright.sync_api import Browser, FilePayload, Page, Route, WebSocketRoute, expect
from psycopg.rows import dict_row

from central_ingest.access.admin import Actor, create_user
from central_ingest.access.roles import Role
from central_ingest.access.settings import AccessSettings
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from devstack.apps import CentralService, start_central
from event_contract import EventBatch, EvidenceRef, ProgressEvent, SiteActivityEvent
from tests.e2e.browser import watched_page

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SHOTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "screenshots"
VN = dt.timezone(dt.timedelta(hours=7))
PROJECT = "cau-phu-xuan"
OTHER_PROJECT = "ke-song-an-cuu"
"""A second project, with a plan and no camera: its page must show none of the first one's views."""
LIVE_SOCKETS = re.compile(r"/api/v1/live/[^/]+/[^/]+/ws")
AGENT = "site-agent-1"
PASSWORD = "mat-khau-that-dai-2025"
PMU = "pmu.lan"
OPERATOR = "operator.minh"
UNREACHABLE_PREVIEW = "http://127.0.0.1:9/preview.mjpg"  # the discard port: the image fails to load
SITES = (
    SiteConfig(
        id="cam-a", agent_id=AGENT, name="Trụ cầu bờ Bắc", lat=16.47, lon=107.59, preview_url=UNREACHABLE_PREVIEW
    ),
    SiteConfig(id="cam-b", agent_id=AGENT, name="Mố cầu bờ Nam", lat=16.46, lon=107.59),
)
ESTIMATES = ((-15, 20.0, 0.8), (-10, 45.0, 0.3), (-5, 60.0, 0.8), (-1, 70.0, 0.8))
"""Camera estimates of the foundation: (days from today, %, confidence); the second is low-confidence."""
ACTIVITY = (("cam-a", -2, 6.5), ("cam-a", -1, 4.0), ("cam-b", -1, 3.0))
"""Working hours seen: (camera, days from today, hours); cam-b joins the project through its activity only."""


def today_vn() -> dt.date:
    return dt.datetime.now(VN).date()


def day_close(day: dt.date) -> dt.datetime:
    """17:00 in Vietnam on ``day``, as the agents date a day's figure."""
    return dt.datetime.combine(day, dt.time(17), VN).astimezone(dt.UTC)


def keyframe(seed: int) -> bytes:
    """A small real PNG, different per seed (the site 'filling in')."""
    image = np.full((90, 160, 3), 40, dtype=np.uint8)
    cv2.rectangle(image, (10, 60 - 10 * seed), (150, 80), (60, 140, 200), thickness=-1)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return bytes(encoded)


def plan_body(today: dt.date) -> dict[str, Any]:
    """Two packages with explicit S-curve points: the foundation should be done today, the frame a quarter."""

    def day(offset: int) -> str:
        return (today + dt.timedelta(days=offset)).isoformat()

    points = [("mong", -20, 0.0), ("mong", -10, 50.0), ("mong", 0, 100.0)]
    points += [("khung", -10, 0.0), ("khung", 10, 50.0), ("khung", 30, 100.0)]
    return {
        "project_name_vi": "Cầu Phú Xuân",
        "project_name_en": "Phu Xuan bridge",
        "note": "QĐ 123/QĐ-BQLDA",
        "packages": [
            {
                "id": "mong",
                "name": "Móng",
                "weight": 40,
                "planned_start": day(-20),
                "planned_finish": day(0),
                "critical": True,
            },
            {"id": "khung", "name": "Khung", "weight": 60, "planned_start": day(-10), "planned_finish": day(30)},
        ],
        "points": [{"package_id": p, "date": day(d), "planned_pct": v} for p, d, v in points],
    }


@dataclass
class ProjectWorld:
    dsn: str
    agent_token: str
    today: dt.date
    keyframes: list[str] = field(default_factory=list)


async def _create_users(dsn: str) -> None:
    access = AccessSettings(password_kdf_log2_n=10)  # a cheap hash: this test is about the page
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        users: tuple[tuple[str, Role], ...] = ((PMU, "project_unit"), (OPERATOR, "operator"))
        for username, role in users:
            await create_user(
                conn,
                Actor("test-setup", "admin"),
                access,
                username=username,
                password=PASSWORD,
                roles=frozenset({role}),
            )


@pytest.fixture(scope="module")
def world(pg_dsn: str) -> ProjectWorld:
    apply_migrations(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        token = add_agent(conn, AGENT)
        import_sites(conn, SITES)
    asyncio.run(_create_users(pg_dsn))
    return ProjectWorld(dsn=pg_dsn, agent_token=token, today=today_vn())


@pytest.fixture(scope="module")
def central(world: ProjectWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralService]:
    log = tmp_path_factory.mktemp("projects_page_central") / "central.log"
    service = start_central(world.dsn, log)
    try:
        seed(service.url, world)
        yield service
    finally:
        service.process.stop()


def seed(url: str, world: ProjectWorld) -> None:
    """The plan through the plans API (as the PMU), the site's figures through the agent's endpoints."""
    with httpx.Client(base_url=url, timeout=10.0) as client:
        login = client.post("/api/v1/auth/login", json={"username": PMU, "password": PASSWORD})
        assert login.status_code == 200, login.text
        pmu = {"Authorization": f"Bearer {login.json()['token']}"}
        stored = client.put(f"/api/v1/projects/{PROJECT}/plan", json=plan_body(world.today), headers=pmu)
        assert stored.status_code == 200, stored.text
        agent = {"Authorization": f"Bearer {world.agent_token}"}
        events: list[ProgressEvent | SiteActivityEvent] = []
        for seed_no, (offset, percent, confidence) in enumerate(ESTIMATES):
            time = day_close(world.today + dt.timedelta(days=offset))
            image = keyframe(seed_no)
            sha = hashlib.sha256(image).hexdigest()
            world.keyframes.append(sha)
            put = client.put(
                f"/api/v1/evidence/{sha}", params={"time": time.isoformat()}, content=image,
                headers={**agent, "Content-Type": "image/png"},
            )  # fmt: skip
            assert put.status_code in (200, 201), put.text
            ref = EvidenceRef(kind="keyframe", uri=f"evidence/{sha}.png", time=time, sha256=sha)
            events.append(
                ProgressEvent(
                    agent_id=AGENT,
                    source_id="cam-a",
                    time=time,
                    project_id=PROJECT,
                    package_id="mong",
                    percent_complete=percent,
                    method="camera_visual",
                    confidence=confidence,
                    evidence=(ref,),
                )
            )
        for camera, offset, active_h in ACTIVITY:
            end = day_close(world.today + dt.timedelta(days=offset))
            events.append(
                SiteActivityEvent(
                    agent_id=AGENT,
                    source_id=camera,
                    time=end,
                    start=end - dt.timedelta(hours=10),
                    project_id=PROJECT,
                    zone_id="bai-thi-cong",
                    frames=600,
                    covered_s=36_000.0,
                    activity_index=active_h / 10,
                    active_s=active_h * 3600,
                    schema_version="1.5",
                )
            )
        body = EventBatch(agent_id=AGENT, events=tuple(events)).model_dump_json()
        posted = client.post("/api/v1/events", content=body, headers={**agent, "Content-Type": "application/json"})
        assert posted.status_code == 200, posted.text


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/projects")
    expect(page.locator("#login-section")).to_be_visible()
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-button")
    expect(page.locator("#list-section")).to_be_visible()
    expect(page.locator("#who-name")).to_contain_text(username)


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"projects_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SHOTS_DIR.is_dir():
        shutil.copyfile(path, SHOTS_DIR / path.name)


def api_progress(url: str, page: Page) -> dict[str, Any]:
    """The progress answer as the page's session gets it (same cookie)."""
    answer = page.request.get(f"{url}/api/v1/projects/{PROJECT}/progress")
    assert answer.ok, answer.text()
    body: dict[str, Any] = answer.json()
    return body


def package_of(progress: dict[str, Any], package_id: str) -> dict[str, Any]:
    return next(p for p in progress["packages"] if p["package_id"] == package_id)


def planned_on(entry: dict[str, Any], day: dt.date) -> float:
    """The plan's figure for ``day`` in the API's daily planned series."""
    return float(next(p["planned_pct"] for p in entry["planned"] if p["date"] == day.isoformat()))


def audit_of(dsn: str, action: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT actor, reason, target FROM audit_log WHERE action = %s ORDER BY seq", (action,)
        ).fetchall()


def test_pmu_reads_the_s_curve_and_confirms(
    world: ProjectWorld, central: CentralService, browser: Browser, tmp_path: Path
) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, central.url, PMU)

    # The list: foundation planned 100% today against a 70% estimate -> the project is behind.
    row = page.locator(f"#projects tr[data-project='{PROJECT}']")
    expect(row).to_contain_text("Cầu Phú Xuân")
    expect(row.locator(".chip")).to_have_count(1)
    shot(page, tmp_path, "list")
    row.locator("button.open").click()
    expect(page.locator("#project-title")).to_contain_text("Cầu Phú Xuân")

    progress = api_progress(central.url, page)
    # The project curve: every plan point and every daily actual figure is one mark.
    project = progress["project"]
    expect(page.locator("#scurve-svg circle.planned-point")).to_have_count(len(project["planned"]))
    expect(page.locator("#scurve-svg circle.actual-point")).to_have_count(len(project["actual"]))
    expect(page.locator("#scurve-svg line.today-line")).to_have_count(1)
    # The foundation: the plan's daily series, four estimates of which one is hollow (low confidence).
    page.select_option("#curve-package", "mong")
    mong = package_of(progress, "mong")
    expect(page.locator("#scurve-svg circle.planned-point")).to_have_count(len(mong["planned"]))
    expect(page.locator("#scurve-svg circle.actual-point")).to_have_count(len(ESTIMATES))
    expect(page.locator("#scurve-svg circle.actual-point.low-confidence")).to_have_count(1)
    expect(page.locator("#scurve-svg polyline.planned-line")).to_have_count(1)
    expect(page.locator("#scurve-svg polyline.actual-line")).to_have_count(1)
    expect(page.locator("#scurve-svg polygon.band")).to_have_count(1)
    page.click("#curve-table-toggle")
    days = {p["date"] for p in mong["planned"]} | {p["date"] for p in mong["actual"]}
    expect(page.locator("#curve-table tbody tr")).to_have_count(len(days))

    # The package table shows the API's figures for today.
    for package_id in ("mong", "khung"):
        entry = package_of(progress, package_id)
        cells = page.locator(f"#packages tr[data-package='{package_id}'] td")
        expect(cells.nth(2)).to_have_text(f"{planned_on(entry, world.today):.1f}%")
        actual = entry["actual"]
        expect(cells.nth(3)).to_have_text(f"{actual[-1]['percent']:.1f}%" if actual else "—")
    expect(page.locator("#packages tr[data-package='mong'] td").nth(1)).to_have_text("40.0%")
    expect(page.locator("#packages tr[data-package='mong'] td").nth(7)).to_contain_text("Có")

    # Timelapse over the four keyframes, an activity bar per camera and day, the live grid's two cameras.
    expect(page.locator("#timelapse-day")).to_have_attribute("max", str(len(ESTIMATES) - 1))
    expect(page.locator("#timelapse-image")).to_have_attribute("src", re.compile(world.keyframes[-1]))
    page.wait_for_function("() => document.getElementById('timelapse-image').naturalWidth === 160")
    expect(page.locator("#activity-svg rect.bar")).to_have_count(len(ACTIVITY))
    expect(page.locator("#live-grid figure")).to_have_count(2)
    expect(page.locator("#live-grid")).to_contain_text("Chưa có luồng trực tiếp")
    # Tried, not refused: central reports the camera down after live.down_after_failures (5) failed connects
    # with backoff (up to ~8 s), hence the longer wait.
    expect(page.locator("#live-grid")).to_contain_text("Không kết nối được luồng trực tiếp", timeout=20_000)
    shot(page, tmp_path, "project")

    # Confirm the frame at 30% with a note and a photo: the confirmed mark appears on its curve.
    expect(page.locator("#confirm-section")).to_be_visible()
    page.select_option("#confirm-package", "khung")
    page.fill("#confirm-date", world.today.isoformat())
    page.fill("#confirm-percent", "30")
    page.fill("#confirm-note", "Kiểm tra hiện trường: đã đổ xong dầm tầng 1")
    photo: FilePayload = {"name": "site.png", "mimeType": "image/png", "buffer": keyframe(9)}
    page.set_input_files("#confirm-photo", files=[photo])
    page.click("#confirm-button")
    expect(page.locator("#confirm-result")).to_contain_text("Đã lưu xác nhận")
    expect(page.locator("#curve-package")).to_have_value("khung")
    expect(page.locator("#scurve-svg circle.actual-point.confirmed")).to_have_count(1)
    expect(page.locator("#scurve-svg text.confirmed-label")).to_have_text("đã xác nhận / confirmed")
    expect(page.locator("#packages tr[data-package='khung'] td").nth(3)).to_have_text("30.0%")
    shot(page, tmp_path, "confirmed")
    confirmations = audit_of(world.dsn, "progress_confirm")
    assert [entry["actor"] for entry in confirmations] == [PMU]
    assert problems == []
    context.close()


def test_operator_sees_the_project_without_the_form(
    world: ProjectWorld, central: CentralService, browser: Browser
) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, central.url, OPERATOR)
    page.locator(f"#projects tr[data-project='{PROJECT}'] button.open").click()
    expect(page.locator("#scurve-svg")).to_be_visible()
    expect(page.locator("#confirm-section")).to_be_hidden()
    assert problems == []
    context.close()


class HeldAnswers:
    """Requests whose answers are read from central when they arrive and handed to the page only when the test
    says so: a slow network, made deterministic."""

    def __init__(self) -> None:
        self.held: list[tuple[Route, Any]] = []

    def __call__(self, route: Route) -> None:
        self.held.append((route, route.fetch()))

    def wait_for(self, page: Page, count: int) -> None:
        for _ in range(300):
            if len(self.held) >= count:
                return
            page.wait_for_timeout(50)  # lets Playwright dispatch the route handlers
        raise AssertionError(f"{len(self.held)} of {count} requests arrived")

    def release(self, page: Page) -> None:
        """Answer every held request, and return once the page has had the answers (and time to use them)."""
        for route, answer in self.held:
            route.fulfill(response=answer)
        self.held.clear()
        page.evaluate("() => new Promise((done) => setTimeout(done, 300))")


def answer_live_sockets(page: Page) -> list[WebSocketRoute]:
    """The page's live video sockets from now on, answered by the test in central's place: each opens and
    stays silent (never connected to central) until the test closes it."""
    sockets: list[WebSocketRoute] = []

    def keep(socket: WebSocketRoute) -> None:
        sockets.append(socket)

    page.route_web_socket(LIVE_SOCKETS, keep)
    return sockets


def put_other_plan(url: str, today: dt.date) -> None:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        login = client.post("/api/v1/auth/login", json={"username": PMU, "password": PASSWORD})
        assert login.status_code == 200, login.text
        body = {
            "project_name_vi": "Kè sông An Cựu",
            "project_name_en": "An Cuu river embankment",
            "packages": [
                {
                    "id": "ke",
                    "name": "Kè",
                    "weight": 100,
                    "planned_start": (today - dt.timedelta(days=5)).isoformat(),
                    "planned_finish": (today + dt.timedelta(days=25)).isoformat(),
                }
            ],
        }
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        stored = client.put(f"/api/v1/projects/{OTHER_PROJECT}/plan", json=body, headers=headers)
        assert stored.status_code == 200, stored.text


def test_a_late_answer_of_another_project_is_not_drawn(
    world: ProjectWorld, central: CentralService, browser: Browser
) -> None:
    """Review item 4: open a project, go back to the list before its views answer, open another: the first
    one's timelapse, activity and cameras never show inside the second, and no live stream is started."""
    put_other_plan(central.url, world.today)
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sockets = answer_live_sockets(page)
    held = HeldAnswers()
    page.route(re.compile(rf"/api/v1/projects/{PROJECT}/(timelapse|activity|cameras)\b"), held)
    sign_in(page, central.url, PMU)
    page.locator(f"#projects tr[data-project='{PROJECT}'] button.open").click()
    held.wait_for(page, 3)
    expect(page.locator("#project-title")).to_contain_text("Cầu Phú Xuân")
    page.click("#back")
    expect(page.locator("#list-section")).to_be_visible()
    page.locator(f"#projects tr[data-project='{OTHER_PROJECT}'] button.open").click()
    expect(page.locator("#project-section")).to_have_attribute("data-loaded", OTHER_PROJECT)
    held.release(page)  # the first project's answers arrive now

    expect(page.locator("#project-title")).to_contain_text("Kè sông An Cựu")
    expect(page.locator("#curve-package option[value='ke']")).to_have_count(1)
    expect(page.locator("#live-grid figure")).to_have_count(0)
    expect(page.locator("#live-empty")).to_be_visible()
    expect(page.locator("#timelapse")).to_be_hidden()
    expect(page.locator("#timelapse-empty")).to_be_visible()
    expect(page.locator("#activity-svg rect.bar")).to_have_count(0)
    assert page.evaluate("() => Object.keys(window.IOC_LIVE_STATS.tiles)") == []
    assert sockets == []
    assert page.url.endswith(f"#{OTHER_PROJECT}")
    assert problems == []
    context.close()


def test_a_live_view_closed_for_an_ended_session_asks_to_sign_in_again(
    world: ProjectWorld, central: CentralService, browser: Browser
) -> None:
    """Review item 5: the live proxy closes a viewer whose session ended with 4401; the page must ask to sign
    in again (not show "bị từ chối" for ever), and come back to the same project after signing in."""
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sockets = answer_live_sockets(page)  # the test closes them as the proxy would
    sign_in(page, central.url, PMU)
    page.locator(f"#projects tr[data-project='{PROJECT}'] button.open").click()
    expect(page.locator("#project-section")).to_have_attribute("data-loaded", PROJECT)
    live = page.locator("#live-grid figure[data-state]")
    expect(live).to_have_count(1)  # cam-a has a live stream configured, cam-b none
    for _ in range(100):
        if sockets:
            break
        page.wait_for_timeout(50)
    assert sockets, "the live tile opened no socket"

    page.evaluate("() => IOC.signOut()")  # the session ends on the server; the page is not told
    for socket in sockets:
        socket.close(code=4401, reason="not signed in")
    expect(page.locator("#login-section")).to_be_visible()
    expect(page.locator("#project-section")).to_be_hidden()
    expect(page.locator("#who")).to_be_hidden()
    assert page.url.endswith(f"#{PROJECT}")  # kept for after signing in

    page.fill("#login-username", PMU)
    page.fill("#login-password", PASSWORD)
    page.click("#login-button")
    expect(page.locator("#project-section")).to_have_attribute("data-loaded", PROJECT)
    expect(page.locator("#project-title")).to_contain_text("Cầu Phú Xuân")
    expect(page.locator("#login-section")).to_be_hidden()
    assert problems == []
    context.close()
