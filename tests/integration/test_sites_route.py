"""``GET /api/v1/sites`` on the real app: every registered site with its coordinates, for any signed-in user."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from tests.integration.test_police_search_support import AGENT, SITES, USERS, build_world

pytestmark = pytest.mark.integration


def test_sites_for_any_signed_in_user(pg_dsn: str, tmp_path: Path) -> None:
    world = build_world(pg_dsn, tmp_path, passes=[])
    with TestClient(create_app(world.settings), base_url="https://testserver") as client:
        assert client.get("/api/v1/sites").status_code == 401
        for user in USERS:
            answer = client.get("/api/v1/sites", headers=world.bearer(user))
            assert answer.status_code == 200, answer.text
            assert answer.json() == [
                {
                    "agent_id": AGENT,
                    "id": site.id,
                    "kind": site.kind,
                    "name": site.name,
                    "lat": site.lat,
                    "lon": site.lon,
                    "area": site.area,
                    "preview_url": site.preview_url,
                    "project_id": site.project_id,
                }
                for site in sorted(SITES, key=lambda s: s.id)
            ]
