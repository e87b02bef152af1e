"""The overview (``/``) in Debian's Chromium against a real ``central-ingest serve`` on TimescaleDB: the shell
signs in, then each card shows the caller's own data: sites by state (a Kim Long operator sees only Kim Long),
open alerts as the alert API lists them, and the vehicle totals section only for roles that may read counts.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Browser, Route, expect

from devstack.apps import CentralService
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page
from tests.integration.test_map_api import PASSWORD, MapWorld

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_overview_shows_the_callers_own_numbers(
    map_central: CentralService, map_world: MapWorld, browser: Browser
) -> None:
    open_alerts = httpx.get(
        f"{map_central.url}/api/v1/alerts", params={"status": "open"}, headers=map_world.bearer("op.tinh"), timeout=10
    ).json()["items"]
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/", "op.tinh", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        rows = page.locator("#sites-body tr")
        expect(rows).to_have_count(4)
        # (cameras, stations) per state: see EXPECTED_STATES of the map world (the site without a place included).
        assert [rows.nth(i).locator("td").all_inner_texts() for i in range(4)] == [
            ["2", "1"],
            ["1", "0"],
            ["1", "0"],
            ["1", "0"],
        ]
        expect(page.locator("#alerts-open")).to_have_text(str(len(open_alerts)))
        expect(page.locator("#alerts-capped")).to_be_hidden()  # every alert counted: no "at least" note
        expect(page.locator("#traffic-card")).to_be_visible()
        expect(page.locator("#traffic-body")).to_contain_text("Chưa có lượt xe")
        expect(page.locator("nav a[aria-current='page']")).to_contain_text("Tổng quan")
        assert_accessible(page, "overview, province operator")
        save_screenshot(page, "overview-province")
        assert not problems, problems
    finally:
        context.close()


def test_a_commune_operator_and_a_pmu_see_less(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/", "op.kimlong", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        rows = page.locator("#sites-body tr")
        assert [rows.nth(i).locator("td").all_inner_texts() for i in range(4)] == [
            ["0", "0"],
            ["0", "0"],
            ["1", "0"],
            ["1", "0"],
        ]
        page.click("#ioc-sign-out")
        page.wait_for_selector("#ioc-login-form")  # signed out: the page reloaded to the sign-in form
        expect(page.locator("#app")).to_be_hidden()
        sign_in(page, map_central.url, "/", "pmu.lan", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#alerts-card")).to_be_visible()
        expect(page.locator("#traffic-card")).to_be_hidden()  # counts are not a PMU's (403): the card stays out
        expect(page.locator("nav")).not_to_contain_text("Giao thông")
        save_screenshot(page, "overview-pmu")
        assert not problems, problems
    finally:
        context.close()


def _with_more_pages(route: Route) -> None:
    """The alert API's real answer with a next page announced (as with more than the 200 asked for)."""
    answer = route.fetch()
    body = answer.json()
    body["next_cursor"] = "more-after-this-page"
    route.fulfill(response=answer, json=body)


def test_a_capped_alert_count_says_at_least(map_central: CentralService, map_world: MapWorld, browser: Browser) -> None:
    open_alerts = httpx.get(
        f"{map_central.url}/api/v1/alerts", params={"status": "open"}, headers=map_world.bearer("op.tinh"), timeout=10
    ).json()["items"]
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        page.route(re.compile(r"/api/v1/alerts\?status=open&"), _with_more_pages)
        sign_in(page, map_central.url, "/", "op.tinh", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#alerts-open")).to_have_text(f"{len(open_alerts)}+")
        expect(page.locator("#alerts-capped")).to_be_visible()
        for chip in page.locator("#alerts-severity .chip").all():
            expect(chip).to_have_text(re.compile(r": \d+\+$"))
        assert_accessible(page, "overview, capped alert count")
        save_screenshot(page, "overview-capped-alerts")
        assert not problems, problems
    finally:
        context.close()
