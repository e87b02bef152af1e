"""The police search page in a real browser (Debian's Chromium driven by Playwright) against a real
``central-ingest serve`` on TimescaleDB: sign in with a TOTP code, find the search button disabled until a
reason is given, search, see the timeline and map marks and the table, open an evidence image, and find the
search and each image view in the audit log. Screenshots go to the test's tmp dir, and also to
``benchmarks/results/screenshots/`` when that directory exists.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect
from psycopg.rows import dict_row

from central_ingest.access.totp import totp
from devstack.apps import CentralService, start_central
from tests.e2e.browser import watched_page
from tests.integration.test_police_search_support import (
    PASSWORD,
    TARGET,
    UNREGISTERED_CAMERA,
    PoliceWorld,
    build_world,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SHOTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "screenshots"


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> PoliceWorld:
    return build_world(pg_dsn, tmp_path_factory.mktemp("police_page"))


@pytest.fixture(scope="module")
def central(world: PoliceWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralService]:
    log = tmp_path_factory.mktemp("police_page_central") / "central.log"
    keys = str(world.settings.plate_keys_file)
    service = start_central(world.settings.database_url, log, env={"IOC_PLATE_KEYS_FILE": keys})
    try:
        yield service
    finally:
        service.process.stop()


def audit_of(dsn: str, action: str) -> list[dict[str, Any]]:
    """The audit entries of one action, oldest first (a plain connection: Playwright's loop owns this thread)."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT seq, actor, reason, result_count, target FROM audit_log WHERE action = %s ORDER BY seq", (action,)
        ).fetchall()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"police_{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SHOTS_DIR.is_dir():
        shutil.copyfile(path, SHOTS_DIR / path.name)


def test_officer_searches_and_opens_evidence(
    world: PoliceWorld, central: CentralService, browser: Browser, tmp_path: Path, pg_dsn: str
) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    page.goto(f"{central.url}/police")
    expect(page.locator("#login-section")).to_be_visible()
    expect(page.locator("#search-section")).to_be_hidden()
    shot(page, tmp_path, "login")

    # Sign in with password and TOTP.
    page.fill("#login-username", "officer.an")
    page.fill("#login-password", PASSWORD)
    page.fill("#login-totp", totp(world.totp_secrets["officer.an"], time.time()))
    page.click("#login-button")
    expect(page.locator("#search-section")).to_be_visible()
    expect(page.locator("#who-name")).to_contain_text("officer.an")
    expect(page.locator("#cameras option")).to_have_count(3)  # the cameras, not the sensor

    # The search button stays disabled until plate, case number and note are given.
    button = page.locator("#search-button")
    page.fill("#plate", TARGET)
    expect(page.locator("#plate-mode")).to_contain_text("Tìm chính xác")
    expect(button).to_be_disabled()
    page.fill("#case-number", "123/2025/QĐ-CA")
    expect(button).to_be_disabled()
    page.fill("#note", "ngắn")
    expect(button).to_be_disabled()
    page.fill("#note", "Truy tìm xe gây tai nạn bỏ chạy tại cầu")
    expect(button).to_be_enabled()
    shot(page, tmp_path, "form")

    searches_before = len(audit_of(pg_dsn, "plate_search"))
    button.click()
    expect(page.locator("#results-section")).to_be_visible()
    expect(page.locator("#results-summary")).to_contain_text("4 lượt qua")
    # Timeline: one mark per pass; map: the registered cameras and a numbered mark per placed pass.
    expect(page.locator("#timeline-svg circle.pass-mark")).to_have_count(4)
    expect(page.locator("#map-svg circle.camera-dot")).to_have_count(3)
    expect(page.locator("#map-svg g.step")).to_have_count(3)
    expect(page.locator("#map-svg polyline.path-line")).to_have_count(1)
    expect(page.locator("#map-unknown")).to_contain_text(UNREGISTERED_CAMERA)
    expect(page.locator("#passes tbody tr")).to_have_count(4)
    steps = page.locator("#map-svg g.step text.step-label").all_text_contents()
    assert steps == ["1", "2", "3"]

    # Thumbnails load through the evidence route; the never-uploaded image says so.
    page.locator("#passes").scroll_into_view_if_needed()
    expect(page.locator("img.thumb[data-loaded='1']")).to_have_count(3)
    expect(page.locator("#passes tbody")).to_contain_text("Không xem được ảnh (404)")
    shot(page, tmp_path, "results")

    page.locator("img.thumb[data-loaded='1']").first.click()
    expect(page.locator("#viewer")).to_be_visible()
    natural_width = page.locator("#viewer-image").evaluate("img => img.naturalWidth")
    assert natural_width == 200
    shot(page, tmp_path, "evidence")
    page.click("#viewer-close")

    searches = audit_of(pg_dsn, "plate_search")
    assert len(searches) == searches_before + 1
    assert (searches[-1]["actor"], searches[-1]["result_count"]) == ("officer.an", 4)
    assert searches[-1]["reason"] == "123/2025/QĐ-CA: Truy tìm xe gây tai nạn bỏ chạy tại cầu"
    views = [v for v in audit_of(pg_dsn, "evidence_view") if v["target"]["search_id"] == searches[-1]["seq"]]
    assert len(views) == 3  # each image fetched once; the enlarged view reuses it

    # An empty answer is stated plainly.
    page.fill("#plate", "99Z-999.99")
    page.click("#search-button")
    expect(page.locator("#results-empty")).to_be_visible()
    expect(page.locator("#results-body")).to_be_hidden()
    shot(page, tmp_path, "empty")
    assert problems == []
    context.close()
