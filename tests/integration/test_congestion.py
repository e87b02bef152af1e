"""Congestion events (schema 1.4) stored by the writer, listed by /api/v1/congestion and ranked by hotspots."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.settings import Settings
from central_ingest.store.writer import store_events
from event_contract import CongestionEvent
from event_contract.traffic import CongestionLevel
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

T0 = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
MINUTE = dt.timedelta(minutes=1)


def _event(
    camera: str, zone: str, minutes: int, level: CongestionLevel, previous: CongestionLevel | None = None
) -> CongestionEvent:
    return CongestionEvent(
        agent_id="junctions",
        source_id=camera,
        zone_id=zone,
        time=T0 + minutes * MINUTE,
        level=level,
        previous_level=previous,
        window_s=60,
        vehicles=12,
        queue_length_ratio=0.5,
        occupancy=0.4,
        speed_ratio=None if level == "jammed" else 0.3,
    )


EVENTS = [
    # z1: heavy 10 min, jammed 10, moderate 10, heavy until the 15-minute hold runs out (no later report).
    _event("cam-1", "z1", 0, "heavy", "moderate"),
    _event("cam-1", "z1", 10, "jammed", "heavy"),
    _event("cam-1", "z1", 20, "moderate", "jammed"),
    _event("cam-1", "z1", 30, "heavy", "moderate"),
    # z2: jammed since before the range (its level at the start), free from minute 5.
    _event("cam-2", "z2", -5, "jammed"),
    _event("cam-2", "z2", 5, "free", "jammed"),
    # z3: never congested.
    _event("cam-2", "z3", 1, "free"),
]


@pytest.fixture(scope="module")
def client(pg_dsn: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=pg_dsn, maintenance_enabled=False))) as test_client:
        test_client.headers.update(api_headers(pg_dsn))  # an operator: the read APIs need a session

        async def store() -> int:
            async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
                first = await store_events(conn, EVENTS, agent_id="junctions")
                again = await store_events(conn, EVENTS, agent_id="junctions")  # idempotent
                assert (again.stored, again.duplicates) == (0, len(EVENTS))
                return first.stored

        assert asyncio.run(store()) == len(EVENTS)
        yield test_client


def _range(minutes: int = 60) -> dict[str, str]:
    return {"start": T0.isoformat(), "end": (T0 + minutes * MINUTE).isoformat()}


def test_congestion_events_are_listed_newest_first_with_their_measures(client: TestClient) -> None:
    page = client.get("/api/v1/congestion", params={**_range(), "source_id": "cam-1", "limit": 3}).json()
    assert [item["level"] for item in page["items"]] == ["heavy", "moderate", "jammed"]
    first = page["items"][0]
    assert (first["zone_id"], first["previous_level"], first["window_s"], first["vehicles"]) == (
        "z1",
        "moderate",
        60,
        12,
    )
    assert first["speed_ratio"] == pytest.approx(0.3)
    rest = client.get("/api/v1/congestion", params={**_range(), "source_id": "cam-1", "cursor": page["next_cursor"]})
    assert [item["level"] for item in rest.json()["items"]] == ["heavy"]
    jammed = client.get("/api/v1/congestion", params={**_range(), "level": "jammed"}).json()["items"]
    assert [(item["zone_id"], item["speed_ratio"]) for item in jammed] == [("z1", None)]
    assert client.get("/api/v1/congestion", params={"level": "gridlock"}).status_code == 422


def test_hotspots_rank_zones_by_time_spent_heavy_or_jammed(client: TestClient) -> None:
    answer = client.get("/api/v1/congestion/hotspots", params=_range())
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [(i["source_id"], i["zone_id"]) for i in items] == [("cam-1", "z1"), ("cam-2", "z2")]
    z1, z2 = items
    assert (z1["heavy_s"], z1["jammed_s"], z1["congested_s"], z1["observed_s"]) == (1500, 600, 2100, 2700)
    assert z1["congested_share"] == pytest.approx(2100 / 2700)
    assert z1["episodes"] == 2
    assert (z2["jammed_s"], z2["congested_s"], z2["observed_s"], z2["episodes"]) == (300, 300, 1200, 0)
    shorter_hold = client.get("/api/v1/congestion/hotspots", params={**_range(), "max_gap_s": 300}).json()["items"]
    assert (shorter_hold[0]["heavy_s"], shorter_hold[0]["jammed_s"]) == (300 + 300, 300)  # each report holds 5 min
    only_cam_2 = client.get("/api/v1/congestion/hotspots", params={**_range(), "source_id": "cam-2"}).json()["items"]
    assert [i["zone_id"] for i in only_cam_2] == ["z2"]


def test_hotspot_ranges_are_checked(client: TestClient) -> None:
    too_long = {"start": (T0 - dt.timedelta(days=500)).isoformat(), "end": T0.isoformat()}
    answer = client.get("/api/v1/congestion/hotspots", params=too_long)
    assert answer.status_code == 422
    assert "400 days" in answer.json()["detail"]
