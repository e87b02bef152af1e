"""``POST /api/v1/plates/search`` on the real app and TimescaleDB: who may search, what a search needs, what it
answers (records, timeline, cameras on the map), and that every search, and only a search that answered,
is in the audit log with its reason and result count."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.access.totp import totp
from central_ingest.app import create_app
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from tests.integration.test_police_search_support import (
    NEIGHBOUR,
    OTHER,
    REASON,
    TARGET,
    UNREGISTERED_CAMERA,
    PoliceWorld,
    build_world,
)

pytestmark = pytest.mark.integration

SEARCH = "/api/v1/plates/search"


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> PoliceWorld:
    return build_world(pg_dsn, tmp_path_factory.mktemp("police_search"))


@pytest.fixture(scope="module")
def client(world: PoliceWorld) -> Iterator[TestClient]:
    # https: the session cookies are Secure, so a cookie sign-in needs an https base URL.
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def audit_of(dsn: str, action: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await list_audit(conn, AuditFilter(action=action), 10_000)

    return asyncio.run(read())


def search(client: TestClient, world: PoliceWorld, user: str = "officer.an", **fields: Any) -> dict[str, Any]:
    answer = client.post(SEARCH, json=world.search_body(**fields), headers=world.bearer(user))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_exact_search_answers_records_timeline_and_map(client: TestClient, world: PoliceWorld) -> None:
    body = search(client, world, plate="30a12345")  # any printed form of TARGET
    expected = [p for p in world.of(TARGET) if p.minutes_ago < 24 * 60]
    assert [r["event_id"] for r in body["records"]] == [str(p.event.event_id) for p in expected if p.event]
    assert {r["plate"] for r in body["records"]} == {TARGET}
    assert body["truncated"] is False
    times = [dt.datetime.fromisoformat(r["time"]) for r in body["records"]]
    assert times == sorted(times, reverse=True)

    timeline = body["timeline"]
    assert [t["step"] for t in timeline] == [1, 2, 3, 4]
    assert [t["event_id"] for t in timeline] == [r["event_id"] for r in reversed(body["records"])]
    assert [t["camera_key"].split("/")[1] for t in timeline] == ["cam-1", "cam-2", "cam-3", UNREGISTERED_CAMERA]

    cameras = {c["source_id"]: c for c in body["cameras"]}
    assert list(cameras) == ["cam-1", "cam-2", "cam-3", UNREGISTERED_CAMERA]  # order of first pass
    assert (cameras["cam-1"]["name"], cameras["cam-1"]["lat"], cameras["cam-1"]["lon"]) == (
        "Cầu Trường Tiền",
        16.4685,
        107.5857,
    )
    assert cameras[UNREGISTERED_CAMERA]["lat"] is None
    assert cameras[UNREGISTERED_CAMERA]["name"] is None
    assert all(c["passes"] == 1 for c in cameras.values())

    newest = body["records"][0]
    [evidence] = newest["evidence"]
    assert evidence["url"] == f"/api/v1/plates/evidence/{evidence['sha256']}?search_id={body['search_id']}"


def test_partial_search_and_filters(client: TestClient, world: PoliceWorld) -> None:
    partial = search(client, world, plate=None, pattern="30A-12?.45")
    assert sorted({r["plate"] for r in partial["records"]}) == [TARGET, NEIGHBOUR]
    assert len(partial["records"]) == 5
    assert OTHER not in {r["plate"] for r in partial["records"]}

    one_camera = search(client, world, source_ids=["cam-2"])
    assert [(r["plate"], r["source_id"]) for r in one_camera["records"]] == [(TARGET, "cam-2")]

    newest_two = search(client, world, limit=2)
    assert newest_two["truncated"] is True
    assert [r["source_id"] for r in newest_two["records"]] == [UNREGISTERED_CAMERA, "cam-3"]

    wide = search(client, world, since=(world.now - dt.timedelta(days=30)).isoformat())
    assert len(wide["records"]) == 5  # the ten-day-old pass too

    nothing = search(client, world, plate="99Z-999.99")
    assert (nothing["records"], nothing["timeline"], nothing["cameras"]) == ([], [], [])


def test_only_police_may_search(client: TestClient, world: PoliceWorld) -> None:
    body = world.search_body()
    assert client.post(SEARCH, json=body).status_code == 401
    assert client.post(SEARCH, json=body, headers={"Authorization": "Bearer not-a-session"}).status_code == 401
    for user in ("operator.chi", "auditor.dung"):
        refused = client.post(SEARCH, json=body, headers=world.bearer(user))
        assert refused.status_code == 403, refused.text
        assert "records" not in refused.json()


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"reason": None}, "reason"),
        ({"reason": {"case_number": "VV-1"}}, "note"),
        ({"reason": {"case_number": "VV-1", "note": "ngắn"}}, "note"),
        ({"reason": {"case_number": "", "note": "đủ dài để ghi lại"}}, "case_number"),
        ({"reason": {"case_number": "x" * 65, "note": "đủ dài để ghi lại"}}, "case_number"),
        ({"reason": {"case_number": "VV<1>", "note": "đủ dài để ghi lại"}}, "case_number"),
        ({"reason": {**REASON, "extra": 1}}, "extra"),
        ({"pattern": "30A-12?.45"}, "exactly one of plate"),
        ({"plate": None}, "exactly one of plate"),
        ({"plate": None, "pattern": "3?A*"}, "3 known characters"),
        ({"plate": "--"}, "2 letters or digits"),
        ({"until": "2020-01-01T00:00:00+07:00"}, "since must be before until"),
        ({"since": "2025-06-01T00:00:00"}, "timezone"),
        ({"limit": 0}, "limit"),
        ({"unexpected": True}, "unexpected"),
    ],
)
def test_invalid_searches_are_refused(
    client: TestClient, world: PoliceWorld, fields: dict[str, Any], complaint: str
) -> None:
    answer = client.post(SEARCH, json=world.search_body(**fields), headers=world.bearer("officer.an"))
    assert answer.status_code == 422, answer.text
    assert complaint in answer.text


def test_range_is_limited(client: TestClient, world: PoliceWorld) -> None:
    too_wide = world.search_body(since=(world.now - dt.timedelta(days=91)).isoformat())
    answer = client.post(SEARCH, json=too_wide, headers=world.bearer("officer.an"))
    assert answer.status_code == 422
    assert "at most 90 days" in answer.json()["detail"]


def test_cookie_sign_in_with_totp_needs_csrf(client: TestClient, world: PoliceWorld) -> None:
    secret = world.totp_secrets["officer.binh"]
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "officer.binh", "password": "mat-khau-that-dai-2025", "totp": totp(secret, time.time())},
    )
    assert login.status_code == 200, login.text
    csrf = login.json()["csrf_token"]
    body = world.search_body()
    assert client.post(SEARCH, json=body).status_code == 403  # cookie alone: CSRF refused
    answer = client.post(SEARCH, json=body, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["records"]) == 4
    client.cookies.clear()


def test_every_answered_search_is_audited_with_reason_and_count(
    client: TestClient, world: PoliceWorld, pg_dsn: str
) -> None:
    before = audit_of(pg_dsn, "plate_search")
    refused = client.post(SEARCH, json=world.search_body(reason=None), headers=world.bearer("officer.an"))
    assert refused.status_code == 422
    forbidden = client.post(SEARCH, json=world.search_body(), headers=world.bearer("operator.chi"))
    assert forbidden.status_code == 403
    assert audit_of(pg_dsn, "plate_search") == before  # nothing searched, nothing logged as a search

    reason = {"case_number": "45/2025/HS", "note": "Xác minh lộ trình xe theo đơn tố giác"}
    body = search(client, world, user="officer.binh", pattern="30A-12?.45", plate=None, reason=reason)
    after = audit_of(pg_dsn, "plate_search")
    assert len(after) == len(before) + 1
    record = after[-1]
    assert record.seq == body["search_id"]
    assert record.time == dt.datetime.fromisoformat(body["searched_at"])
    assert (record.actor, record.role, record.action) == ("officer.binh", "police", "plate_search")
    assert record.reason == "45/2025/HS: Xác minh lộ trình xe theo đơn tố giác"
    assert record.result_count == len(body["records"]) == 5
    assert record.target["pattern"] == "30A-12?.45"
    assert "plate" not in record.target
    assert record.target["source_ids"] == []
    # Every search of this module so far is in the log, each with its reason and its count.
    assert all(r.reason and r.reason.startswith(("123/2025/QĐ-CA: ", "45/2025/HS: ")) for r in after)
    assert all(r.result_count is not None for r in after)
    assert {r.actor for r in after} <= {"officer.an", "officer.binh"}
    denied = audit_of(pg_dsn, "access_denied")
    assert any(r.actor == "operator.chi" and r.target["path"] == SEARCH for r in denied)


def test_no_search_without_its_audit_record(client: TestClient, world: PoliceWorld, pg_dsn: str) -> None:
    before = audit_of(pg_dsn, "plate_search")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit store broken (test)'; END; $$"
        )
        conn.execute(
            "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW "
            "EXECUTE FUNCTION test_refuse_audit()"
        )
    try:
        answer = client.post(SEARCH, json=world.search_body(), headers=world.bearer("officer.an"))
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("DROP TRIGGER test_refuse_audit ON audit_log")
            conn.execute("DROP FUNCTION test_refuse_audit()")
    assert answer.status_code == 500
    assert set(answer.json()) == {"detail"}
    assert "not performed" in answer.json()["detail"]
    assert TARGET not in answer.text
    assert audit_of(pg_dsn, "plate_search") == before
    # The chain still extends normally afterwards.
    assert search(client, world)["search_id"] > max((r.seq for r in before), default=0)


def test_search_needs_a_keyring(world: PoliceWorld) -> None:
    without_keys = world.settings.model_copy(update={"plate_keys_file": None})
    with TestClient(create_app(without_keys), base_url="https://testserver") as plain:
        answer = plain.post(SEARCH, json=world.search_body(), headers=world.bearer("officer.an"))
    assert answer.status_code == 503
    assert "keyring" in answer.json()["detail"]
