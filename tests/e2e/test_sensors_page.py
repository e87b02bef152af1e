"""The sensors page in a real browser (Debian's Chromium driven by Playwright) against a real ``central-ingest
serve`` on TimescaleDB with real rules. Readings of a water-level station (with its own báo động 1/2/3), an
air-quality station and a forest-fire station go in through the agents' ingest API. An operator opens a
station from a link (``?station=agent/source``), reads the series with the levels drawn as labelled lines, the
latest value and the level it is at (coloured by the level's severity, as on the map), switches station from
the keyboard, and reads the table view; a slow answer for a station left behind never replaces the one picked
after it, and a failed load leaves no charts under the new heading; a station outside the user's area is not
offered; the page refreshes itself every minute in place. Every state passes axe-core and leaves a screenshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from devstack.apps import CentralService, start_central
from event_contract import Event, SensorReadingEvent
from tests.api_sessions import API_PASSWORD, open_users
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = "hue-sensors-1"
PASSWORD = API_PASSWORD
OPERATOR = "operator.thu"
COMMUNE_TECHNICIAN = "technician.phuhoi"
PLACES = {
    "tram-song-huong": ("Trạm thủy văn sông Hương", "Phú Hội"),
    "tram-khong-khi": ("Quan trắc không khí Phú Hội", "Phú Hội"),
    "tram-rung": ("Trạm cháy rừng Bạch Mã", "Phú Lộc"),
}
RULES = """
rules:
  - id: muc-nuoc
    kind: sensor_threshold
    sensor_kind: water_level
    metric: water_level_m
    use_station_levels: true
    levels:
      - {name: bao_dong_1, value: 10, severity: notice}
      - {name: bao_dong_2, value: 11, severity: warning}
      - {name: bao_dong_3, value: 12, severity: critical}
  - id: chat-luong-khong-khi
    kind: sensor_threshold
    sensor_kind: environment
    metric: vn_aqi
    levels:
      - {name: kem, value: 101, severity: notice}
      - {name: xau, value: 151, severity: warning}
      - {name: rat_xau, value: 201, severity: critical}
"""
WATER = (3.2, 3.4, 3.7, 3.9, 4.1, 4.3)
AQI = (80.0, 95.0, 120.0, 140.0, 160.0, 158.0)


def readings(now: dt.datetime) -> list[Event]:
    """Six readings per station, ten minutes apart, the last one two minutes ago."""
    found: list[Event] = []
    for i, (water, aqi) in enumerate(zip(WATER, AQI, strict=True)):
        time = now - dt.timedelta(minutes=2 + 10 * (len(WATER) - 1 - i))
        found += [
            SensorReadingEvent(
                agent_id=AGENT, source_id="tram-song-huong", time=time, sensor_kind="water_level",
                values={"water_level_m": water}, alert_levels_m=(3.0, 4.0, 5.0),
            ),
            SensorReadingEvent(
                agent_id=AGENT, source_id="tram-khong-khi", time=time, sensor_kind="environment",
                values={"vn_aqi": aqi, "pm2_5": aqi / 3},
            ),
            SensorReadingEvent(
                agent_id=AGENT, source_id="tram-rung", time=time, sensor_kind="forest_fire",
                values={"temperature_c": 30.0 + i, "smoke": 0.0},
            ),
        ]  # fmt: skip
    return found


@dataclass(frozen=True)
class World:
    dsn: str
    agent_token: str
    rules: Path


async def _create_users(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await open_users(conn, {OPERATOR: ("operator", None), COMMUNE_TECHNICIAN: ("technician", ["Huế/Phú Hội"])})


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    apply_migrations(pg_dsn)
    rules = tmp_path_factory.mktemp("sensor_rules") / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    sites = [
        SiteConfig(id=i, agent_id=AGENT, kind="sensor", name=name, lat=16.46, lon=107.59, province="Huế", commune=c)
        for i, (name, c) in PLACES.items()
    ]
    with psycopg.connect(pg_dsn) as conn:
        token = add_agent(conn, AGENT)
        import_sites(conn, sites)
    asyncio.run(_create_users(pg_dsn))
    return World(pg_dsn, token, rules)


@pytest.fixture(scope="module")
def central(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralService]:
    log = tmp_path_factory.mktemp("sensors_page_central") / "central.log"
    service = start_central(world.dsn, log, env={"IOC_CENTRAL_ALERT_RULES_PATH": str(world.rules)})
    try:
        service.post_events(world.agent_token, AGENT, readings(dt.datetime.now(dt.UTC)))
        yield service
    finally:
        service.process.stop()


def loaded(page: Page) -> None:
    page.wait_for_function("() => document.body.dataset.loaded === 'true'")


def test_operator_reads_levels_and_latest_values(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, central.url, f"/sensors?station={AGENT}/tram-song-huong", OPERATOR, PASSWORD)
    loaded(page)
    expect(page.locator("#station")).to_have_value(f"{AGENT}/tram-song-huong")
    expect(page.locator("#station-info")).to_contain_text("Trạm thủy văn sông Hương")

    # Water level: the station's own báo động 1/2/3 (3, 4, 5 m) as labelled lines; 4,3 m is at báo động 2.
    water = page.locator(".metric[data-metric='water_level_m']")
    lines = water.locator("svg line.level-line")
    expect(lines).to_have_count(3)
    assert lines.evaluate_all("ls => ls.map(l => [l.dataset.level, Number(l.dataset.value)])") == [
        ["bao_dong_1", 3.0], ["bao_dong_2", 4.0], ["bao_dong_3", 5.0]
    ]  # fmt: skip
    expect(water.locator("svg text.level-label")).to_have_text(
        ["báo động 1 (3,00 m)", "báo động 2 (4,00 m)", "báo động 3 (5,00 m)"]
    )
    expect(water.locator(".last-value")).to_have_text("4,30 m")
    expect(water.locator(".level-chip")).to_have_attribute("data-level", "bao_dong_2")
    expect(water.locator(".level-chip")).to_contain_text("báo động 2")
    # Coloured by the level's severity as the map does: báo động 2 is a "warning" level, so red, not amber.
    expect(water.locator(".level-chip")).to_have_attribute("data-severity", "warning")
    expect(water.locator(".level-chip")).to_have_class("chip bad level-chip")
    assert lines.evaluate_all("ls => ls.map(l => l.getAttribute('class'))") == [
        "level-line sev-warn", "level-line sev-bad", "level-line sev-bad sev-critical"
    ]  # fmt: skip
    expect(water.locator("svg polyline.series-line")).to_have_count(1)
    water.locator("button[aria-controls='table-water_level_m']").click()
    expect(water.locator("table tbody tr")).not_to_have_count(0)
    expect(water.locator("table tbody tr td.last").last).to_have_text("4,30")
    assert_accessible(page, "sensors, water level")
    save_screenshot(page, "sensors_water_level")

    # A slow answer for the station left behind: the water station's load for 6 h is held back while the air
    # station is picked; when it finally comes, the page still shows the air station only.
    held: list[Route] = []
    page.route("**/api/v1/**", lambda route: held.append(route) if "tram-song-huong" in route.request.url
               else route.continue_())  # fmt: skip
    page.select_option("#range", "6h")
    while not held:
        page.wait_for_timeout(20)

    # Air quality, chosen from the keyboard: VN_AQI 158 is "xấu" (151); PM2.5 has no rule, so no lines.
    page.focus("#station")
    page.select_option("#station", f"{AGENT}/tram-khong-khi")
    loaded(page)
    for route in held:
        with contextlib.suppress(PlaywrightError):  # the page gave up that request when the newer load started
            route.continue_()
    page.wait_for_timeout(1000)  # time for the late answer (and the readings it asks for) to be drawn, were it drawn
    page.unroute("**/api/v1/**")
    expect(page.locator(".metric[data-metric='water_level_m']")).to_have_count(0)
    expect(page.locator("#station-info")).to_contain_text("Quan trắc không khí Phú Hội")
    aqi = page.locator(".metric[data-metric='vn_aqi']")
    expect(aqi.locator("svg line.level-line")).to_have_count(3)
    expect(aqi.locator(".level-chip")).to_have_attribute("data-level", "xau")
    expect(aqi.locator(".last-value")).to_have_text("158")
    expect(page.locator(".metric[data-metric='pm2_5'] svg line.level-line")).to_have_count(0)
    expect(page.locator(".metric[data-metric='pm2_5'] .level-chip")).to_contain_text("Không có ngưỡng")
    assert page.url.endswith(f"station={AGENT}%2Ftram-khong-khi")
    assert_accessible(page, "sensors, air quality")
    save_screenshot(page, "sensors_air_quality")

    # A load that fails leaves no charts of the station before under the new station's heading.
    page.route("**/api/v1/sensors/readings?*", lambda route: route.fulfill(status=500, json={"detail": "boom"}))
    page.select_option("#station", f"{AGENT}/tram-rung")
    loaded(page)
    expect(page.locator("#page-error")).to_be_visible()
    expect(page.locator("#station-info")).to_contain_text("Trạm cháy rừng Bạch Mã")
    expect(page.locator("#metrics > *")).to_have_count(0)
    page.unroute("**/api/v1/sensors/readings?*")

    # Forest fire over 7 days: two metrics, no levels configured.
    page.select_option("#range", "7d")
    loaded(page)
    expect(page.locator(".metric")).to_have_count(2)
    expect(page.locator(".metric[data-metric='temperature_c'] .last-value")).to_have_text("35 °C")
    save_screenshot(page, "sensors_forest_fire")
    assert problems == []
    context.close()


def test_a_commune_user_sees_only_its_stations(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, central.url, f"/sensors?station={AGENT}/tram-rung", COMMUNE_TECHNICIAN, PASSWORD)
    loaded(page)
    values = page.locator("#station option").evaluate_all("options => options.map(o => o.value)")
    assert values == [f"{AGENT}/tram-khong-khi", f"{AGENT}/tram-song-huong"]
    expect(page.locator("#station-missing")).to_be_visible()
    expect(page.locator(".metric")).not_to_have_count(0)  # the first station of the area is shown instead
    assert_accessible(page, "sensors, commune user")
    save_screenshot(page, "sensors_commune_user")
    page.select_option("#station", f"{AGENT}/tram-song-huong")  # once the user picks one, the note goes
    loaded(page)
    expect(page.locator("#station-missing")).to_be_hidden()
    assert problems == []
    context.close()


def test_the_page_refreshes_itself_every_minute(central: CentralService, world: World, browser: Browser) -> None:
    """Runs last: it adds a reading (5,2 m, past báo động 3) that the tests above do not expect."""
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    page.clock.install()
    sign_in(page, central.url, f"/sensors?station={AGENT}/tram-song-huong", OPERATOR, PASSWORD)
    loaded(page)
    water = page.locator(".metric[data-metric='water_level_m']")
    expect(water.locator(".last-value")).to_have_text("4,30 m")
    expect(page.locator("#updated-at")).to_contain_text("Cập nhật lúc")
    first_update = page.locator("#updated-at").inner_text()
    toggle = water.locator("button[aria-controls='table-water_level_m']")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(water.locator("table")).to_be_visible()

    now = dt.datetime.now(dt.UTC)
    central.post_events(world.agent_token, AGENT, [SensorReadingEvent(
        agent_id=AGENT, source_id="tram-song-huong", time=now, sensor_kind="water_level",
        values={"water_level_m": 5.2}, alert_levels_m=(3.0, 4.0, 5.0),
    )])  # fmt: skip
    page.clock.fast_forward(61_000)
    expect(water.locator(".last-value")).to_have_text("5,20 m")
    loaded(page)
    expect(water.locator(".level-chip")).to_have_attribute("data-level", "bao_dong_3")
    expect(water.locator(".level-chip")).to_have_class("chip bad level-chip")
    expect(page.locator("#updated-at")).not_to_have_text(first_update)
    # Updated in place: the table stays open, the keyboard focus stays on its button, no duplicate panel.
    expect(water.locator("table")).to_be_visible()
    expect(water.locator("table tbody tr td.last").last).to_have_text("5,20")
    assert page.evaluate("() => document.activeElement.getAttribute('aria-controls')") == "table-water_level_m"
    expect(page.locator(".metric[data-metric='water_level_m']")).to_have_count(1)
    assert_accessible(page, "sensors, refreshed")
    assert problems == []
    context.close()
