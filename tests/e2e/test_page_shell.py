"""The page shell (``IOC.shell`` of common/ioc.js) in Debian's Chromium against a real ``central-ingest serve``,
on the overview page (every operator page uses the same shell): a server that cannot be reached or answers 503
gets a bilingual "could not open" panel with a retry button, never a blank page or a sign-in form that cannot
work; sign-out reloads even when the server is unreachable; a session that ends while the page is open (an API
call answers 401) brings back the sign-in form with why, and signing in again restarts the page.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Route, expect

from devstack.apps import CentralService
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page
from tests.integration.test_map_api import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ME = re.compile(r"/api/v1/auth/me$")


def _unreachable(route: Route) -> None:
    route.abort("connectionrefused")


def _unavailable(route: Route) -> None:
    route.fulfill(status=503, json={"detail": "database starting"})


def test_an_unreachable_server_says_so_with_a_retry(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        page.route(ME, _unreachable)
        page.goto(map_central.url + "/")
        panel = page.locator("#ioc-unavailable")
        expect(panel).to_be_visible()
        expect(page.locator("#ioc-unavailable-message")).to_contain_text("Không kết nối được máy chủ")
        expect(page.locator("#ioc-unavailable-message")).to_contain_text("Cannot reach the server")
        expect(page.locator("#ioc-login-form")).to_have_count(0)
        expect(page.locator("#app")).to_be_hidden()
        expect(page.locator("#ioc-header h1")).to_contain_text("Tổng quan")
        expect(page.locator("#ioc-retry")).to_be_focused()
        assert_accessible(page, "shell, server unreachable")
        save_screenshot(page, "shell-unreachable")
        # Still unreachable: the same panel answers again (the time of the try changes), focus stays on retry.
        first = page.locator("#ioc-unavailable-message").inner_text()
        page.wait_for_timeout(1100)
        page.keyboard.press("Enter")
        expect(page.locator("#ioc-unavailable-message")).not_to_have_text(first)
        expect(page.locator("#ioc-retry")).to_be_focused()
        # The server is back: retry brings the sign-in form, and signing in opens the page.
        page.unroute(ME)
        page.keyboard.press("Enter")
        expect(page.locator("#ioc-login-form")).to_be_visible()
        expect(panel).to_have_count(0)
        page.fill("#ioc-login-username", "op.tinh")
        page.fill("#ioc-login-password", PASSWORD)
        page.click("#ioc-login-button")
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#app")).to_be_visible()
        assert not problems, problems
    finally:
        context.close()


def test_a_503_is_not_a_sign_in_form(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        page.route(ME, _unavailable)
        page.goto(map_central.url + "/")
        expect(page.locator("#ioc-unavailable-message")).to_contain_text("Máy chủ tạm thời không sẵn sàng")
        expect(page.locator("#ioc-unavailable-message")).to_contain_text("database starting")
        expect(page.locator("#ioc-login-form")).to_have_count(0)
        expect(page.locator("#app")).to_be_hidden()
        page.unroute(ME)
        page.click("#ioc-retry")
        expect(page.locator("#ioc-login-form")).to_be_visible()
        assert not problems, problems
    finally:
        context.close()


def test_sign_out_reloads_even_when_the_server_is_unreachable(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/", "op.tinh", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        page.route(re.compile(r"/api/v1/auth/(logout|me)$"), _unreachable)
        with page.expect_navigation():
            page.click("#ioc-sign-out")  # not a dead button: the page reloads and says what it knows
        expect(page.locator("#ioc-unavailable-message")).to_contain_text("Không kết nối được máy chủ")
        page.unroute(re.compile(r"/api/v1/auth/(logout|me)$"))
        page.click("#ioc-retry")
        page.wait_for_selector("body[data-ready='1']")  # the sign-out never reached the server: still signed in
        with page.expect_navigation():
            page.click("#ioc-sign-out")
        expect(page.locator("#ioc-login-form")).to_be_visible()
        assert not problems, problems
    finally:
        context.close()


def test_an_ended_session_asks_to_sign_in_again(map_central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/", "op.tinh", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        context.clear_cookies()  # the session is gone (expired, revoked) while the page stays open
        status = page.evaluate("() => IOC.api('/api/v1/map/sites').then(() => 200, (e) => e.status)")
        assert status == 401
        notice = page.locator("#ioc-login-notice")
        expect(notice).to_contain_text("Phiên đăng nhập đã hết hạn")
        expect(page.locator("#app")).to_be_hidden()
        expect(page.locator("nav")).to_have_count(0)
        expect(page.locator("#ioc-sign-out")).to_have_count(0)
        expect(page.locator("#ioc-login-username")).to_be_focused()
        # More refusals (other calls of the page, live tiles closed with 4401) show no second form.
        page.evaluate("() => Promise.all([IOC.api('/api/v1/map/sites').catch(() => null), IOC.unauthorized()])")
        expect(page.locator("#ioc-login")).to_have_count(1)
        assert_accessible(page, "shell, session ended")
        save_screenshot(page, "shell-session-ended")
        page.fill("#ioc-login-username", "op.tinh")
        page.fill("#ioc-login-password", PASSWORD)
        with page.expect_navigation():
            page.click("#ioc-login-button")  # signed in again: the page starts over
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#ioc-login")).to_have_count(0)
        expect(page.locator("#ioc-who-name")).to_have_text("op.tinh")
        assert not problems, problems
    finally:
        context.close()


def test_a_refusal_with_a_live_session_changes_nothing(map_central: CentralService, browser: Browser) -> None:
    """IOC.unauthorized() asks the server first: while the session is alive it shows no sign-in form."""
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    try:
        sign_in(page, map_central.url, "/", "op.tinh", PASSWORD)
        page.wait_for_selector("body[data-ready='1']")
        assert page.evaluate("() => IOC.unauthorized()") is False
        expect(page.locator("#ioc-login")).to_have_count(0)
        expect(page.locator("#app")).to_be_visible()
        assert not problems, problems
    finally:
        context.close()
