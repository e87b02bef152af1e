"""The agent health page in a real browser (Debian's Chromium driven by Playwright) against a real
``central-ingest serve`` on TimescaleDB: the province operator reads every agent with its cameras and sensors
(states in colour + text, spool backlog, stale marks), sorts by a column with the keyboard (focus stays on the
column's button), and a refresh leaves focus, rows and the summary live region alone; a Phú Hội technician sees
only its agent; a PMU user is refused. Every state passes axe-core and leaves a screenshot.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from devstack.apps import CentralService
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page
from tests.integration.test_map_api import AGENT_1, AGENT_2, PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
# The tests ask for ``map_central`` before ``browser``: the world is built with asyncio.run, which must happen before
# Playwright's loop runs in this thread.


WATCH = """(agent) => {
    const table = document.getElementById("health-table");
    window.watched = {
        refreshes: 0, summary: 0,
        button: table.querySelector('button[data-sort="state"]'),
        row: table.querySelector(`tr.agent-row[data-agent="${agent}"]`),
    };
    const count = (id, field) => new MutationObserver((records) => { window.watched[field] += records.length; })
        .observe(document.getElementById(id), {childList: true, characterData: true, subtree: true});
    count("health-summary", "summary");
    count("health-updated", "refreshes");
}"""
SAME_NODES = """(agent) => {
    const table = document.getElementById("health-table");
    return window.watched.button === table.querySelector('button[data-sort="state"]')
        && window.watched.row === table.querySelector(`tr.agent-row[data-agent="${agent}"]`);
}"""


def test_health_page(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/health", "op.tinh", PASSWORD)
        expect(page.locator("tr.agent-row")).to_have_count(2)
        expect(page.locator("tr.source-row")).to_have_count(7)
        agent = page.locator(f'tr.agent-row[data-agent="{AGENT_1}"]')
        expect(agent).to_contain_text("Hoạt động")
        expect(agent).to_contain_text("17 sự kiện / events; bỏ / dropped 3")
        expect(page.locator(f'tr.source-row[data-source="{AGENT_1}/cam-b"]')).to_contain_text("Gián đoạn")
        expect(page.locator(f'tr.source-row[data-source="{AGENT_2}/cam-c"]')).to_contain_text("Mất kết nối")
        expect(page.locator(f'tr.source-row[data-source="{AGENT_1}/cam-unregistered"]')).to_contain_text("chưa đăng ký")
        expect(page.locator(f'tr.source-row[data-source="{AGENT_2}/cam-c"] .stale-mark').first).to_be_visible()
        assert_accessible(page, "health, whole province")
        save_screenshot(page, "health-province")

        # Sort by state from the keyboard: the worst source of each agent first when descending.
        page.locator('button[data-sort="state"]').focus()
        page.keyboard.press("Enter")
        expect(page.locator('th:has(button[data-sort="state"])')).to_have_attribute("aria-sort", "ascending")
        page.keyboard.press("Enter")
        expect(page.locator('th:has(button[data-sort="state"])')).to_have_attribute("aria-sort", "descending")
        first_sources = page.eval_on_selector_all(
            f'tr.agent-row[data-agent="{AGENT_2}"] ~ tr.source-row', "rows => rows.map(r => r.dataset.source)"
        )
        assert first_sources == [f"{AGENT_2}/cam-c", f"{AGENT_2}/cam-d"]  # down before unknown
        expect(page.locator("th[aria-sort]")).to_have_count(1)
        save_screenshot(page, "health-sorted-by-state")

        # A refresh (the 30 s one, started here by the button's click() so focus stays) keeps the focused header
        # button, changes rows in place and does not write the summary live region again when it says the same.
        page.evaluate(WATCH, AGENT_1)
        page.evaluate("() => document.getElementById('health-refresh').click()")
        page.wait_for_function("() => window.watched.refreshes > 0")
        expect(page.locator('button[data-sort="state"]')).to_be_focused()
        assert page.evaluate(SAME_NODES, AGENT_1), "the header button or the agent's row was rebuilt"
        assert page.evaluate("() => window.watched.summary") == 0
        expect(page.locator('th:has(button[data-sort="state"])')).to_have_attribute("aria-sort", "descending")
        assert page.eval_on_selector_all(
            f'tr.agent-row[data-agent="{AGENT_2}"] ~ tr.source-row', "rows => rows.map(r => r.dataset.source)"
        ) == [f"{AGENT_2}/cam-c", f"{AGENT_2}/cam-d"]
        page.keyboard.press("Enter")  # still the state button: back to ascending
        expect(page.locator('th:has(button[data-sort="state"])')).to_have_attribute("aria-sort", "ascending")
        assert not problems, problems
    finally:
        context.close()


def test_scoped_and_refused_users(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/health", "kt.phuhoi", PASSWORD)
        expect(page.locator("tr.agent-row")).to_have_count(1)
        expect(page.locator("tr.source-row")).to_have_count(3)
        save_screenshot(page, "health-commune-technician")
    finally:
        context.close()
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/health", "pmu.lan", PASSWORD)
        expect(page.locator("#health-error")).to_contain_text("không có quyền")
        assert_accessible(page, "health, refused")
    finally:
        context.close()
