"""A police officer scoped to one commune searches only its cameras' passes, even when another agent in another
commune has a camera with the same id: those passes are never read, so never decrypted or counted."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.plates.search import PassQuery, search_passes
from central_ingest.sites.config import SiteConfig
from central_ingest.sites.store import import_sites
from central_ingest.store.writer import store_events
from event_contract import PlatePassEvent
from tests.integration.test_police_search_support import AGENT, TARGET, Pass, build_world

pytestmark = pytest.mark.integration

OTHER_AGENT = "agent-kim-long"


def test_a_commune_officer_reads_no_pass_of_a_same_id_camera_elsewhere(pg_dsn: str, tmp_path: Path) -> None:
    world = build_world(pg_dsn, tmp_path, passes=[Pass(TARGET, "cam-1", 60)])
    elsewhere = PlatePassEvent(
        agent_id=OTHER_AGENT,
        source_id="cam-1",  # the same camera id, another agent, another commune
        time=world.now - dt.timedelta(minutes=30),
        plate=TARGET,
        plate_confidence=0.9,
        track_id=7,
        direction="in",
        vehicle_class="car",
    )

    async def store_elsewhere() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await store_events(conn, [elsewhere], vault=world.vault)

    asyncio.run(store_elsewhere())
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        import_sites(
            conn,
            [SiteConfig(id="cam-1", agent_id=OTHER_AGENT, name="Kim Long", lat=16.458, lon=107.551, province="Huế",
                        commune="Kim Long")],
        )  # fmt: skip
        conn.execute(
            "UPDATE camera_sites SET province = 'Huế', commune = 'Phú Hội' WHERE agent_id = %s AND id = 'cam-1'",
            (AGENT,),
        )
        conn.execute("UPDATE users SET areas = %s WHERE username = 'officer.an'", (["Huế/Phú Hội"],))
    body = world.search_body()
    with TestClient(create_app(world.settings), base_url="https://testserver") as client:
        scoped = client.post("/api/v1/plates/search", json=body, headers=world.bearer("officer.an")).json()
        province = client.post("/api/v1/plates/search", json=body, headers=world.bearer("officer.binh")).json()
    assert [(r["agent_id"], r["source_id"]) for r in province["records"]] == [(OTHER_AGENT, "cam-1"), (AGENT, "cam-1")]
    assert [(r["agent_id"], r["source_id"]) for r in scoped["records"]] == [(AGENT, "cam-1")]

    async def checked(visible: frozenset[tuple[str, str]] | None) -> int:
        query = PassQuery(plate=TARGET, since=world.now - dt.timedelta(days=1), until=world.now)
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            result = await search_passes(conn, world.vault, query, visible=visible)
        return result.candidates_checked

    # Only its own camera's row is read and decrypted (exact and partial searches share the camera filter).
    assert asyncio.run(checked(frozenset({(AGENT, "cam-1")}))) == 1
    assert asyncio.run(checked(None)) == 2
