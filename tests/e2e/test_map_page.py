"""The map page in a real browser (Debian's Chromium driven by Playwright) against a real ``central-ingest serve``
on TimescaleDB, with the demo boundaries and real alert rules. The province operator sees every registered
camera and sensor as a marker coloured by state, filters by commune, opens a camera's details (live view link)
from the map and a sensor's (value, level, sensors link) from the list with the keyboard; a Kim Long operator
sees only Kim Long. Every state passes axe-core and leaves a screenshot under build/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

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
