"""Browser helpers of the page tests (the ``browser`` fixture is in ``conftest.py``)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 15_000
"""How long a page test waits for an element (a loaded 2-core box needs seconds, not milliseconds)."""


def watched_page(browser: Browser, problems: list[str]) -> tuple[BrowserContext, Page]:
    """A Vietnamese-locale page whose script errors and CSP refusals land in ``problems`` (the tests assert it
    stays empty); failed resource loads are left out: 401 before sign-in and refused images are expected."""
    context = browser.new_context(
        locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    return context, page
