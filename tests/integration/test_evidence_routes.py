"""Evidence images on the real app and TimescaleDB: agents upload them (``PUT /api/v1/evidence/{sha256}``),
officers see them only through a search of their own that returned them (``GET /api/v1/plates/evidence``),
and each view is audited."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.audit import AuditFilter, AuditRecord, list_audit
from central_ingest.plates.evidence_store import load_evidence
from central_ingest.plates.police_settings import PoliceSettings
from central_ingest.plates.routes import get_police_settings
from tests.integration.test_police_search_support import (
    OTHER,
    TARGET,
    UNREGISTERED_CAMERA,
    PoliceWorld,
    build_world,
    plate_image,
)

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def world(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> PoliceWorld:
    return build_world(pg_dsn, tmp_path_factory.mktemp("evidence"))


@pytest.fixture(scope="module")
def client(world: PoliceWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.settings), base_url="https://testserver") as test_client:
        yield test_client


def audit_of(dsn: str, action: str) -> list[AuditRecord]:
    async def read() -> list[AuditRecord]:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return await list_audit(conn, AuditFilter(action=action), 10_000)

    return asyncio.run(read())


def stored(world: PoliceWorld, sha256: str) -> tuple[str, bytes] | None:
    async def read() -> tuple[str, bytes] | None:
        async with await psycopg.AsyncConnection.connect(world.settings.database_url) as conn:
            return await load_evidence(conn, world.vault, sha256)

    return asyncio.run(read())


def put(client: TestClient, world: PoliceWorld, sha256: str, data: bytes, **headers: str) -> Any:
    auth = {"Authorization": f"Bearer {world.agent_token}"}
    return client.put(f"/api/v1/evidence/{sha256}", content=data, headers={**auth, **headers})


def search(client: TestClient, world: PoliceWorld, user: str = "officer.an", **fields: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/plates/search", json=world.search_body(**fields), headers=world.bearer(user))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_agent_upload_is_checked_and_idempotent(client: TestClient, world: PoliceWorld) -> None:
    image = plate_image("43A-555.55", 99)
    sha = hashlib.sha256(image).hexdigest()
    created = put(client, world, sha, image, **{"Content-Type": "image/jpeg"})
    assert created.status_code == 201, created.text
    assert created.json() == {"sha256": sha, "stored": True, "content_type": "image/jpeg"}
    again = put(client, world, sha, image)
    assert (again.status_code, again.json()["stored"]) == (200, False)
    assert stored(world, sha) == ("image/jpeg", image)

    png_sha = hashlib.sha256(PNG).hexdigest()
    assert put(client, world, png_sha, PNG, **{"Content-Type": "image/png"}).status_code == 201
    assert stored(world, png_sha) == ("image/png", PNG)


def test_bad_uploads_are_refused(client: TestClient, world: PoliceWorld) -> None:
    image = plate_image("43A-666.66", 98)
    sha = hashlib.sha256(image).hexdigest()
    wrong = hashlib.sha256(b"something else").hexdigest()
    mismatch = put(client, world, wrong, image)
    assert mismatch.status_code == 422
    assert "SHA-256" in mismatch.json()["detail"]
    assert stored(world, wrong) is None

    not_image = b"GIF89a" + b"\x00" * 32
    assert put(client, world, hashlib.sha256(not_image).hexdigest(), not_image).status_code == 415
    lying = put(client, world, sha, image, **{"Content-Type": "image/png"})
    assert lying.status_code == 415
    assert "image/jpeg" in lying.json()["detail"]
    big = b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024)
    assert put(client, world, hashlib.sha256(big).hexdigest(), big).status_code == 413
    assert client.put(f"/api/v1/evidence/{sha}", content=image).status_code == 401
    assert (
        client.put(f"/api/v1/evidence/{sha}", content=image, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    # A police session is not an agent token.
    assert client.put(f"/api/v1/evidence/{sha}", content=image, headers=world.bearer("officer.an")).status_code == 401
    assert put(client, world, sha.upper(), image).status_code == 422  # digests are lower-case hex
    assert put(client, world, sha, image, **{"Content-Type": "image/jpeg"}).status_code == 201  # still storable


def test_police_view_through_own_search_is_audited(client: TestClient, world: PoliceWorld, pg_dsn: str) -> None:
    body = search(client, world)
    newest = world.of(TARGET)[1]  # [0] is the pass whose image was never uploaded
    url = next(e["url"] for r in body["records"] for e in r["evidence"] if e["sha256"] == newest.sha256)
    views_before = audit_of(pg_dsn, "evidence_view")

    answer = client.get(url, headers=world.bearer("officer.an"))
    assert answer.status_code == 200, answer.text
    assert answer.content == newest.image
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"

    views = audit_of(pg_dsn, "evidence_view")
    assert len(views) == len(views_before) + 1
    view = views[-1]
    assert (view.actor, view.role, view.result_count) == ("officer.an", "police", 1)
    assert view.target == {
        "sha256": newest.sha256,
        "search_id": body["search_id"],
        "event_id": str(newest.event.event_id) if newest.event else None,
    }
    assert view.reason is not None
    assert view.reason.startswith("123/2025/QĐ-CA: ")


def test_view_refusals(client: TestClient, world: PoliceWorld, pg_dsn: str) -> None:
    body = search(client, world)
    sid = body["search_id"]
    pass_ = world.of(TARGET)[1]
    url = f"/api/v1/plates/evidence/{pass_.sha256}?search_id={sid}"
    views_before = audit_of(pg_dsn, "evidence_view")

    def refused(status: int, target: str, user: str | None = "officer.an", phrase: str = "") -> None:
        headers = world.bearer(user) if user else {}
        answer = client.get(target, headers=headers)
        assert answer.status_code == status, (target, user, answer.headers["content-type"])
        assert phrase in answer.json()["detail"]
        assert not answer.headers["content-type"].startswith("image/")

    refused(401, url, user=None)
    refused(403, url, user="operator.chi")
    refused(403, url, user="officer.binh", phrase="another officer")
    # An image that exists but that this search did not return (another plate's pass).
    other = world.of(OTHER)[0]
    refused(403, f"/api/v1/plates/evidence/{other.sha256}?search_id={sid}", phrase="not among the results")
    # A camera filter that excluded the pass: the re-run search decides, not the client's claim.
    assert pass_.camera == "cam-3"
    narrow = search(client, world, source_ids=["cam-1"])
    refused(403, f"/api/v1/plates/evidence/{pass_.sha256}?search_id={narrow['search_id']}", phrase="not among")
    # No such search; an audit record that is not a search.
    refused(404, f"/api/v1/plates/evidence/{pass_.sha256}?search_id=999999", phrase="no search")
    refused(404, f"/api/v1/plates/evidence/{pass_.sha256}?search_id=1", phrase="no search")  # user_created
    # Returned by the search but never uploaded by the agent.
    missing = world.of(TARGET)[0]
    assert missing.camera == UNREGISTERED_CAMERA
    refused(404, f"/api/v1/plates/evidence/{missing.sha256}?search_id={sid}", phrase="not uploaded")
    assert client.get(f"/api/v1/plates/evidence/{pass_.sha256}", headers=world.bearer("officer.an")).status_code == 422
    assert (
        client.get(f"/api/v1/plates/evidence/xyz?search_id={sid}", headers=world.bearer("officer.an")).status_code
        == 422
    )
    assert audit_of(pg_dsn, "evidence_view") == views_before


def test_old_search_no_longer_opens_evidence(client: TestClient, world: PoliceWorld) -> None:
    body = search(client, world)
    pass_ = world.of(TARGET)[1]
    url = f"/api/v1/plates/evidence/{pass_.sha256}?search_id={body['search_id']}"
    assert client.get(url, headers=world.bearer("officer.an")).status_code == 200
    app = client.app
    assert hasattr(app, "dependency_overrides")
    app.dependency_overrides[get_police_settings] = lambda: PoliceSettings(evidence_view_hours=0.00001)  # 36 ms
    try:
        time.sleep(0.05)
        answer = client.get(url, headers=world.bearer("officer.an"))
    finally:
        app.dependency_overrides.clear()
    assert answer.status_code == 403
    assert "search again" in answer.json()["detail"]
