"""Evidence on demand with the real central app and TimescaleDB, and the agent's real delivery and uploader.

An agent with upload policy ``never`` keeps a pass's keyframe at the edge. An officer whose search returned
the pass asks for it (``POST /api/v1/plates/evidence/{sha256}/request``, audited); the ack of the agent's
next batch carries the digest (``evidence_wanted``), the evidence store lists it, the uploader PUTs it,
central closes the request, and the officer's view succeeds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from central_ingest.plates.evidence_requests import EvidenceRequestSettings
from central_ingest.plates.evidence_routes import get_evidence_request_settings
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.http_uplink import HttpTransport
from edge_agent.delivery.sender import Delivery
from edge_agent.delivery.spool import Spool, SpoolConfig
from edge_agent.evidence.config import EvidenceConfig
from edge_agent.evidence.requests import EvidenceRequestHandler
from edge_agent.evidence.store import EvidenceStore
from edge_agent.evidence.uploader import EvidenceUploader
from event_contract import EventBatch, HealthEvent
from ioc_common.backoff import BackoffConfig
from tests.integration.test_police_search_support import (
    AGENT,
    TARGET,
    UNREGISTERED_CAMERA,
    Pass,
    PoliceWorld,
    build_world,
)
from tests.unit.test_delivery_sender import MemoryDeadLetters, eventually

pytestmark = pytest.mark.integration

EDGE_ONLY = ("cam-1", "cam-2", UNREGISTERED_CAMERA, "cam-3")
"""Cameras of the four passes whose keyframes the agent kept (never uploaded); plus one uploaded pass."""


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> PoliceWorld:
    passes = [Pass(TARGET, camera, 20 + 5 * i, uploaded=False) for i, camera in enumerate(EDGE_ONLY)]
    passes.append(Pass(TARGET, "cam-1", 90))
    return build_world(pg_dsn, tmp_path_factory.mktemp("on-demand"), passes)


@pytest.fixture(scope="module")
def client(world: PoliceWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def edge_pass(world: PoliceWorld, camera: str) -> Pass:
    return next(p for p in world.passes if p.camera == camera and not p.uploaded)


def search(client: TestClient, world: PoliceWorld, user: str = "officer.an") -> dict[str, Any]:
    answer = client.post("/api/v1/plates/search", json=world.search_body(), headers=world.bearer(user))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def view_url(body: dict[str, Any], sha256: str) -> str:
    return str(next(e["url"] for r in body["records"] for e in r["evidence"] if e["sha256"] == sha256))


def request_url(body: dict[str, Any], sha256: str) -> str:
    base, query = view_url(body, sha256).split("?", 1)
    return f"{base}/request?{query}"


def audit_of(dsn: str, action: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await list_audit(conn, AuditFilter(action=action), 10_000)

    return asyncio.run(read())


def send_batch(client: TestClient, world: PoliceWorld, *, announce: bool) -> dict[str, Any]:
    """One batch as an agent sends it; ``announce``: with the X-IOC-Ack-Features header of this version."""
    event = HealthEvent(agent_id=AGENT, source_id="agent", time=dt.datetime.now(dt.UTC), state="live")
    headers = {"Authorization": f"Bearer {world.agent_token}", "Content-Type": "application/json"}
    if announce:
        headers["X-IOC-Ack-Features"] = "evidence_wanted"
    body = EventBatch(agent_id=AGENT, events=(event,)).model_dump_json()
    answer = client.post("/api/v1/events", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    ack: dict[str, Any] = answer.json()
    return ack


def test_policy_never_request_next_ack_upload_and_the_officer_sees_the_image(
    client: TestClient, world: PoliceWorld, pg_dsn: str, tmp_path: Path
) -> None:
    wanted = edge_pass(world, "cam-1")
    evidence = EvidenceConfig(upload="never", upload_backoff=BackoffConfig(base_s=0.01, ceiling_s=0.05))
    store = EvidenceStore(evidence, tmp_path / "evidence")
    assert wanted.event is not None
    store.put(wanted.image, time=wanted.event.time, purpose="plate_pass")
    uplink = UplinkConfig.model_validate(
        {"url": "https://testserver", "token": world.agent_token, "flush_interval_s": 0.05}
    )
    # The agent's HTTP clients talk to the app in-process (TestClient is httpx-compatible: another httpx build).
    http = cast(httpx.Client, client)
    uploader = EvidenceUploader(store, uplink, evidence, client=http, poll_s=0.05)
    handler = EvidenceRequestHandler(store, uploader, enabled=evidence.upload_on_request)
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite"))
    delivery = Delivery(AGENT, uplink, spool, HttpTransport(uplink, client=http), dead_letters=MemoryDeadLetters())
    delivery.set_evidence_wanted_handler(handler)
    uploader.start()
    try:
        body = search(client, world)
        before = client.get(view_url(body, wanted.sha256), headers=world.bearer("officer.an"))
        assert before.status_code == 404, "the agent has not uploaded it"

        asked = client.post(request_url(body, wanted.sha256), headers=world.bearer("officer.an"))
        assert asked.status_code == 202, asked.text
        assert (asked.json()["state"], asked.json()["agent_id"]) == ("requested", AGENT)
        again = client.post(request_url(body, wanted.sha256), headers=world.bearer("officer.an"))
        assert (again.status_code, again.json()["state"]) == (202, "already_requested")
        assert store.stats().pending == 0, "policy never: nothing listed before central asks"

        delivery.submit(HealthEvent(agent_id=AGENT, source_id="agent", time=dt.datetime.now(dt.UTC), state="live"))
        eventually("the ack's request reached the store", lambda: handler.stats().marked == 1)
        eventually("the uploader sent the requested keyframe", lambda: store.stats().requested_uploaded == 1)

        seen = client.get(view_url(body, wanted.sha256), headers=world.bearer("officer.an"))
        assert seen.status_code == 200, seen.text
        assert seen.content == wanted.image
        after = client.post(request_url(body, wanted.sha256), headers=world.bearer("officer.an"))
        assert (after.status_code, after.json()["state"]) == (200, "uploaded")
    finally:
        delivery.close(timeout=5)
        uploader.stop()
        store.close()
        spool.close()

    assert delivery.stats().evidence_wanted == 1
    assert store.stats().uploaded == 1, "only the requested keyframe left the box"
    requests = [r for r in audit_of(pg_dsn, "evidence_request") if r.target["sha256"] == wanted.sha256]
    assert [r.target["state"] for r in requests] == ["requested", "already_requested", "uploaded"]
    assert {(r.actor, r.role, r.reason) for r in requests} == {("officer.an", "police", requests[0].reason)}
    assert requests[0].reason is not None
    assert requests[0].reason.startswith("123/2025/QĐ-CA")
    stats = client.get("/api/v1/evidence/requests/stats", headers=world.bearer("auditor.dung"))
    assert stats.status_code == 200, stats.text
    assert stats.json()["fulfilled"] >= 1


def test_a_request_has_the_checks_of_a_view(client: TestClient, world: PoliceWorld, pg_dsn: str) -> None:
    body = search(client, world)
    sha = edge_pass(world, "cam-2").sha256
    others = search(client, world, "officer.binh")
    refused_before = len(audit_of(pg_dsn, "evidence_request"))

    assert client.post(request_url(body, sha)).status_code == 401
    operator = client.post(request_url(body, sha), headers=world.bearer("operator.chi"))
    assert operator.status_code == 403
    not_own = client.post(request_url(others, sha), headers=world.bearer("officer.an"))
    assert not_own.status_code == 403
    assert "another officer" in not_own.json()["detail"]
    no_search = client.post(
        f"/api/v1/plates/evidence/{sha}/request?search_id=999999", headers=world.bearer("officer.an")
    )
    assert no_search.status_code == 404
    unrelated = "0" * 64
    not_in_results = client.post(
        f"/api/v1/plates/evidence/{unrelated}/request?search_id={body['search_id']}", headers=world.bearer("officer.an")
    )
    assert not_in_results.status_code == 403
    assert len(audit_of(pg_dsn, "evidence_request")) == refused_before, "refusals write no evidence_request"


def test_an_agent_has_a_bounded_number_of_open_requests(client: TestClient, world: PoliceWorld) -> None:
    body = search(client, world)
    one = EvidenceRequestSettings(max_open_per_agent=1)
    client.app.dependency_overrides[get_evidence_request_settings] = lambda: one  # type: ignore[attr-defined]
    try:
        first = client.post(request_url(body, edge_pass(world, "cam-2").sha256), headers=world.bearer("officer.an"))
        assert first.status_code == 202, first.text
        second = client.post(request_url(body, edge_pass(world, "cam-3").sha256), headers=world.bearer("officer.an"))
        assert second.status_code == 429
        assert "open evidence requests" in second.json()["detail"]
        repeat = client.post(request_url(body, edge_pass(world, "cam-2").sha256), headers=world.bearer("officer.an"))
        assert repeat.status_code == 202, "a repeat of an open request is not a new one"
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_acks_carry_a_request_only_to_agents_that_announce_it_once_per_resend_interval(
    client: TestClient, world: PoliceWorld
) -> None:
    sha = edge_pass(world, UNREGISTERED_CAMERA).sha256
    body = search(client, world)
    assert client.post(request_url(body, sha), headers=world.bearer("officer.an")).status_code == 202

    older = send_batch(client, world, announce=False)
    assert "evidence_wanted" not in older, "an older agent refuses unknown ack fields: never sent to it"
    first = send_batch(client, world, announce=True)
    assert sha in first["evidence_wanted"]
    second = send_batch(client, world, announce=True)
    assert sha not in second.get("evidence_wanted", []), "not again within resend_after_s"

    with psycopg.connect(world.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE evidence_requests SET last_sent_at = last_sent_at - interval '1 hour' WHERE sha256 = %s", (sha,)
        )
        assert sha in send_batch(client, world, announce=True)["evidence_wanted"], "a lost ack is made good later"
        conn.execute(
            "UPDATE evidence_requests SET last_sent_at = NULL, requested_at = now() - interval '2 days',"
            " expires_at = now() - interval '1 day' WHERE sha256 = %s",
            (sha,),
        )
    assert sha not in send_batch(client, world, announce=True).get("evidence_wanted", []), "expired"
    stats = client.get("/api/v1/evidence/requests/stats", headers=world.bearer("auditor.dung")).json()
    assert stats["expired"] >= 1
