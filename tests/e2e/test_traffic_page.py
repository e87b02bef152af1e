"""The traffic dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
``central-ingest serve`` on TimescaleDB with a real rules file. Counts and violations go in through the agents'
ingest API. An operator picks cameras and a junction and reads the class and direction charts and their table,
the peak hours, and the junction's violations against the rule's average and +50% line (the day above it
marked; the section's heading and notes say the rule's window, line and the periods covered), downloads the
counts CSV and parses it (a refused export is said on the page); a slow answer of an earlier choice never
replaces a newer one; a commune user's picker holds only its area's cameras. Every state passes axe-core and
leaves a screenshot in build/screenshots/.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
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
from event_contract import CountBucket, CountIntervalEvent, Event, IntervalQuality, ViolationEvent
from tests.api_sessions import API_PASSWORD, open_users
from tests.e2e.browser import assert_accessible, save_screenshot, sign_in, watched_page

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

AGENT = "hue-traffic-1"
PASSWORD = API_PASSWORD
OPERATOR = "operator.lan"
COMMUNE_OPERATOR = "operator.kimlong"
VN = dt.timezone(dt.timedelta(hours=7))
PLACES = {
    "cam-1": ("Ngã tư Lê Lợi", "Phú Hội"),
    "cam-2": ("Cầu Tràng Tiền", "Phú Hội"),
    "cam-3": ("Kim Long", "Kim Long"),
}
SITES = tuple(
    SiteConfig(id=i, agent_id=AGENT, name=name, lat=16.46, lon=107.59, province="Huế", commune=commune)
    for i, (name, commune) in PLACES.items()
)
RULES = f"""
junctions:
  - id: nga-tu-le-loi
    name_vi: Ngã tư Lê Lợi
    name_en: Le Loi junction
    cameras: [{{agent_id: {AGENT}, source_id: cam-1}}, {{agent_id: {AGENT}, source_id: cam-2}}]
rules:
  - {{id: vi-pham-tang, kind: violation_increase, window_periods: 7, min_baseline_periods: 3, min_count: 2,
      threshold_pct: 50}}
"""
COUNTS: dict[tuple[str, int, int], tuple[tuple[str, str, int], ...]] = {
    ("cam-1", 1, 7): (("car", "in", 12), ("motorbike", "out", 30)),
    ("cam-1", 1, 17): (("motorbike", "in", 40), ("truck", "out", 3)),
    ("cam-1", 2, 7): (("car", "in", 8),),
    ("cam-2", 1, 8): (("bus", "in", 5),),
}
"""(camera, days before today, local hour) -> crossings (class, direction, count)."""
VIOLATIONS = {1: 9, **{day: 3 for day in range(2, 16)}}
"""Violations at the junction per day before today: yesterday 9 against an average of 3 (line 4.5)."""


def day_start(days_ago: int) -> dt.datetime:
    today = dt.datetime.now(VN).date()
    return dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(0), VN).astimezone(dt.UTC)


def quality(length: float) -> IntervalQuality:
    return IntervalQuality(
        expected_s=length, analysed_s=length, frames_analysed=int(length), frames_dropped=0, downtime_s=0.0,
        detector_backend="motion", coverage=1.0,
    )  # fmt: skip


def events() -> list[Event]:
    """Hourly intervals on the last two days (the crossings above), daily ones before (coverage), violations."""
    found: list[Event] = []
    for camera in ("cam-1", "cam-2"):
        for days_ago in (1, 2):
            for hour in range(24):
                counts = COUNTS.get((camera, days_ago, hour), ())
                found.append(
                    CountIntervalEvent(
                        agent_id=AGENT, source_id=camera, time=day_start(days_ago) + dt.timedelta(hours=hour),
                        line_id="l1", interval_s=3600, quality=quality(3600.0),
                        counts=tuple(CountBucket(vehicle_class=c, direction=d, count=n) for c, d, n in counts),
                    )
                )  # fmt: skip
        for days_ago in range(3, 16):
            found.append(
                CountIntervalEvent(
                    agent_id=AGENT, source_id=camera, time=day_start(days_ago), line_id="l1", interval_s=86_400,
                    quality=quality(86_400.0),
                )
            )  # fmt: skip
    track = 0
    for days_ago, count in VIOLATIONS.items():
        for i in range(count):
            track += 1
            found.append(
                ViolationEvent(
                    agent_id=AGENT, source_id=f"cam-{1 + i % 2}", track_id=track, violation_type="red_light",
                    category="violation", time=day_start(days_ago) + dt.timedelta(hours=9, minutes=i),
                )
            )  # fmt: skip
    return found


@dataclass(frozen=True)
class World:
    dsn: str
    agent_token: str
    rules: Path


async def _create_users(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await open_users(conn, {OPERATOR: ("operator", None), COMMUNE_OPERATOR: ("operator", ["Huế/Kim Long"])})


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    apply_migrations(pg_dsn)
    rules = tmp_path_factory.mktemp("traffic_rules") / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    with psycopg.connect(pg_dsn) as conn:
        token = add_agent(conn, AGENT)
        import_sites(conn, SITES)
    asyncio.run(_create_users(pg_dsn))
    return World(pg_dsn, token, rules)


@pytest.fixture(scope="module")
def central(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralService]:
    log = tmp_path_factory.mktemp("traffic_page_central") / "central.log"
    service = start_central(world.dsn, log, env={"IOC_CENTRAL_ALERT_RULES_PATH": str(world.rules)})
    try:
        service.post_events(world.agent_token, AGENT, events())
        yield service
    finally:
        service.process.stop()


def loaded(page: Page) -> None:
    """The page finished its last refresh (charts drawn, the junction charts a frame later)."""
    page.wait_for_function("() => document.body.dataset.loaded === 'true'")
    page.wait_for_function(
        "() => document.querySelectorAll('#junctions .junction').length === "
        "document.querySelectorAll('#junctions svg.junction-svg').length"
    )


def column(page: Page, table: str, css: str) -> list[str]:
    return [text.strip() for text in page.locator(f"{table} tbody td{css}").all_inner_texts()]


def number(text: str) -> float:
    """A vi-VN number ("1.234,5") as a float."""
    return float(text.replace(".", "").replace(",", "."))


def test_operator_reads_counts_peaks_and_violations(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, central.url, "/traffic", OPERATOR, PASSWORD)
    loaded(page)

    # All cameras, last 7 days in 3 h buckets: six (bucket, class) stacks; the table adds up to every crossing.
    expect(page.locator("#class-svg rect.bar")).to_have_count(6)
    expect(page.locator("#class-legend li")).to_have_count(4)  # motorbike, car, bus, truck
    page.click("#counts-table-toggle")
    expect(page.locator("#counts-table")).to_be_visible()
    assert sum(number(t) for t in column(page, "#counts-table", ".total")) == 98
    expect(page.locator("#direction-svg polyline.dir-line")).to_have_count(2)
    # Peak hours: 07:00 carries 12 + 30 + 8 crossings.
    expect(page.locator("#peak-svg rect.hour-bar")).to_have_count(24)
    expect(page.locator("#peak-svg rect.hour-bar.busiest")).to_have_attribute("data-hour", "7")
    expect(page.locator("#peak-svg rect.hour-bar[data-hour='7']")).to_have_attribute("data-count", "50")
    expect(page.locator("#peak-summary")).to_contain_text("07:00–08:00")

    # The junction: 30 days, yesterday above the +50% line, the numbers those of the rule (the API's).
    junction = page.locator("#junctions .junction[data-junction='nga-tu-le-loi']")
    bars = junction.locator("rect.violation-bar")
    expect(bars).to_have_count(30)
    api = page.request.get(f"{central.url}/api/v1/dashboards/traffic/junctions?periods=30")
    assert api.ok, api.text()
    periods = api.json()["items"][0]["periods"]
    above = [p for p in periods if p["above_threshold"]]
    assert [p["count"] for p in above] == [9]
    assert (above[0]["baseline"], above[0]["threshold"]) == (3.0, 4.5)
    expect(junction.locator("rect.violation-bar.above")).to_have_count(1)
    expect(junction.locator("rect.violation-bar.above")).to_have_attribute("data-count", "9")
    expect(junction.locator("line.threshold-seg")).to_have_count(sum(p["threshold"] is not None for p in periods))
    expect(junction.locator("text.threshold-label")).to_have_text("+50%")
    # The heading and notes come from the rule (7 days, +50%) and say the section's own 30 days.
    expect(page.locator("#violations-title")).to_contain_text("so với trung bình 7 ngày trước")
    expect(page.locator("#violations-title")).to_contain_text("average of the previous 7 days")
    expect(page.locator("#violations-note")).to_contain_text("số vi phạm của một ngày")
    expect(page.locator("#violations-note")).to_contain_text("(trung bình + 50%)")
    expect(page.locator("#violations-note")).to_contain_text("(average + 50%)")
    expect(page.locator("#violations-scope")).to_contain_text(
        "30 ngày gần nhất của mỗi nút giao tính đến nay, với mọi camera của nút giao, không theo khoảng thời gian"
    )
    junction.locator("button.table-toggle").click()
    expect(junction.locator("table tbody tr")).to_have_count(30)
    expect(junction.locator("table tbody tr.above td.count")).to_have_text("9")
    expect(junction.locator("table tbody tr.above td.threshold")).to_have_text("4,5")
    assert_accessible(page, "traffic, all cameras")
    save_screenshot(page, "traffic_all_cameras")

    # A slow refresh of all cameras is overtaken by one camera's: its answers, released last, are not drawn.
    held: list[Route] = []
    holding = [True]
    page.route("**/api/v1/**", lambda route: held.append(route) if holding[0] else route.continue_())
    page.click("#apply")
    while len(held) < 4:  # counts by class and by direction, peak hours, junctions
        page.wait_for_timeout(20)
    holding[0] = False

    # One camera from the keyboard: its own counts, and its CSV downloaded through the export API.
    page.focus("#camera")
    page.select_option("#camera", f"camera:{AGENT}/cam-1")
    page.focus("#apply")
    page.keyboard.press("Enter")
    loaded(page)
    for route in held:
        with contextlib.suppress(PlaywrightError):  # the page gave up that request when the newer refresh started
            route.continue_()
    page.wait_for_timeout(1000)  # time for the late answers to be drawn, were they drawn
    page.unroute("**/api/v1/**")
    expect(page.locator("#class-svg rect.bar")).to_have_count(5)
    assert sum(number(t) for t in column(page, "#counts-table", ".total")) == 93
    expect(page.locator("#range-label")).to_contain_text("Ngã tư Lê Lợi (cam-1)")

    # A refused export is said on the page (no file saved), then the real one.
    page.route("**/api/v1/counts/export?*", lambda route: route.fulfill(status=403, json={"detail": "no"}))
    page.click("#export-csv")
    expect(page.locator("#export-status")).to_contain_text("Không tải được tệp CSV")
    expect(page.locator("#export-status")).to_contain_text("không có quyền")
    expect(page.locator("#export-status")).to_have_class("note error")
    page.unroute("**/api/v1/counts/export?*")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    expect(page.locator("#export-status")).to_contain_text(f"Đã tải tệp CSV: {download.suggested_filename}")
    expect(page.locator("#export-status")).to_have_class("note")
    assert download.suggested_filename.startswith("counts_")
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert {row["source_id"] for row in rows} == {"cam-1"}
    assert sum(int(row["count"]) for row in rows) == 93
    save_screenshot(page, "traffic_one_camera")

    # The whole junction: both cameras added up; the export joins their files under one header.
    page.select_option("#camera", "junction:nga-tu-le-loi")
    page.click("#apply")
    loaded(page)
    assert sum(number(t) for t in column(page, "#counts-table", ".total")) == 98
    with page.expect_download() as download_info:
        page.click("#export-csv")
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["source_id"] for row in rows} == {"cam-1", "cam-2"}
    assert sum(int(row["count"]) for row in rows) == 98
    assert text.count("agent_id") == 1

    # A custom range holding only the day before yesterday.
    page.select_option("#range", "custom")
    two_days_ago = day_start(2).astimezone(VN).date().isoformat()
    page.fill("#start-date", two_days_ago)
    page.fill("#end-date", two_days_ago)
    page.click("#apply")
    loaded(page)
    assert sum(number(t) for t in column(page, "#counts-table", ".total")) == 8
    expect(page.locator("#peak-svg rect.hour-bar.busiest")).to_have_attribute("data-hour", "7")
    # The junction's 30 days end with the range's last day (not the day after it), and the note says so.
    last_day = day_start(2).astimezone(VN).strftime("%d/%m/%Y")
    expect(page.locator("#violations-scope")).to_contain_text(f"tính đến hết ngày {last_day}")
    last_bar = junction.locator("rect.violation-bar").last.get_attribute("data-start")
    assert last_bar is not None
    assert dt.datetime.fromisoformat(last_bar) == day_start(2)
    assert_accessible(page, "traffic, custom range")
    save_screenshot(page, "traffic_custom_range")
    assert problems == []
    context.close()


def test_a_commune_user_sees_only_its_area(central: CentralService, browser: Browser) -> None:
    problems: list[str] = []
    context, page = watched_page(browser, problems)
    sign_in(page, central.url, "/traffic", COMMUNE_OPERATOR, PASSWORD)
    loaded(page)
    values = page.locator("#camera option").evaluate_all("options => options.map(o => o.value)")
    assert values == ["all", f"camera:{AGENT}/cam-3"]
    expect(page.locator("#junctions-empty")).to_be_visible()
    expect(page.locator("#class-svg rect.bar")).to_have_count(0)
    expect(page.locator("#counts-summary")).to_contain_text("Không có dữ liệu")
    assert_accessible(page, "traffic, commune user")
    save_screenshot(page, "traffic_commune_user")
    assert problems == []
    context.close()
