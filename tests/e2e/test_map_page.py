"""The map page in a real browser (Debian's Chromium driven by Playwright) against a real ``central-ingest serve``
on TimescaleDB, with the demo boundaries and real alert rules. The province operator sees every registered
camera and sensor as a marker coloured by state, filters by commune, opens a camera's details (live view link)
from the map and a sensor's (value, level coloured by its severity, sensors link) from the list with the keyboard;
a Kim Long operator sees only Kim Long; a PMU user and an auditor get only the links their roles may open. The
periodic refresh keeps keyboard focus and the live region's text, and changes only the site that changed; tile
attribution and area names from the settings show as text, never as HTML. Every state passes axe-core and
leaves a screenshot under build/screenshots/.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from devstack.apps import CentralService, start_central
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page
from tests.integration.test_map_api import (
    AGENT_1,
    AGENT_2,
    DEMO_BOUNDARIES,
    EXPECTED_STATES,
    PASSWORD,
    PROVINCE,
    MapWorld,
    build_map_world,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
# The tests ask for ``central`` before ``browser``: the world is built with asyncio.run, which must happen before
# Playwright's loop runs in this thread.


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> MapWorld:
    return build_map_world(pg_dsn, tmp_path_factory.mktemp("map_page_world"))


@pytest.fixture(scope="module")
def central(world: MapWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralService]:
    log = tmp_path_factory.mktemp("map_page_central") / "central.log"
    env = {
        "IOC_CENTRAL_MAP_BOUNDARIES_PATH": str(DEMO_BOUNDARIES),
        "IOC_CENTRAL_ALERT_RULES_PATH": str(world.settings.alert_rules_path),
    }
    service = start_central(world.settings.database_url, log, env=env)
    try:
        yield service
    finally:
        service.process.stop()


def marker_total(page: Page) -> int:
    """Sites drawn on the map: single markers plus the sites inside each cluster."""
    singles = page.locator(".leaflet-marker-icon .mk[data-key]").count()
    clustered = page.eval_on_selector_all(
        ".leaflet-marker-icon .mk-cluster", "nodes => nodes.reduce((n, c) => n + Number(c.dataset.count), 0)"
    )
    return singles + int(clustered)


def list_keys(page: Page) -> set[str]:
    return set(page.eval_on_selector_all("#map-list tbody tr[data-key]", "rows => rows.map(r => r.dataset.key)"))


def test_map_page(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, central.url, "/map", "op.tinh", PASSWORD)
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(len(EXPECTED_STATES))
        assert list_keys(page) == set(EXPECTED_STATES)
        expect(page.locator(".leaflet-overlay-pane path").first).to_be_visible()  # the boundaries are drawn
        expect(page.locator(".area-label", has_text="Phường Kim Long")).to_be_visible()
        page.wait_for_function("() => document.querySelectorAll('.leaflet-marker-icon').length > 0")
        assert marker_total(page) == len(EXPECTED_STATES)
        for key, state in EXPECTED_STATES.items():
            row = page.locator(f'#map-list tbody tr[data-key="{key}"]')
            expect(row.locator(".chip").first).to_contain_text({"live": "Hoạt động", "stalled": "Gián đoạn",
                "down": "Mất kết nối", "unknown": "Chưa rõ"}[state])  # fmt: skip
        expect(page.locator("#map-count")).to_contain_text("6 / 6")
        assert_accessible(page, "map, whole province")
        save_screenshot(page, "map-province")

        # Filter by commune: only Kim Long's cameras stay, on the map and in the list.
        page.select_option("#filter-province", PROVINCE)
        page.select_option("#filter-commune", "Phường Kim Long")
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(2)
        assert list_keys(page) == {f"{AGENT_2}/cam-c", f"{AGENT_2}/cam-d"}
        assert marker_total(page) == 2
        expect(page.locator("#map-count")).to_contain_text("2 / 6")

        # Details from the map: click the down camera's marker (clusters are opened by zooming to it).
        page.locator(f'#map-list tbody tr[data-key="{AGENT_2}/cam-c"] button').click()
        marker = page.locator(f'.leaflet-marker-icon .mk[data-key="{AGENT_2}/cam-c"]')
        expect(marker).to_be_visible()
        page.locator("#map-details-empty").evaluate("n => n.hidden = false")  # forget the list's pick
        marker.click()
        expect(page.locator("#map-details-name")).to_have_text("Hầm chui Kim Long")
        expect(page.locator("#map-details-body")).to_contain_text("Mất kết nối")
        expect(page.locator("#map-details-link")).to_have_attribute("href", f"/live?grid=1&cameras={AGENT_2}/cam-c")
        assert_accessible(page, "map, Kim Long, camera details")
        save_screenshot(page, "map-commune-filter-details")

        # Filter by state, then by kind: only sensors, opened from the list with the keyboard.
        page.select_option("#filter-commune", "")
        page.uncheck('input[name="state"][value="live"]')
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(3)
        page.check('input[name="state"][value="live"]')
        page.uncheck('input[name="kind"][value="camera"]')
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(1)
        page.locator(f'#map-list tbody tr[data-key="{AGENT_1}/tram-1"] button').focus()
        page.keyboard.press("Enter")
        expect(page.locator("#map-details")).to_be_focused()
        expect(page.locator("#map-details-name")).to_have_text("Trạm mực nước Phú Hội")
        details = page.locator("#map-details-body")
        expect(details).to_contain_text("báo động 2")
        expect(details).to_contain_text("4,30 m")
        # The level's colour comes from the severity of the rule level (báo động 2: warning -> red), not its rank.
        level = details.locator(".level-chip")
        expect(level).to_have_attribute("data-severity", "warning")
        expect(level).to_have_class(re.compile(r"\bbad\b"))
        expect(page.locator("#map-details-link")).to_have_attribute("href", f"/sensors?station={AGENT_1}/tram-1")
        assert_accessible(page, "map, sensor details")
        save_screenshot(page, "map-sensor-details")
        assert not problems, problems
    finally:
        context.close()


def test_a_commune_user_sees_only_its_commune(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, central.url, "/map", "op.kimlong", PASSWORD)
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(2)
        assert list_keys(page) == {f"{AGENT_2}/cam-c", f"{AGENT_2}/cam-d"}
        expect(page.locator("#filter-commune option")).to_have_count(2)  # all + Kim Long
        save_screenshot(page, "map-commune-user")
        assert not problems, problems
    finally:
        context.close()


def test_links_follow_the_roles(central: CentralService, browser: Browser) -> None:
    """A PMU user may open the live view but not the sensor charts; an auditor neither: no link to a refused page."""
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, central.url, "/map", "pmu.lan", PASSWORD)
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(len(EXPECTED_STATES))
        page.locator(f'#map-list tbody tr[data-key="{AGENT_1}/cam-a"] button').click()
        expect(page.locator("#map-details-name")).to_have_text("Cầu Trường Tiền")
        expect(page.locator("#map-details-link")).to_have_attribute("href", f"/live?grid=1&cameras={AGENT_1}/cam-a")
        page.locator(f'#map-list tbody tr[data-key="{AGENT_1}/tram-1"] button').click()
        expect(page.locator("#map-details-name")).to_have_text("Trạm mực nước Phú Hội")
        expect(page.locator("#map-details-body")).to_contain_text("báo động 2")
        expect(page.locator("#map-details-link")).to_have_count(0)
        assert_accessible(page, "map, PMU user, sensor details without the charts link")
        assert not problems, problems
    finally:
        context.close()
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, central.url, "/map", "kiemtoan.an", PASSWORD)
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(2)
        page.locator(f'#map-list tbody tr[data-key="{AGENT_2}/cam-c"] button').click()
        expect(page.locator("#map-details-name")).to_have_text("Hầm chui Kim Long")
        expect(page.locator("#map-details-link")).to_have_count(0)
        save_screenshot(page, "map-auditor-details")
        assert not problems, problems
    finally:
        context.close()


PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
ATTRIBUTION = '<img src="/x" id="injected-attribution">Bản đồ <b>nền</b> & co'
AREA_NAME = '<i id="injected-area">Phường</i> Kim Long'


LEAFLET_TILE_ABORT = "Loading the image 'data:image/gif;base64,"
"""Leaflet 1.9 cancels a tile it no longer needs by setting its src to a data: GIF. With tiles in the settings the
page's img-src allows data: (map_page.py); this test sets tiles through the API answer only, so the page keeps
the strict policy and the browser logs that refusal, which the test leaves out."""


class MapServer:
    """The page's API as central answers it, with a quick refresh, optionally tiles and settings text that looks
    like HTML, and (once ``change`` names a site) that site down: what a test needs to watch several refreshes."""

    def __init__(self, page: Page, *, tiles: bool = False) -> None:
        self.change: str | None = None
        self.tiles = tiles
        page.route("**/api/v1/map/config", self.config)
        page.route("**/api/v1/map/boundaries", self.boundaries)
        page.route("**/api/v1/map/sites", self.sites)
        page.route("**/test-tiles/**", lambda route: route.fulfill(body=PNG_1X1, content_type="image/png"))

    def config(self, route: Route) -> None:
        answer = route.fetch()
        body = answer.json() | {"refresh_s": 1}
        if self.tiles:
            body |= {"tile_url": "/test-tiles/{z}/{x}/{y}.png", "tile_attribution": ATTRIBUTION}
        route.fulfill(response=answer, json=body)

    @staticmethod
    def boundaries(route: Route) -> None:
        answer = route.fetch()
        body = answer.json()
        for feature in body["features"]:
            if feature["properties"]["name"] == "Phường Kim Long":
                feature["properties"]["name"] = AREA_NAME
        route.fulfill(response=answer, body=json.dumps(body), content_type="application/geo+json")

    def sites(self, route: Route) -> None:
        answer = route.fetch()
        body: list[dict[str, Any]] = answer.json()
        for site in body:
            if f"{site['agent_id']}/{site['id']}" == self.change:
                site["state"] = "down"
        route.fulfill(response=answer, json=body)


def wait_for_refreshes(page: Page, count: int = 3) -> None:
    """Let ``count`` periodic refreshes of the sites arrive (the ones before the last are drawn by then)."""
    for _ in range(count):
        with page.expect_response(lambda r: r.url.endswith("/api/v1/map/sites"), timeout=10_000):
            pass


WATCH = """() => {
    window.watched = {mutations: 0, row: document.querySelector('#map-list tbody tr[data-key$="/cam-a"]')};
    new MutationObserver((records) => { window.watched.mutations += records.length; })
        .observe(document.getElementById("map-count"), {childList: true, characterData: true, subtree: true});
}"""
SAME_ROW = "() => window.watched.row === document.querySelector('#map-list tbody tr[data-key$=\"/cam-a\"]')"


def test_settings_text_shows_as_text(central: CentralService, browser: Browser) -> None:
    """The tile attribution and the area names (settings and GeoJSON) go into Leaflet as text, never as HTML."""
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        MapServer(page, tiles=True)
        sign_in(page, central.url, "/map", "op.tinh", PASSWORD)
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(len(EXPECTED_STATES))
        expect(page.locator(".leaflet-control-attribution")).to_contain_text("<b>nền</b> & co")
        expect(page.locator("#injected-attribution")).to_have_count(0)
        expect(page.locator(".area-label", has_text="<i id=")).to_be_visible()
        expect(page.locator("#injected-area")).to_have_count(0)
        save_screenshot(page, "map-settings-text")
        problems = [p for p in problems if not p.startswith(LEAFLET_TILE_ABORT)]
        assert not problems, problems
    finally:
        context.close()


def test_refresh_keeps_focus_and_changes_in_place(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        server = MapServer(page)
        sign_in(page, central.url, "/map", "op.tinh", PASSWORD)
        expect(page.locator("#map-list tbody tr[data-key]")).to_have_count(len(EXPECTED_STATES))
        expect(page.locator(".area-label", has_text="<i id=")).to_be_visible()

        # Keyboard focus on the details link survives refreshes; the live region is not written again.
        page.locator(f'#map-list tbody tr[data-key="{AGENT_1}/tram-1"] button').focus()
        page.keyboard.press("Enter")
        expect(page.locator("#map-details")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.locator("#map-details-link")).to_be_focused()
        page.evaluate(WATCH)
        wait_for_refreshes(page)
        expect(page.locator("#map-details-link")).to_be_focused()
        assert page.evaluate("() => window.watched.mutations") == 0

        # Focus on a marker survives refreshes too, and a site that changed is changed in place.
        page.locator(f'#map-list tbody tr[data-key="{AGENT_1}/cam-a"] button').click()
        marker = page.locator(f'.leaflet-marker-icon:has(.mk[data-key="{AGENT_1}/cam-a"])')
        expect(marker).to_be_visible()
        marker.focus()
        server.change = f"{AGENT_1}/cam-a"
        row = page.locator(f'#map-list tbody tr[data-key="{AGENT_1}/cam-a"]')
        expect(row.locator(".chip").first).to_contain_text("Mất kết nối")
        expect(marker.locator(".mk")).to_have_attribute("data-state", "down")
        expect(page.locator("#map-details-body")).to_contain_text("Mất kết nối")
        wait_for_refreshes(page, 2)
        expect(marker).to_be_focused()
        assert page.evaluate(SAME_ROW), "the changed site's row was rebuilt instead of changed in place"
        assert page.evaluate("() => window.watched.mutations") == 0  # still 6 / 6 sites shown
        assert_accessible(page, "map, after refreshes")
        save_screenshot(page, "map-after-refreshes")
        assert not problems, problems
    finally:
        context.close()
