"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (installed by devstack/setup_system.sh)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.browser import CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test module (the page tests each start their own central service)."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install chromium (devstack/setup_system.sh installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
