"""Plan routes and ``central-ingest plans`` on the real database: import, versions, roles, audit entries."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from central_ingest.access.admin import Actor, create_user
from central_ingest.access.roles import Role
from central_ingest.access.runtime import AccessRuntime
from central_ingest.access.sessions import open_session
from central_ingest.access.settings import AccessSettings
from central_ingest.alerts.plans import load_plan
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from central_ingest.cli import main
from central_ingest.projects.plan_import import MAX_FILE_BYTES, XLSX_CONTENT_TYPE
from central_ingest.projects.plan_routes import PlanImportStats, router
from central_ingest.state import get_app_state
from central_ingest.store.migrate import apply_migrations

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "plans"
ACCESS = AccessSettings(password_kdf_log2_n=10)
USERS: dict[str, Role] = {"bqlda.lan": "project_unit", "admin.em": "admin", "operator.chi": "operator"}
CSV = {"Content-Type": "text/csv; charset=utf-8"}
XLSX = {"Content-Type": XLSX_CONTENT_TYPE}


@dataclass
class World:
    client: TestClient
    dsn: str
    tokens: dict[str, str]
    app: FastAPI

    def auth(self, username: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}", **headers}

    def audit(self, action: str) -> list[AuditRecord]:
        async def read() -> list[AuditRecord]:
            async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
                return await list_audit(conn, AuditFilter(action=action), 1000)

        return asyncio.run(read())

    @property
    def stats(self) -> PlanImportStats:
        stats = self.app.state.ioc_plan_imports
        assert isinstance(stats, PlanImportStats)
        return stats


async def _sessions(dsn: str) -> dict[str, str]:
    tokens: dict[str, str] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for username, role in USERS.items():
            change = await create_user(
                conn, Actor("test-setup", "admin"), ACCESS, username=username, password="mật-khẩu-đủ-dài-2025",
                roles=frozenset({role}),
            )  # fmt: skip
            grant = await open_session(conn, change.user.user_id, ACCESS, dt.datetime.now(dt.UTC), "test")
            tokens[username] = grant.token
    return tokens


@pytest.fixture(scope="module")
def world(pg_dsn: str) -> Iterator[World]:
    apply_migrations(pg_dsn)
    tokens = asyncio.run(_sessions(pg_dsn))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False) as pool:
            app.state.only = SimpleNamespace(pool=pool)
            app.state.ioc_access = AccessRuntime.create(ACCESS)
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(router)
    app.dependency_overrides[get_app_state] = lambda: app.state.only
    with TestClient(app) as client:
        yield World(client, pg_dsn, tokens, app)


def test_imported_files_become_versions_with_history_and_audit(world: World) -> None:
    url = "/api/v1/projects/nha-van-hoa-tan-lap/plan"
    csv_bytes = (EXAMPLES / "example_plan.csv").read_bytes()
    first = world.client.post(
        f"{url}/import",
        content=csv_bytes,
        params={"note": "QĐ 45/QĐ-UBND", "filename": "C:\\KeHoach\\ke hoach.csv", "name_vi": "Nhà văn hoá xã Tân Lập"},
        headers=world.auth("bqlda.lan", **CSV),
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["plan_version"], body["approved_by"], body["note"]) == (1, "bqlda.lan", "QĐ 45/QĐ-UBND")
    assert body["source"] == {"name": "ke hoach.csv", "sha256": hashlib.sha256(csv_bytes).hexdigest()}
    assert [p["id"] for p in body["packages"]] == ["mong", "khung-t1", "khung-t2", "mai", "hoan-thien"]
    assert body["packages"][0]["weight_share"] == 0.15
    assert body["curves"][""][-1] == {"date": "2025-10-31", "planned_pct": 100.0}
    assert body["project_name_vi"] == "Nhà văn hoá xã Tân Lập"

    xlsx_bytes = (EXAMPLES / "example_plan.xlsx").read_bytes()
    approved_at = "2025-02-20T08:00:00+07:00"
    second = world.client.post(
        f"{url}/import",
        content=xlsx_bytes,
        params={"note": "điều chỉnh lần 1", "approved_at": approved_at},
        headers=world.auth("admin.em", **XLSX),
    )
    assert second.status_code == 200, second.text
    assert (second.json()["plan_version"], second.json()["source"]["name"]) == (2, "plan.xlsx")
    assert second.json()["project_name_vi"] == "Nhà văn hoá xã Tân Lập"  # kept when not given again
    assert dt.datetime.fromisoformat(second.json()["approved_at"]) == dt.datetime.fromisoformat(approved_at)
    # The same plan either way: only the meta data differs.
    assert second.json()["curves"] == body["curves"]

    versions = world.client.get(f"{url}/versions", headers=world.auth("operator.chi"))
    assert versions.status_code == 200
    assert [(v["plan_version"], v["approved_by"], v["packages"], v["source_name"]) for v in versions.json()] == [
        (2, "admin.em", 5, "plan.xlsx"),
        (1, "bqlda.lan", 5, "ke hoach.csv"),
    ]
    assert world.client.get(url, headers=world.auth("operator.chi")).json()["plan_version"] == 2
    old = world.client.get(url, params={"version": 1}, headers=world.auth("operator.chi")).json()
    assert old["note"] == "QĐ 45/QĐ-UBND"

    entries = [r for r in world.audit("plan_approve") if r.target["project_id"] == "nha-van-hoa-tan-lap"]
    assert [(r.actor, r.role, r.target["plan_version"]) for r in entries] == [
        ("bqlda.lan", "project_unit", 1),
        ("admin.em", "admin", 2),
    ]
    assert entries[0].target["source"] == {"name": "ke hoach.csv", "sha256": hashlib.sha256(csv_bytes).hexdigest()}
    assert (entries[0].target["note"], entries[0].target["packages"]) == ("QĐ 45/QĐ-UBND", 5)
    assert world.stats.imported >= 2


def test_json_plan_with_packages_only_gets_generated_curves(world: World) -> None:
    url = "/api/v1/projects/duong-km0-2/plan"
    plan: dict[str, Any] = {
        "project_name_vi": "Đường km 0-2",
        "project_name_en": "Road km 0-2",
        "packages": [
            {"id": "km0-1", "name": "km 0-1", "weight": 1, "planned_start": "2025-03-01",
             "planned_finish": "2025-03-29", "critical": True},
            {"id": "km1-2", "name": "km 1-2", "weight": 3, "planned_start": "2025-03-01",
             "planned_finish": "2025-03-29"},
        ],
    }  # fmt: skip
    stored = world.client.put(url, json=plan, headers=world.auth("bqlda.lan"))
    assert stored.status_code == 200, stored.text
    curves = stored.json()["curves"]
    assert [p["date"] for p in curves["km0-1"]] == [
        "2025-03-01",
        "2025-03-08",
        "2025-03-15",
        "2025-03-22",
        "2025-03-29",
    ]
    assert [p["planned_pct"] for p in curves["km0-1"]] == [0.0, 15.625, 50.0, 84.375, 100.0]
    assert curves[""] == curves["km0-1"]  # both packages follow the same schedule
    assert stored.json()["source"] is None

    async def read() -> tuple[tuple[str, ...], dict[str, float]]:
        async with await psycopg.AsyncConnection.connect(world.dsn) as conn:
            loaded = await load_plan(conn, "duong-km0-2")
        assert loaded is not None
        return loaded.critical_packages(), loaded.weights()

    assert asyncio.run(read()) == (("km0-1",), {"km0-1": 0.25, "km1-2": 0.75})
    assert world.audit("plan_approve")[-1].target["source"] is None


def test_writes_need_project_unit_or_admin_and_reads_a_session(world: World) -> None:
    url = "/api/v1/projects/cau-moi/plan"
    plan = {"points": [{"date": "2025-01-01", "planned_pct": 0}]}
    csv_body = b"package_id,weight,2025-01-01\na,1,5\n"
    assert world.client.put(url, json=plan).status_code == 401
    assert world.client.post(f"{url}/import", content=csv_body, headers=CSV).status_code == 401
    assert world.client.get(url).status_code == 401
    assert world.client.get(f"{url}/versions").status_code == 401
    denied_before = len(world.audit("access_denied"))
    assert world.client.put(url, json=plan, headers=world.auth("operator.chi")).status_code == 403
    refused = world.client.post(f"{url}/import", content=csv_body, headers=world.auth("operator.chi", **CSV))
    assert refused.status_code == 403
    denied = world.audit("access_denied")[denied_before:]
    assert [(r.actor, r.target["path"], r.target["required_roles"]) for r in denied] == [
        ("operator.chi", url, ["admin", "project_unit"]),
        ("operator.chi", f"{url}/import", ["admin", "project_unit"]),
    ]
    assert world.client.get(url, headers=world.auth("operator.chi")).status_code == 404  # nothing was stored
    assert world.client.get(f"{url}/versions", headers=world.auth("operator.chi")).status_code == 404


def test_bad_uploads_are_refused_with_every_problem_and_counted(world: World) -> None:
    url = "/api/v1/projects/cau-loi/plan/import"
    pmu = world.auth("bqlda.lan")
    refused_before = world.stats.refused
    wrong_type = world.client.post(url, content=b"{}", headers={**pmu, "Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    assert "text/csv" in wrong_type.json()["detail"]
    too_big = world.client.post(url, content=b"x" * (MAX_FILE_BYTES + 1), headers={**pmu, **CSV})
    assert too_big.status_code == 413
    naive = world.client.post(url, content=b"x", params={"approved_at": "2025-01-01T00:00:00"}, headers={**pmu, **CSV})
    assert naive.status_code == 422
    text = "Mã hạng mục;Tỷ trọng;31/03/2025;30/04/2025\nmong;abc;50%;40%\n;10;;\n"
    bad = world.client.post(url, content=text.encode(), params={"filename": "kh.csv"}, headers={**pmu, **CSV})
    assert bad.status_code == 422
    assert bad.json()["detail"] == {
        "message": "Tệp kế hoạch có lỗi. / The plan file has problems.",
        "issues": [
            "kh.csv:2:2: 'abc' is not a number (e.g. 35%, 35 or 35,5)",
            "kh.csv:2:4: planned 40% on 30/04/2025 is below 50% on 31/03/2025: the planned % is cumulative and "
            "cannot go down",
            "kh.csv:3:1: missing package id (Mã hạng mục)",
        ],
    }
    not_xlsx = world.client.post(url, content=text.encode(), headers={**pmu, **XLSX})
    assert not_xlsx.json()["detail"]["issues"] == [
        "plan.xlsx: not an Excel .xlsx workbook (an .xls file? save it as .xlsx)"
    ]
    assert world.stats.refused - refused_before == 5
    assert world.client.get("/api/v1/projects/cau-loi/plan/versions", headers=pmu).status_code == 404


def test_cli_import_show_and_versions(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = ["--database-url", world.dsn, "plans"]
    path = EXAMPLES / "example_plan.xlsx"
    args = ["--project", "cli-du-an", "--note", "QĐ 7", "--by", "Giám đốc BQLDA", "--name-en", "CLI project"]
    assert main([*cli, "import", str(path), *args]) == 0
    assert "plan version 1 approved (5 packages" in capsys.readouterr().out
    [entry] = [r for r in world.audit("plan_approve") if r.target["project_id"] == "cli-du-an"]
    assert (entry.actor, entry.role, entry.client) == (f"cli:{getpass.getuser()}", "cli", "cli")
    assert entry.target["approved_by"] == "Giám đốc BQLDA"
    assert entry.target["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    assert main([*cli, "show", "cli-du-an"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0] == "project cli-du-an: CLI project"
    assert "by Giám đốc BQLDA; note: QĐ 7" in shown[1]
    assert "mong\tMóng\t15\t15.0%\t2025-03-03\t2025-04-11\tx\tpoints" in shown
    assert "mai\tMái\t15\t15.0%\t2025-07-21\t2025-08-29\tx\tgenerated" in shown
    assert "date\tproject\tmong\tkhung-t1\tkhung-t2\tmai\thoan-thien" in shown
    assert shown[-1] == "2025-10-31\t100.0\t100.0\t100.0\t100.0\t100.0\t100.0"

    bad = tmp_path / "xau.csv"
    bad.write_text("package_id;weight;2025-01-01\na;0;5\n", encoding="utf-8")
    assert main([*cli, "import", str(bad), "--project", "cli-du-an"]) == 1
    err = capsys.readouterr().err
    assert "xau.csv:2:2: weight 0 must be above 0" in err
    assert main([*cli, "import", str(tmp_path / "ke-hoach.ods"), "--project", "cli-du-an"]) == 1
    assert "must end in .csv or .xlsx" in capsys.readouterr().err

    assert main([*cli, "versions", "cli-du-an"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("1\t")
    assert "\tGiám đốc BQLDA\t5\t" in lines[1]
    assert main([*cli, "show", "khong-co"]) == 1
    assert "has no plan" in capsys.readouterr().err
