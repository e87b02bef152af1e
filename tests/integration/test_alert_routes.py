"""The alert and plan HTTP routes on a small app (the lead wires the routers into create_app).

Every route needs a session: the fixture's user is a project unit (plan writes) and an operator (alert reads,
acknowledge and resolve), signed in with a bearer token; a police officer may read alerts but not act on them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from central_ingest.access.runtime import AccessRuntime
from central_ingest.access.settings import AccessSettings
from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.plans import PlanIn, PlanPointIn, save_plan
from central_ingest.alerts.routes import router
from central_ingest.alerts.rules import AlertRulesConfig
from central_ingest.alerts.service import AlertService
from central_ingest.projects.plan_routes import router as plans_router
from central_ingest.state import get_app_state
from central_ingest.store.migrate import apply_migrations
from tests.api_sessions import api_headers, open_api_session

pytestmark = pytest.mark.integration

NOW = dt.datetime(2025, 6, 2, 3, 0, tzinfo=dt.UTC)
RULES = {
    "junctions": [{"id": "j-new", "cameras": [{"agent_id": "agent-r", "source_id": "cam-1"}]}],
    "rules": [
        {"id": "silent-r", "kind": "source_silent", "silent_after_s": 600},
        {"id": "vi-r", "kind": "violation_increase"},
    ],
}
ACCESS = AccessSettings(password_kdf_log2_n=10)  # the routes are under test, not the password hash's cost
PMU_USER = "bqlda.plan"


async def _pmu_session(dsn: str) -> str:
    """A project unit and operator's session token (neither role needs TOTP)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await open_api_session(conn, PMU_USER, ("project_unit", "operator"))


@pytest.fixture(scope="module")
def app_and_notices(pg_dsn: str) -> Iterator[tuple[TestClient, list[AlertNotice]]]:
    apply_migrations(pg_dsn)
    token = asyncio.run(_pmu_session(pg_dsn))
    with psycopg.connect(pg_dsn) as conn:  # three silent cameras: three alerts
        for camera in ("c1", "c2", "c3"):
            at = NOW - dt.timedelta(hours=1)
            conn.execute(
                "INSERT INTO source_last_seen VALUES ('agent-r', %s, 'count_interval', %s, %s)", (camera, at, at)
            )
    notices: list[AlertNotice] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False) as pool:
            config = AlertRulesConfig.model_validate(RULES)
            app.state.ioc_alerts = AlertService(pool, config, notices.append, "Asia/Ho_Chi_Minh", 3600.0, lambda: NOW)
            app.state.pool_only = SimpleNamespace(pool=pool)
            app.state.ioc_access = AccessRuntime.create(ACCESS)
            yield
            await app.state.ioc_alerts.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(router)
    app.include_router(plans_router)
    # AppState also carries the ingest pipeline; these routes only need its pool.
    app.dependency_overrides[get_app_state] = lambda: app.state.pool_only
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.portal.call(app.state.ioc_alerts.evaluate_all)  # type: ignore[union-attr]
        yield client, notices


def test_list_filter_and_page(app_and_notices: tuple[TestClient, list[AlertNotice]]) -> None:
    client, notices = app_and_notices
    assert sorted(n.subject for n in notices) == ["source:agent-r/c1", "source:agent-r/c2", "source:agent-r/c3"]
    first = client.get("/api/v1/alerts", params={"rule_id": "silent-r", "limit": 2}).json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = client.get("/api/v1/alerts", params={"rule_id": "silent-r", "limit": 2, "cursor": first["next_cursor"]})
    assert second.status_code == 200
    page2 = second.json()
    assert (len(page2["items"]), page2["next_cursor"]) == (1, None)
    ids = [a["alert_id"] for a in first["items"] + page2["items"]]
    assert sorted(ids) == sorted(str(n.alert_id) for n in notices)
    item = first["items"][0]
    assert (item["status"], item["rule_kind"], item["value"], item["threshold"]) == (
        "open",
        "source_silent",
        3600.0,
        600.0,
    )
    assert item["message_vi"].startswith("Camera mất tín hiệu: agent-r/c")

    filtered = client.get("/api/v1/alerts", params={"subject": "source:agent-r/c2", "status": "open"}).json()
    assert [a["subject"] for a in filtered["items"]] == ["source:agent-r/c2"]
    assert client.get("/api/v1/alerts", params={"rule_kind": "progress_behind"}).json() == {
        "items": [],
        "next_cursor": None,
    }
    severity = item["severity"]
    other = "critical" if severity != "critical" else "notice"
    assert len(client.get("/api/v1/alerts", params={"severity": severity}).json()["items"]) == 3
    assert client.get("/api/v1/alerts", params={"severity": other}).json()["items"] == []
    assert client.get("/api/v1/alerts", params={"severity": "urgent"}).status_code == 422
    later = (NOW + dt.timedelta(seconds=1)).isoformat()
    assert client.get("/api/v1/alerts", params={"since": later}).json()["items"] == []
    assert client.get("/api/v1/alerts", params={"cursor": "not-a-cursor"}).status_code == 422
    assert client.get("/api/v1/alerts", params={"limit": 1001}).status_code == 422


def test_acknowledge_resolve_and_conflicts(app_and_notices: tuple[TestClient, list[AlertNotice]], pg_dsn: str) -> None:
    client, notices = app_and_notices
    alert = next(n for n in notices if n.subject == "source:agent-r/c1")
    url = f"/api/v1/alerts/{alert.alert_id}"
    before = len(notices)
    police = api_headers(pg_dsn, "officer.alerts", ("police",))
    assert client.get(url, headers=police).status_code == 200  # police read alerts...
    assert client.post(f"{url}/acknowledge", json={}, headers=police).status_code == 403  # ...but do not act
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    # "by" is ignored (older clients sent it): the signed-in user is the actor.
    acked = client.post(f"{url}/acknowledge", json={"by": "trực ban", "comment": "đang kiểm tra"})
    assert acked.status_code == 200, acked.text
    assert (acked.json()["status"], acked.json()["transition"]) == ("acknowledged", "acknowledged")
    assert client.post(f"{url}/acknowledge", json={"by": "trực ban"}).status_code == 409
    resolved = client.post(f"{url}/resolve", json={"comment": "đã sửa camera"})
    assert resolved.json()["status"] == "resolved"
    conflict = client.post(f"{url}/resolve", json={"by": "trực ban"})
    assert conflict.status_code == 409
    assert "resolved" in conflict.json()["detail"]
    assert [n.transition for n in notices[before:]] == ["acknowledged", "resolved"]
    assert client.post(f"/api/v1/alerts/{uuid4()}/resolve", json={"by": "x"}).status_code == 404
    assert client.post(f"{url}/resolve", json={"comment": "x", "who": "y"}).status_code == 422  # unknown field

    detail = client.get(url).json()
    assert detail["status"] == "resolved"
    assert (detail["resolved_by"], detail["resolve_comment"], detail["resolution"]) == (
        PMU_USER,
        "đã sửa camera",
        "operator",
    )
    assert [(t["transition"], t["by"]) for t in detail["transitions"]] == [
        ("opened", None),
        ("acknowledged", PMU_USER),
        ("resolved", PMU_USER),
    ]
    assert client.get(f"/api/v1/alerts/{uuid4()}").status_code == 404
    # Only UUIDs reach these routes: /api/v1/alerts/stream (the sinks' SSE route) stays free in any include order.
    assert client.get("/api/v1/alerts/stream").status_code == 404


def test_rules_show_each_subjects_status(app_and_notices: tuple[TestClient, list[AlertNotice]]) -> None:
    client, _ = app_and_notices
    rules = {rule["id"]: rule for rule in client.get("/api/v1/alerts/rules").json()}
    assert set(rules) == {"silent-r", "vi-r"}
    assert rules["vi-r"]["threshold_pct"] == "20"
    [junction] = rules["vi-r"]["subjects"]
    assert (junction["subject"], junction["status"], junction["alert_id"]) == (
        "junction:j-new",
        "insufficient_baseline",
        None,
    )
    assert {s["status"] for s in rules["silent-r"]["subjects"]} == {"breach"}


def test_plans_are_versioned(app_and_notices: tuple[TestClient, list[AlertNotice]]) -> None:
    client, _ = app_and_notices
    url = "/api/v1/projects/cau-moi/plan"
    assert client.get(url).status_code == 404
    anonymous = {"Authorization": ""}
    assert client.get(url, headers=anonymous).status_code == 401
    assert (
        client.put(url, json={"points": [{"date": "2025-01-01", "planned_pct": 0}]}, headers=anonymous).status_code
        == 401
    )
    first: dict[str, Any] = {
        "points": [{"date": "2025-01-01", "planned_pct": 0}, {"date": "2025-12-31", "planned_pct": 100}]
    }
    stored = client.put(url, json={**first, "note": "QĐ 123/QĐ-UBND"})
    assert stored.status_code == 200, stored.text
    assert (stored.json()["plan_version"], stored.json()["approved_by"]) == (1, PMU_USER)
    second = {
        "points": [
            {"date": "2025-01-01", "planned_pct": 0},
            {"package_id": "mong", "date": "2025-06-30", "planned_pct": 100},
        ]
    }
    assert client.put(url, json=second).json()["plan_version"] == 2
    latest = client.get(url).json()
    assert (latest["plan_version"], len(latest["points"])) == (2, 2)
    assert latest["points"][1] == {"package_id": "mong", "date": "2025-06-30", "planned_pct": 100.0}
    old = client.get(url, params={"version": 1}).json()
    assert (old["note"], old["points"][1]["planned_pct"]) == ("QĐ 123/QĐ-UBND", 100.0)
    assert client.get(url, params={"version": 3}).status_code == 404
    bad = {"points": [{"date": "2025-01-01", "planned_pct": 101}]}
    assert client.put(url, json=bad).status_code == 422
    twice = {"points": [{"date": "2025-01-01", "planned_pct": 1}, {"date": "2025-01-01", "planned_pct": 2}]}
    assert client.put(url, json=twice).status_code == 422


def test_concurrent_plan_approvals_get_distinct_versions(pg_dsn: str, app_and_notices: Any) -> None:
    async def approve() -> int:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            plan = PlanIn(points=(PlanPointIn(date=dt.date(2025, 1, 1), planned_pct=5),))
            return (await save_plan(conn, "song-song", plan, NOW)).plan_version

    async def race() -> list[int]:
        return list(await asyncio.gather(*(approve() for _ in range(4))))

    assert sorted(asyncio.run(race())) == [1, 2, 3, 4]
