"""Schema 1.5 construction-site events through the real HTTP endpoint into TimescaleDB, exactly once: the
``site_activity`` windows and the measurement details of camera progress estimates; and their retention
(site activity by its own period; timelapse keyframes kept as long as a progress row references them)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.plates.evidence_store import load_evidence, store_evidence
from central_ingest.plates.keyring import new_keyring, write_keyring_file
from central_ingest.plates.vault import vault_from_settings
from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.agents import add_agent
from central_ingest.store.retention import apply_retention, evidence_target, plan, raw_targets
from central_ingest.store.writer import store_events
from event_contract import EventBatch, EvidenceRef, ProgressEvent, SiteActivityEvent

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def settings(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    keys = tmp_path_factory.mktemp("keys") / "plate_keys.json"
    write_keyring_file(keys, new_keyring())
    return Settings(database_url=pg_dsn, pool_max_size=4, plate_keys_file=keys, maintenance_enabled=False)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def agent(pg_dsn: str, client: TestClient) -> tuple[str, str]:
    agent_id = f"site-{next(_numbers)}"
    with psycopg.connect(pg_dsn) as conn:
        return agent_id, add_agent(conn, agent_id)


def activity(agent_id: str, hour: int, *, zone: str = "bai-dao", trucks: bool = True) -> SiteActivityEvent:
    start = NOW - dt.timedelta(hours=hour + 1)
    return SiteActivityEvent(
        agent_id=agent_id,
        source_id="cam-cong-truong",
        time=start + dt.timedelta(hours=1),
        start=start,
        project_id="cau-vy-da",
        zone_id=zone,
        frames=360,
        covered_s=3600.0,
        activity_index=0.5,
        active_s=1800.0,
        mean_present={"worker": 3.25, "machine": 1.0, **({"truck": 0.5} if trucks else {})},
        peak_present={"worker": 7, "machine": 2, **({"truck": 1} if trucks else {})},
    )


def estimate(agent_id: str, days_ago: int, sha256: str | None = None) -> ProgressEvent:
    time = NOW - dt.timedelta(days=days_ago)
    evidence = () if sha256 is None else (EvidenceRef(kind="keyframe", uri=f"tl/{sha256}.jpg", sha256=sha256),)
    return ProgressEvent(
        agent_id=agent_id,
        source_id="cam-cong-truong",
        time=time,
        project_id="cau-vy-da",
        package_id="mong",
        percent_complete=41.5,
        method="camera_visual",
        confidence=0.8,
        raw_percent=43.0,
        frames_used=40,
        frames_rejected=12,
        quality=0.82,
        evidence=evidence,
    )


def post(client: TestClient, token: str, agent_id: str, events: list[Any]) -> dict[str, Any]:
    body = EventBatch(agent_id=agent_id, events=tuple(events)).model_dump_json()
    answer = client.post("/api/v1/events", content=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    ack: dict[str, Any] = answer.json()
    return ack


def query(dsn: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(statement, params).fetchall()


def test_site_activity_and_progress_details_are_stored_once(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    second, first = activity(agent_id, 1), activity(agent_id, 2, trucks=False)
    events = [second, first, estimate(agent_id, 0)]
    acks = [post(client, token, agent_id, events) for _ in range(2)]
    assert [(a["stored"], a["duplicates"], a["rejected"]) for a in acks] == [(3, 0, 0), (0, 3, 0)]

    rows = query(
        pg_dsn,
        "SELECT start, zone_id, frames, covered_s, activity_index, active_s, mean_workers, mean_machines, mean_trucks, "
        "peak_workers, peak_machines, peak_trucks, schema_version FROM site_activity WHERE agent_id = %s "
        "ORDER BY start",
        agent_id,
    )
    assert rows == [
        (first.start, "bai-dao", 360, 3600.0, 0.5, 1800.0, 3.25, 1.0, None, 7, 2, None, "1.5"),
        (second.start, "bai-dao", 360, 3600.0, 0.5, 1800.0, 3.25, 1.0, 0.5, 7, 2, 1, "1.5"),
    ]
    details = query(
        pg_dsn,
        "SELECT package_id, percent_complete, raw_percent, frames_used, frames_rejected, quality FROM progress "
        "WHERE agent_id = %s",
        agent_id,
    )
    assert details == [("mong", 41.5, 43.0, 40, 12, 0.82)]
    families = query(pg_dsn, "SELECT family FROM source_last_seen WHERE agent_id = %s ORDER BY 1", agent_id)
    assert families == [("progress",), ("site_activity",)]


def test_a_half_old_batch_stores_only_the_new_windows(pg_dsn: str, client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    old = [activity(agent_id, 3)]
    assert post(client, token, agent_id, old)["stored"] == 1
    ack = post(client, token, agent_id, [*old, activity(agent_id, 4), activity(agent_id, 4, zone="bai-xe")])
    assert (ack["stored"], ack["duplicates"]) == (2, 1)
    assert query(pg_dsn, "SELECT count(*) FROM site_activity WHERE agent_id = %s", agent_id) == [(3,)]


def test_older_than_its_retention_is_refused_at_ingest(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    old = activity(agent_id, 24 * 731)
    ack = post(client, token, agent_id, [old])
    assert (ack["stored"], ack["rejected"]) == (0, 1)


def jpeg_like(seed: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes([seed]) * 64


def test_retention_drops_old_activity_and_keeps_keyframes_a_progress_row_references(
    pg_dsn: str, settings: Settings, tmp_path: Path
) -> None:
    vault = vault_from_settings(settings)
    assert vault is not None
    kept, dropped = jpeg_like(1), jpeg_like(2)
    kept_sha, dropped_sha = hashlib.sha256(kept).hexdigest(), hashlib.sha256(dropped).hexdigest()
    retention = RetentionSettings()
    ancient = activity("ret-agent", 24 * (retention.site_activity_days + 45))
    recent = activity("ret-agent", 24 * (retention.site_activity_days - 45))

    async def run() -> tuple[Any, ...]:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            old_time = NOW - dt.timedelta(days=retention.plate_passes_days + 20)
            await store_events(
                conn, [ancient, recent, estimate("ret-agent", retention.plate_passes_days + 20, kept_sha)]
            )
            for data, sha in ((kept, kept_sha), (dropped, dropped_sha)):
                await store_evidence(
                    conn, vault, agent_id="ret-agent", sha256=sha, content_type="image/jpeg", time=old_time, data=data
                )
            targets = tuple(t for t in raw_targets(retention) if t.table == "site_activity")
            report = await apply_retention(conn, plan((*targets, evidence_target(retention)), NOW))
            return report, await load_evidence(conn, vault, kept_sha), await load_evidence(conn, vault, dropped_sha)

    report, kept_now, dropped_now = asyncio.run(run())
    assert [t.table for t in report.tables] == ["site_activity", "evidence_blobs"]
    assert report.tables[0].dropped_chunks
    starts = query(pg_dsn, "SELECT start FROM site_activity WHERE agent_id = 'ret-agent'")
    assert starts == [(recent.start,)]
    assert kept_now == ("image/jpeg", kept)  # a timelapse keyframe outlives the plate-pass period
    assert dropped_now is None
    assert report.tables[1].deleted_rows == 1
