""" "Chậm tiến độ 10%" for plans with work packages, day by day on a real TimescaleDB with the AlertService.

The engine's clock is driven: each simulated day the cameras' estimates arrive and a full pass runs at
18:00 local. The alert must open on the first day the gap passes 10 points (not on the day it is exactly
10), name the project and package from the plan and say the figure is a camera estimate; a PMU's
confirmation must win and close it; a project only half watched must ask for confirmation instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from central_ingest.alerts.notice import AlertNotice
from central_ingest.alerts.plans import save_plan
from central_ingest.alerts.rules import AlertRulesConfig
from central_ingest.alerts.service import AlertService
from central_ingest.projects.confirm import Confirmer, ConfirmIn, confirmation_event, row_time, store_confirmation
from central_ingest.projects.plan_model import PackageIn, PlanIn, PlanPointIn
from central_ingest.store.migrate import apply_migrations

pytestmark = pytest.mark.integration

TZ = "Asia/Ho_Chi_Minh"
ZONE = ZoneInfo(TZ)
D0 = dt.date(2025, 6, 2)
RULES = {"rules": [{"id": "pb", "kind": "progress_behind"}]}
PMU = Confirmer("pmu.lan", "project_unit", None)


def at(day: int, hour: int) -> dt.datetime:
    """Local ``hour`` of simulated day ``day``, in UTC."""
    return dt.datetime.combine(D0 + dt.timedelta(days=day), dt.time(hour), ZONE).astimezone(dt.UTC)


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


def linear_plan(packages: dict[str, tuple[float, bool]], name_vi: str, name_en: str) -> PlanIn:
    """Every package planned from 0 on D0 to 100 ten days later; (weight, critical) per package."""
    return PlanIn(
        packages=tuple(
            PackageIn(id=p, name=p.title(), weight=w, critical=critical) for p, (w, critical) in packages.items()
        ),
        points=tuple(
            PlanPointIn(package_id=p, date=D0 + dt.timedelta(days=d), planned_pct=pct)
            for p in packages
            for d, pct in ((0, 0.0), (10, 100.0))
        ),
        project_name_vi=name_vi,
        project_name_en=name_en,
    )


def estimate(dsn: str, project: str, package: str, day: int, pct: float, *, confidence: float = 0.9) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO progress (time, event_id, agent_id, source_id, project_id, package_id, percent_complete, "
            "method, confidence, confirmed, schema_version) VALUES (%s, %s, 'site-agent', 'cam-1', %s, %s, %s, "
            "'camera_visual', %s, false, '1.5')",
            (at(day, 12), uuid4(), project, package, pct, confidence),
        )


async def confirm(pool: AsyncConnectionPool[Any], project: str, package: str, day: int, pct: float) -> None:
    body = ConfirmIn(package_id=package, date=D0 + dt.timedelta(days=day), percent_complete=pct, note="Nghiệm thu")
    now = at(day, 17)
    event = confirmation_event(project, body, PMU, time=row_time(body.date, now, TZ), now=now, photo=None)
    async with pool.connection() as conn:
        await store_confirmation(conn, project, event, PMU, photo=None, vault=None, now=now)


def states(dsn: str) -> dict[str, tuple[str, dict[str, Any]]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT subject, status, detail FROM alert_state WHERE rule_id = 'pb'").fetchall()
    return {subject: (status, detail) for subject, status, detail in rows}


def run(dsn: str, body: Callable[[AlertService, AsyncConnectionPool[Any], list[AlertNotice]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False) as pool:
            async with pool.connection() as conn:
                bridge = {"mong": (2.0, True), "tru": (1.0, False), "dam": (1.0, False)}
                plans = (
                    ("cau-vy-da", linear_plan(bridge, "Cầu Vỹ Dạ", "Vy Da bridge")),
                    ("duong-km0", linear_plan({"a": (1, False), "b": (1, False)}, "Đường km0-km2", "Road km0-km2")),
                )
                for project, plan in plans:
                    await save_plan(conn, project, plan, at(-1, 9))
            notices: list[AlertNotice] = []
            service = AlertService(pool, AlertRulesConfig.model_validate(RULES), notices.append, TZ, 3600.0)
            try:
                await body(service, pool, notices)
            finally:
                await service.close()

    asyncio.run(main())


def test_alert_fires_the_day_the_gap_passes_ten_and_a_confirmation_closes_it(dsn: str) -> None:
    """cau-vy-da: the three packages lag the plan by 2 more points every day (planned 10k on day k)."""
    opened_on: dict[str, int] = {}

    async def body(service: AlertService, pool: AsyncConnectionPool[Any], notices: list[AlertNotice]) -> None:
        for day in range(7):
            for package in ("mong", "tru", "dam"):
                estimate(dsn, "cau-vy-da", package, day, 10 * day - 2 * day)
            await service.evaluate_all(at(day, 18))
            for notice in notices:
                if notice.transition == "opened":
                    opened_on.setdefault(notice.subject, day)
        # Day 5: exactly 10 behind, nothing; day 6: 12 behind, the project and the plan-critical mong fire.
        assert opened_on == {"project:cau-vy-da": 6, "project:cau-vy-da/mong": 6}
        project = next(n for n in notices if n.subject == "project:cau-vy-da")
        assert (project.level, project.value, project.baseline) == ("behind", 48.0, 60.0)
        assert project.message_vi == (
            "Dự án Cầu Vỹ Dạ chậm tiến độ 12,0 điểm phần trăm: thực tế 48,0% (ước tính từ camera) so với kế hoạch "
            "60,0% ngày 08/06/2025 (ngưỡng 10 điểm)"
        )
        assert project.message_en.startswith("Project Vy Da bridge is 12.0 percentage points behind schedule")
        mong = next(n for n in notices if n.subject == "project:cau-vy-da/mong")
        assert mong.message_vi.startswith("Hạng mục Mong của dự án Cầu Vỹ Dạ chậm tiến độ 12,0")
        assert "(ước tính từ camera)" in mong.message_vi
        assert all(n.subject.startswith("project:cau-vy-da") for n in notices)  # duong-km0 has no figure yet
        before = len(notices)

        # Day 7: the cameras read 56 (planned 70); the PMU's inspection finds mong at 75: it wins.
        for package in ("mong", "tru", "dam"):
            estimate(dsn, "cau-vy-da", package, 7, 56)
        await confirm(pool, "cau-vy-da", "mong", 7, 75)
        await service.evaluate_all(at(7, 18))
        resolved = {n.subject for n in notices[before:] if n.transition == "resolved"}
        assert resolved == {"project:cau-vy-da", "project:cau-vy-da/mong"}  # 65.5 and 75 against 70
        status, detail = states(dsn)["project:cau-vy-da/mong"]
        assert (status, detail["basis"], detail["value"]) == ("ok", "confirmed", 75.0)

        # Day 8: the camera's mong figure is calibrated by the confirmation (+19): 58 reads 77 against 80;
        # tru and dam read 70: the project is 0.5 * 77 + 0.5 * 70 = 73.5 against 80.
        estimate(dsn, "cau-vy-da", "mong", 8, 58)
        for package in ("tru", "dam"):
            estimate(dsn, "cau-vy-da", package, 8, 70)
        await service.evaluate_all(at(8, 18))
        status, detail = states(dsn)["project:cau-vy-da/mong"]
        assert (status, detail["basis"], detail["value"], detail["estimate"]) == ("ok", "calibrated", 77.0, 58.0)
        assert not [n for n in notices[before:] if n.transition == "opened"]
        assert states(dsn)["project:cau-vy-da"][1]["value"] == 73.5

    run(dsn, body)


def test_a_half_watched_project_asks_for_confirmation_and_resolves_when_confirmed(dsn: str) -> None:
    """duong-km0: only package a has a camera; b's weight share (half) is missing from the confidence."""

    async def body(service: AlertService, pool: AsyncConnectionPool[Any], notices: list[AlertNotice]) -> None:
        estimate(dsn, "duong-km0", "a", 6, 60.0)
        await service.evaluate_all(at(6, 18))
        [unsure] = [n for n in notices if n.subject == "project:duong-km0"]
        assert (unsure.level, unsure.severity, unsure.value, unsure.baseline) == (
            "needs_confirmation", "notice", 30.0, 60.0,
        )  # fmt: skip
        assert unsure.message_vi.startswith("Cần xác nhận: ước tính cho thấy dự án Đường km0-km2 có thể chậm tiến độ")
        assert "50% khối lượng chưa có số liệu" in unsure.message_vi
        assert "no figure yet for 50% of the work" in unsure.message_en
        status, detail = states(dsn)["project:duong-km0"]
        assert (status, detail["confidence"], detail["coverage"]) == ("needs_confirmation", 0.45, 0.5)

        await confirm(pool, "duong-km0", "b", 6, 55.0)  # the PMU fills the gap: 0.5 * 60 + 0.5 * 55 = 57.5
        await service.evaluate_all(at(6, 19))
        [resolved] = [n for n in notices if n.subject == "project:duong-km0" and n.transition == "resolved"]
        assert resolved.alert_id == unsure.alert_id
        status, detail = states(dsn)["project:duong-km0"]
        assert (status, detail["value"], detail["basis"]) == ("ok", 57.5, "partly_confirmed")

    run(dsn, body)
