"""The construction-progress chain whole, with real processes: five generated weeks of a site in one H.264 file
(frames hours apart) -> ``edge-agent`` (keyframes-only decode, the SSD detector, quality gates, visual state of
each work package against reference images, smoothing, daily timelapse keyframe uploaded) ->
``central-ingest serve`` -> TimescaleDB, with the project's plan approved from a PMU's CSV through the API.

This is the demo's site (``devstack.construction_site``): the site stalls for a week, so by yesterday it is more
than 10 points behind its plan. Checks, against the database and the API: a daily figure per package and for
the project, each within 10 points of the generated truth and never falling more than the smoothing tolerance;
the timelapse keyframes uploaded and served to the PMU; "chậm tiến độ 10%" open for the project with its
Vietnamese message; a PMU confirmation that the project is on plan resolves it, is marked confirmed in the
progress view and is in the audit log.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import time
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import psycopg
import pytest
from psycopg.rows import dict_row

from devstack import construction_site
from devstack.apps import (
    CentralService,
    edge_config,
    provision_agent,
    run_central_cli,
    start_central,
    start_edge,
    write_edge_config,
    write_secret,
)
from devstack.construction_site import DemoSite
from devstack.site_scenes import true_percent, true_project
from devstack.traffic_site import CentralApi, ensure_police_user, read_password, write_password_file

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

AGENT_ID = "site-agent"
PMU = "pmu.e2e"
ZONE = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
RULES = """
rules:
  - id: progress-behind-10
    kind: progress_behind
    projects: all
    threshold_points: 10
"""
ESTIMATE_TOLERANCE = 10.0
"""The issue's bound: the estimate tracks the true % within 10 points."""


@dataclass(frozen=True)
class Chain:
    dsn: str
    site: DemoSite
    central: CentralService
    api: CentralApi
    token: str


@pytest.fixture(scope="module")
def chain(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("site_chain")
    site = construction_site.prepare_site(tmp / "site", dt.datetime.now(ZONE).date())
    token_file = write_secret(tmp / "agent.token", provision_agent(pg_dsn, AGENT_ID))
    password_file = write_password_file(tmp / "pmu.password")
    assert ensure_police_user(pg_dsn, PMU, password_file, role="project_unit") is None, "a PMU needs no TOTP"
    rules = tmp / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    central = start_central(pg_dsn, tmp / "central.log", env={"IOC_CENTRAL_ALERT_RULES_PATH": str(rules)})
    try:
        api = CentralApi(central.url)
        token = api.login(PMU, read_password(password_file))
        assert construction_site.import_plan(api, token, site) == 1
        sites = construction_site.write_sites_file(
            tmp / "sites.yaml", construction_site.site_entries(AGENT_ID, "http://127.0.0.1:9", site.project_id)
        )
        run_central_cli(pg_dsn, "cameras", "import", str(sites))
        replay = construction_site.site_cameras(site, "rtsp://127.0.0.1:9/unused")[0]
        config = edge_config(
            agent_id=AGENT_ID,
            central_url=central.url,
            token_file=token_file,
            camera_id=replay["id"],
            camera_url=replay["url"],
            lines=[],
            interval_s=60,
            on_end="stop",
            camera_extra=replay,
            state_dir=tmp / "agent-state",
            sections={"evidence": {"upload": "all"}},
        )
        edge = start_edge(write_edge_config(tmp / "edge.yaml", config), tmp / "edge.log")
        code = edge.wait(timeout_s=300)
        edge.stop()
        assert code == 0, edge.log_tail()
        yield Chain(pg_dsn, site, central, api, token)
    finally:
        central.process.stop()


def rows(dsn: str, query: str, *params: object) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def eventually(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """``check()``'s first truthy answer within ``timeout_s`` (the alert engine works on its own schedule)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.5)


def test_every_day_has_a_figure_per_package_close_to_the_truth_never_falling_past_the_tolerance(chain: Chain) -> None:
    scenario = chain.site.scenario
    stored = rows(
        chain.dsn,
        "SELECT * FROM progress WHERE agent_id = %s AND source_id = %s ORDER BY time, package_id",
        AGENT_ID,
        construction_site.SITE_CAMERA_ID,
    )
    packages = sorted(["", *(p.id for p in scenario.packages)])
    by_day: dict[dt.datetime, list[dict[str, Any]]] = {}
    for row in stored:
        by_day.setdefault(row["time"], []).append(row)
    assert sorted(by_day) == [scenario.close_of(day) for day in range(scenario.days)], "one close per day"
    for close, figures in by_day.items():
        assert sorted(f["package_id"] for f in figures) == packages
        for figure in figures:
            package = figure["package_id"]
            truth = true_project(scenario, close) if package == "" else true_percent(scenario, package, close)
            assert abs(figure["percent_complete"] - truth) <= ESTIMATE_TOLERANCE, (close, package, truth, figure)
            assert (figure["method"], figure["confirmed"], figure["project_id"]) == (
                "camera_visual",
                False,
                chain.site.project_id,
            )
            assert figure["frames_used"] >= 1
            assert 0 < figure["quality"] <= 1
    tolerance = chain.site.progress["smoothing"]["max_decrease_points"]
    for package in packages:
        series = [row["percent_complete"] for row in stored if row["package_id"] == package]
        peaks = itertools.accumulate(series, max)
        assert all(peak - value <= tolerance + 1e-9 for peak, value in zip(peaks, series, strict=True)), package


def test_the_timelapse_keyframes_are_uploaded_and_served_to_the_pmu(chain: Chain) -> None:
    project = chain.site.project_id
    start = chain.site.scenario.start.isoformat()
    answer = chain.api.call("GET", f"/api/v1/projects/{project}/timelapse?start={start}", token=chain.token)
    assert answer.status == 200, answer.body
    (camera,) = [c for c in answer.json()["cameras"] if c["source_id"] == construction_site.SITE_CAMERA_ID]
    days = camera["days"]
    assert len(days) == chain.site.scenario.days
    assert all(day["uploaded"] for day in days), "upload: all sends every daily keyframe"
    image = chain.api.call("GET", f"/api/v1/projects/{project}/keyframes/{days[-1]['sha256']}", token=chain.token)
    assert image.status == 200
    assert image.content_type.startswith("image/jpeg")
    assert image.body[:3] == b"\xff\xd8\xff"


def test_the_project_falls_behind_and_a_pmu_confirmation_resolves_it(chain: Chain) -> None:
    project = chain.site.project_id
    subject = f"project:{project}"

    def open_alert() -> dict[str, Any] | None:
        found = [a for a in chain.central.alerts(status="open") if a["subject"] == subject]
        return found[0] if found else None

    alert = eventually(open_alert)
    assert alert is not None, chain.central.alerts()
    assert alert["rule_id"] == "progress-behind-10"
    assert alert["level"] == "behind"
    assert alert["message_vi"].startswith(f"Dự án {construction_site.PROJECT_NAME_VI}")
    assert "chậm tiến độ" in alert["message_vi"]
    assert alert["value"] < alert["baseline"] - 10

    listing = chain.api.call("GET", "/api/v1/projects", token=chain.token).json()
    (listed,) = [p for p in listing if p["project_id"] == project]
    assert listed["gap_points"] > 10
    assert (listed["threshold_points"], listed["min_confidence"]) == (10.0, 0.5), "the page draws the rule's limits"
    today = dt.date.fromisoformat(listed["date"])
    photo = cv2.imread(chain.site.progress["references"][0]["image"])
    assert photo is not None
    ok, jpeg = cv2.imencode(".jpg", photo)
    assert ok
    confirmation = {
        "package_id": "",
        "date": today.isoformat(),
        "percent_complete": round(listed["planned_pct"], 1),
        "note": "Kiểm tra hiện trường: đúng tiến độ / site inspection: on plan",
        "photo_base64": base64.b64encode(jpeg.tobytes()).decode(),
    }
    path = f"/api/v1/projects/{project}/progress/confirm"
    answer = chain.api.call("POST", path, token=chain.token, body=confirmation)
    assert answer.status in (200, 201), answer.body

    resolved = eventually(lambda: [a for a in chain.central.alerts(status="resolved") if a["subject"] == subject])
    assert resolved, chain.central.alerts()
    progress = chain.api.call("GET", f"/api/v1/projects/{project}/progress", token=chain.token).json()
    last = progress["project"]["actual"][-1]
    assert (last["date"], last["confirmed"]) == (today.isoformat(), True)
    audit = rows(chain.dsn, "SELECT action, actor FROM audit_log WHERE action IN ('plan_approve', 'progress_confirm')")
    assert {(a["action"], a["actor"]) for a in audit} >= {("plan_approve", PMU), ("progress_confirm", PMU)}
