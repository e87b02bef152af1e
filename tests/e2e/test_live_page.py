"""The live view (/live) in a real browser against the real stack.

A rendered traffic clip is served by the GStreamer RTSP server (looping); a real ``edge-agent`` process reads
it with the SSD model, ships its counts to a real ``central-ingest serve`` on TimescaleDB and serves the
live record stream from its preview server; the camera is registered in the sites registry (Phú Hội
commune) with the agent's preview address, so central's live proxy relays it. Debian's Chromium (Playwright)
then: an admin signs in with TOTP, opens a 4-tile grid from a shared link, receives frames with their
overlays drawn (boxes counted by the page), opens one camera full screen with its counts chart and live
totals, and returns with Esc; an operator of the same commune sees the camera; an operator of another commune
is not offered it and its socket is refused. Every page state passes axe-core and leaves a screenshot in
``build/screenshots/``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, Route, expect

from central_ingest.access.admin import Actor, create_user
from central_ingest.access.roles import Role
from central_ingest.access.settings import AccessSettings
from central_ingest.access.totp import totp
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from central_ingest.web.live_page import router as live_page_router
from central_ingest.web.static_assets import router as common_router
from devstack.apps import (
    CentralService,
    ManagedProcess,
    edge_config,
    start_central,
    start_edge,
    write_edge_config,
    write_secret,
)
from devstack.demo import SceneTruth
from devstack.ports import free_port
from devstack.scene import SceneParams, render_scene
from edge_agent.perception.detectors import DetectorConfig, resolve_model_path
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = "live-agent"
CAMERA = "cam-phu-hoi"
KEY = f"{AGENT}/{CAMERA}"
OTHER_CAMERA = "cam-vinh-ninh"
PROVINCE = "Huế"
PASSWORD = "mat-khau-that-dai-2025"
ADMIN = "admin.lan"
OPERATOR_HERE = "operator.hoi"
OPERATOR_ELSEWHERE = "operator.ninh"
FRAMES_WITHIN_MS = 60_000
"""Safety net for the agent to load its model, connect to the camera and analyse; not a performance claim."""


STATIC = Path(__file__).resolve().parents[2] / "central_ingest" / "web" / "static"


def test_page_files_are_served_with_the_strict_policy() -> None:
    """No stack needed: the listed files answer with the strict CSP (images only from here, requests only here)."""
    app = FastAPI()
    app.include_router(live_page_router)
    app.include_router(common_router)
    client = TestClient(app)
    for path in ("/live", "/live/static/live.js", "/live/static/live.css", "/common/static/live_tile.js"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "img-src 'self' blob:;" in policy
        assert "connect-src 'self';" in policy
    assert client.get("/live/static/index.html").status_code == 404
    assert client.get("/live/static/../projects/projects.js").status_code == 404


def test_page_code_builds_no_html_and_finds_its_elements() -> None:
    html = (STATIC / "live" / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([\w-]+)"', html))
    for script in (STATIC / "live" / "live.js", STATIC / "common" / "live_tile.js"):
        text = script.read_text(encoding="utf-8")
        assert "innerHTML" not in text, script.name
        assert "insertAdjacentHTML" not in text, script.name
        assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", text) == [], script.name
    wanted = set(re.findall(r'\$\("([\w-]+)"\)', (STATIC / "live" / "live.js").read_text(encoding="utf-8")))
    assert {"live-grid", "focus", "chart", "live-totals"} <= wanted
    assert sorted(wanted - ids) == []


@dataclass
class LiveWorld:
    central: CentralService
    edge: ManagedProcess
    admin_totp_secret: bytes
    line_name: str


async def _create_users(dsn: str) -> bytes:
    access = AccessSettings(password_kdf_log2_n=10)  # a cheap hash: this test is about the page
    users: tuple[tuple[str, Role, str | None], ...] = (
        (ADMIN, "admin", None),
        (OPERATOR_HERE, "operator", f"{PROVINCE}/Phú Hội"),
        (OPERATOR_ELSEWHERE, "operator", f"{PROVINCE}/Vĩnh Ninh"),
    )
    secret = b""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for username, role, area in users:
            change = await create_user(
                conn,
                Actor("test-setup", "admin"),
                access,
                username=username,
                password=PASSWORD,
                roles=frozenset({role}),
            )
            if username == ADMIN:
                assert change.totp_secret is not None, "an admin must get a TOTP secret"
                secret = change.totp_secret
            if area is not None:
                await conn.execute("UPDATE users SET areas = %s WHERE username = %s", ([area], username))
    return secret


@pytest.fixture(scope="module")
def world(pg_dsn: str, rtsp_server_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveWorld]:
    try:
        resolve_model_path(DetectorConfig())
    except FileNotFoundError as error:
        pytest.fail(f"the SSD model is missing ({error}); ./run setup fetches it")
    folder = tmp_path_factory.mktemp("live_page")
    truth = SceneTruth.load(*render_scene(SceneParams(duration_s=10.0), folder / "scene"))
    camera_url = rtsp_server_factory(truth.video, loop=True)
    preview_port = free_port()
    apply_migrations(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        token = add_agent(conn, AGENT)
        import_sites(
            conn,
            (
                SiteConfig(
                    id=CAMERA, agent_id=AGENT, name="Ngã tư Phú Hội", lat=16.46, lon=107.6, province=PROVINCE,
                    commune="Phú Hội", preview_url=f"http://127.0.0.1:{preview_port}/cameras/{CAMERA}/preview.mjpg",
                ),
                SiteConfig(
                    id=OTHER_CAMERA, agent_id=AGENT, name="Cầu Vĩnh Ninh", lat=16.46, lon=107.58, province=PROVINCE,
                    commune="Vĩnh Ninh",
                ),
            ),
        )  # fmt: skip
    secret = asyncio.run(_create_users(pg_dsn))
    central = start_central(pg_dsn, folder / "central.log")
    config = edge_config(
        agent_id=AGENT,
        central_url=central.url,
        token_file=write_secret(folder / "agent.token", token),
        camera_id=CAMERA,
        camera_url=str(camera_url),
        lines=[truth.line],
        interval_s=10,
        on_end="reconnect",
        preview_port=preview_port,
    )
    edge = start_edge(write_edge_config(folder / "edge.yaml", config), folder / "edge.log")
    try:
        line_name = str(truth.line.get("name") or truth.line_id)
        yield LiveWorld(central=central, edge=edge, admin_totp_secret=secret, line_name=line_name)
    finally:
        edge.stop()
        central.process.stop()


def wait_for_frames(page: Page, key: str, frames: int, *, with_boxes: bool) -> dict[str, Any]:
    """The tile's stats once it has drawn ``frames`` frames (and, if asked, at least one box)."""
    page.wait_for_function(
        """([key, frames, withBoxes]) => {
            const t = window.IOC_LIVE_STATS && window.IOC_LIVE_STATS.tiles[key];
            return t && t.frames_drawn >= frames && (!withBoxes || t.boxes_drawn > 0);
        }""",
        arg=[key, frames, with_boxes],
        timeout=FRAMES_WITHIN_MS,
    )
    stats: dict[str, Any] = page.evaluate("(key) => window.IOC_LIVE_STATS.tiles[key]", key)
    return stats


def wait_for_counts(page: Page, url: str) -> None:
    """Until central holds a crossing of the camera (the agent ships 10 s intervals), so the chart has bars."""
    deadline = time.monotonic() + FRAMES_WITHIN_MS / 1000
    while time.monotonic() < deadline:
        answer = page.request.get(f"{url}/api/v1/counts", params={"agent_id": AGENT, "source_id": CAMERA})
        assert answer.ok, answer.text()
        if any(int(row["count"]) > 0 for row in answer.json()):
            return
        time.sleep(0.5)
    pytest.fail("central stored no crossing of the camera")


def test_admin_watches_a_grid_and_opens_one_camera_full_screen(world: LiveWorld, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    url = world.central.url
    sign_in(page, url, f"/live?grid=4&cameras={KEY},{KEY}", ADMIN, PASSWORD, totp(world.admin_totp_secret, time.time()))
    page.evaluate(
        """() => { window.liveEvents = [];
            window.addEventListener("ioc-live-frame", (e) => window.liveEvents.push({
                ...e.detail, canvas: e.detail.canvas instanceof HTMLCanvasElement })); }"""
    )
    expect(page.locator("#live-grid .tile")).to_have_count(4)
    expect(page.locator("button[data-grid='4']")).to_have_attribute("aria-pressed", "true")

    stats = wait_for_frames(page, KEY, 5, with_boxes=True)
    assert stats["state"] == "live"
    assert stats["bad_records"] == 0
    assert page.evaluate("(key) => window.IOC_LIVE_STATS.first_frame_ms[key]", KEY) >= 0
    # Two tiles of the same camera share central's upstream; both draw, the other two wait for a choice.
    for index in (0, 1):
        tile = page.locator(f".tile[data-index='{index}']")
        expect(tile).to_have_attribute("data-state", "live")
        expect(tile.locator(".tile-status")).to_contain_text("trực tiếp")
        expect(tile.locator(".tile-name")).to_contain_text("Ngã tư Phú Hội")
        expect(tile.locator(".tile-counts")).to_contain_text(world.line_name)
        assert int(tile.get_attribute("data-frames") or 0) > 0
    expect(page.locator(".tile[data-index='2']")).to_have_attribute("data-state", "idle")
    # The picker offers the registry's cameras grouped by area; the canvas got the agent's picture size.
    options = page.locator(".tile[data-index='0'] select optgroup")
    expect(options).to_have_count(2)
    expect(page.locator(".tile[data-index='0'] select")).to_have_value(KEY)
    assert page.evaluate("() => document.querySelector('.tile canvas').width") > 0
    # The benchmark's contract: one event per drawn frame with the frame's identity and its canvas.
    page.wait_for_function("() => window.liveEvents.length >= 2")
    event = page.evaluate("() => window.liveEvents[window.liveEvents.length - 1]")
    assert (event["agent_id"], event["camera_id"], event["canvas"]) == (AGENT, CAMERA, True)
    assert isinstance(event["sequence"], int)
    assert event["analysed_at_ms"] > 0
    assert event["drawn_at_ms"] >= event["analysed_at_ms"] - 60_000  # the agent's clock, not far from ours
    assert "grid=4" in page.url
    assert KEY in page.url
    assert_accessible(page, "live grid")
    save_screenshot(page, "live_grid")

    # Full screen (keyboard: Enter on the tile) with the counts chart of the last hour and the live totals.
    wait_for_counts(page, url)
    page.locator(".tile[data-index='0'] .tile-view").focus()
    page.keyboard.press("Enter")
    focus = page.locator("#focus")
    expect(focus).to_be_visible()
    expect(page.locator("#focus-title")).to_contain_text("Ngã tư Phú Hội")
    expect(page.locator("#focus-view canvas")).to_have_count(1)
    expect(page.locator("#chart-svg rect.bar").first).to_be_visible()
    expect(page.locator("#live-totals tbody tr").first).to_contain_text(world.line_name)
    frames_before = page.evaluate("(key) => window.IOC_LIVE_STATS.tiles[key].frames_drawn", KEY)
    page.wait_for_function(
        "([key, n]) => window.IOC_LIVE_STATS.tiles[key].frames_drawn > n", arg=[KEY, frames_before + 2]
    )
    assert_accessible(page, "live full screen")
    save_screenshot(page, "live_fullscreen")
    page.keyboard.press("Escape")
    expect(focus).to_be_hidden()
    expect(page.locator(".tile[data-index='0'] .tile-view canvas")).to_have_count(1)

    # A 9-tile layout keeps the chosen cameras and goes into the address.
    page.click("button[data-grid='9']")
    expect(page.locator("#live-grid .tile")).to_have_count(9)
    assert "grid=9" in page.url
    assert problems == []  # no script error, no CSP refusal (the same-origin WebSocket passes connect-src 'self')
    context.close()


def test_operator_of_the_commune_sees_the_camera(world: LiveWorld, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, world.central.url, "/live", OPERATOR_HERE, PASSWORD)
    # No layout in the link or the browser: the first cameras with a stream fill the default 4-tile grid.
    expect(page.locator("#live-grid .tile")).to_have_count(4)
    expect(page.locator(".tile[data-index='0'] select")).to_have_value(KEY)
    wait_for_frames(page, KEY, 2, with_boxes=False)
    expect(page.locator(".tile[data-index='0']")).to_have_attribute("data-state", "live")
    # A link with a grid size and no cameras (the map's or a bookmark's) fills that grid the same way.
    page.evaluate("localStorage.clear()")
    page.goto(f"{world.central.url}/live?grid=1")
    expect(page.locator("#live-grid .tile")).to_have_count(1)
    expect(page.locator(".tile[data-index='0'] select")).to_have_value(KEY)
    assert problems == []
    context.close()


def test_operator_of_another_commune_is_refused(world: LiveWorld, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, world.central.url, f"/live?grid=1&cameras={KEY}", OPERATOR_ELSEWHERE, PASSWORD)
    listed = page.request.get(f"{world.central.url}/api/v1/live/cameras")
    assert listed.ok, listed.text()
    assert [(c["agent_id"], c["camera_id"]) for c in listed.json()] == [(AGENT, OTHER_CAMERA)]
    tile = page.locator(".tile[data-index='0']")
    # The link's camera is not offered among the area's cameras; its socket is closed with "not allowed".
    expect(tile.locator("optgroup option")).to_have_count(1)
    expect(tile.locator(f"optgroup option[value='{KEY}']")).to_have_count(0)
    expect(tile).to_have_attribute("data-state", "refused")
    expect(tile.locator(".tile-status")).to_contain_text("Không có quyền")
    assert page.evaluate("(key) => window.IOC_LIVE_STATS.tiles[key]", KEY)["close_code"] == 4403
    assert page.evaluate("(key) => window.IOC_LIVE_STATS.tiles[key].frames_drawn", KEY) == 0
    assert_accessible(page, "live refused")
    save_screenshot(page, "live_refused")
    assert problems == []
    context.close()


def test_an_ended_session_asks_to_sign_in_again(world: LiveWorld, browser: Browser) -> None:
    """A tile whose socket central closes with 4401 (the session ended) brings back the sign-in form with why,
    instead of a tile "refused" for good; signing in again restarts the page with the same layout."""
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    url = world.central.url
    sign_in(page, url, f"/live?grid=4&cameras={KEY}", OPERATOR_HERE, PASSWORD)
    wait_for_frames(page, KEY, 2, with_boxes=False)
    page.evaluate("() => IOC.signOut()")  # the session ends on the server; the page is not told
    # The next socket (a camera picked in tile 2) is closed by central with 4401.
    page.locator(".tile[data-index='1'] select").select_option(KEY)
    notice = page.locator("#ioc-login-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Phiên đăng nhập đã hết hạn")
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("nav")).to_have_count(0)
    expect(page.locator("#ioc-login-username")).to_be_focused()
    assert page.evaluate("(key) => window.IOC_LIVE_STATS.tiles[key].close_code", KEY) == 4401
    assert_accessible(page, "live, session ended")
    save_screenshot(page, "live_session_ended")
    page.fill("#ioc-login-username", OPERATOR_HERE)
    page.fill("#ioc-login-password", PASSWORD)
    with page.expect_navigation():
        page.click("#ioc-login-button")  # signed in again: the page starts over
    page.wait_for_selector("#app", state="visible")
    expect(page.locator("#ioc-login")).to_have_count(0)
    expect(page.locator(".tile[data-index='1'] select")).to_have_value(KEY)  # the layout stayed in the address
    wait_for_frames(page, KEY, 2, with_boxes=False)
    assert problems == []
    context.close()


def _refusing(status: int) -> Callable[[Route], None]:
    return lambda route: route.fulfill(status=status, json={"detail": "stubbed by the test"})


def test_a_failed_camera_list_is_not_an_empty_area(world: LiveWorld, browser: Browser) -> None:
    """The camera list call fails (403, 503): the page says why, and not "no camera in your area"."""
    for status, wording in ((403, "không có quyền"), (503, "tạm thời không sẵn sàng")):
        problems: list[str] = []
        context, page = watched_page(browser, problems)
        page.route(re.compile(r"/api/v1/live/cameras$"), _refusing(status))
        sign_in(page, world.central.url, "/live?grid=1", OPERATOR_HERE, PASSWORD)
        expect(page.locator("#live-error")).to_be_visible()
        expect(page.locator("#live-error")).to_contain_text(wording)
        expect(page.locator("#live-empty")).to_be_hidden()
        assert problems == []
        context.close()
