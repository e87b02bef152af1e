"""``GET /api/v1/sites`` on the real app: the registered sites with their coordinates, for any signed-in user,
limited to the user's area scope."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from tests.integration.test_police_search_support import AGENT, SITES, USERS, PoliceWorld, build_world

pytestmark = pytest.mark.integration


def test_sites_for_any_signed_in_user_in_their_area(pg_dsn: str, tmp_path: Path) -> None:
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
                    "province": None,
                    "district": None,
                    "commune": None,
                    "area_path": None,
                    # No preview_url or live_url: browsers never reach an agent (the live view goes through central).
                    "project_id": site.project_id,
                }
                for site in sorted(SITES, key=lambda s: s.id)
            ]

    _a_commune_user_sees_only_its_communes_sites(pg_dsn, world)


def _a_commune_user_sees_only_its_communes_sites(pg_dsn: str, world: PoliceWorld) -> None:
    places = {"cam-1": "Phú Hội", "cam-2": "Phú Hội", "cam-3": "Kim Long"}
    scoped, province = sorted(USERS)[:2]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for site_id, commune in places.items():
            conn.execute(
                "UPDATE camera_sites SET province = 'Huế', commune = %s WHERE agent_id = %s AND id = %s",
                (commune, AGENT, site_id),
            )
        conn.execute("UPDATE users SET areas = %s WHERE username = %s", (["Huế / Phú Hội"], scoped))
    try:
        with TestClient(create_app(world.settings), base_url="https://testserver") as client:
            mine = client.get("/api/v1/sites", headers=world.bearer(scoped)).json()
            everything = client.get("/api/v1/sites", headers=world.bearer(province)).json()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("UPDATE users SET areas = NULL")
    assert [(s["id"], s["area_path"]) for s in mine] == [("cam-1", "Huế/Phú Hội"), ("cam-2", "Huế/Phú Hội")]
    # The sensor has no place: only users of the whole province see it.
    assert [s["id"] for s in everything] == ["cam-1", "cam-2", "cam-3", "tram-1"]
