"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (installed by devstack/setup_system.sh)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from devstack.apps import CentralService, start_central
from tests.e2e.browser import CHROMIUM
from tests.integration.test_map_api import MapWorld, build_map_world


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


@pytest.fixture(scope="module")
def map_world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> MapWorld:
    """The map API tests' world (two agents, six sites in every state, scoped users), for one page test module.

    Built with asyncio.run: a test asks for ``map_central`` (or this) before ``browser``, whose Playwright loop
    would otherwise be running in this thread."""
    return build_map_world(pg_dsn, tmp_path_factory.mktemp("map_world"), boundaries=False)


@pytest.fixture(scope="module")
def map_central(map_world: MapWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralService]:
    """``central-ingest serve`` on ``map_world``'s database."""
    service = start_central(map_world.settings.database_url, tmp_path_factory.mktemp("map_central") / "central.log")
    try:
        yield service
    finally:
        service.process.stop()
