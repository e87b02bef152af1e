"""Central ingest against a real TimescaleDB: schema, idempotent storage, auth, queries, page.

Every test makes its own agent (and so its own rows), so the tests share one
database per module without depending on each other's data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.agents import add_agent, revoke_agent
from central_ingest.store.migrate import apply_migrations, available_migrations
from central_ingest.store.queries import QUALITY_FIELDS
from central_ingest.store.writer import store_events
from event_contract import CountBucket, CountIntervalEvent, EventBatch, HealthEvent
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

# The fixed dates below are years old: keep them storable (clock sanity refuses events older than retention).
KEEP_OLD_TEST_DATA = RetentionSettings(counts_days=36_500, health_days=36_500)

T0 = dt.datetime(2025, 5, 1, 0, 0, tzinfo=dt.UTC)
_agent_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def client(pg_dsn: str) -> Iterator[TestClient]:
    settings = Settings(database_url=pg_dsn, retention=KEEP_OLD_TEST_DATA, max_body_bytes=256 * 1024, pool_max_size=4)
    with TestClient(create_app(settings)) as test_client:
        test_client.headers.update(api_headers(pg_dsn))  # an operator: the read APIs need a session
        yield test_client


@pytest.fixture
def agent(pg_dsn: str, client: TestClient) -> tuple[str, str]:
    """A fresh agent id and its token (the client fixture has migrated the schema)."""
    agent_id = f"agent-{next(_agent_numbers)}"
    with psycopg.connect(pg_dsn) as conn:
        return agent_id, add_agent(conn, agent_id)


def _interval(
    agent_id: str, minute: int, counts: dict[tuple[str, str], int], source_id: str = "cam-1"
) -> CountIntervalEvent:
    return CountIntervalEvent(
        agent_id=agent_id,
        source_id=source_id,
        line_id="line-1",
        time=T0 + dt.timedelta(minutes=minute),
        interval_s=60,
        counts=tuple(
            CountBucket(vehicle_class=cls, direction=direction, count=n) for (cls, direction), n in counts.items()
        ),
    )


def _health(agent_id: str, minute: int) -> HealthEvent:
    return HealthEvent(
        agent_id=agent_id,
        source_id="cam-1",
        time=T0 + dt.timedelta(minutes=minute),
        state="live",
        frames_decoded=1500,
        fps=24.5,
    )


def _batch_bytes(agent_id: str, events: list[CountIntervalEvent | HealthEvent]) -> bytes:
    return EventBatch(agent_id=agent_id, events=tuple(events)).model_dump_json().encode()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rows(dsn: str, agent_id: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE agent_id = %s", (agent_id,)).fetchone()[0]  # type: ignore[index]
            for table in ("count_intervals", "line_counts", "health")
        }


def test_migrations_make_hypertables_and_run_once(pg_dsn: str, client: TestClient) -> None:
    assert apply_migrations(pg_dsn) == []  # the app applied them at start
    assert apply_migrations(pg_dsn) == []
    with psycopg.connect(pg_dsn) as conn:
        hypertables = conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
        ).fetchall()
        intervals: dict[str, dt.timedelta] = dict(
            conn.execute(
                "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions "
                "WHERE column_name = 'time'"
            ).fetchall()
        )
        ledger = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    families = {
        "count_intervals",
        "health",
        "line_counts",
        "plate_passes",
        "progress",
        "sensor_readings",
        "violations",
        "zone_class_counts",
        "zone_intervals",
    }
    assert families <= {name for (name,) in hypertables}
    assert {name: intervals[name] for name in families} == {
        name: dt.timedelta(days=30 if name == "progress" else 1) for name in families
    }
    assert [v for (v,) in ledger] == [m.version for m in available_migrations()]
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/healthz").status_code == 200


def test_same_batch_twice_is_stored_once(pg_dsn: str, client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    events: list[CountIntervalEvent | HealthEvent] = [
        _interval(agent_id, m, {("motorbike", "in"): m, ("car", "out"): 1}) for m in range(30)
    ]
    events += [_interval(agent_id, 30, {}), _health(agent_id, 0)]  # a quiet interval is stored too
    body = _batch_bytes(agent_id, events)

    first = client.post("/api/v1/events", content=body, headers=_auth(token))
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 32, "stored": 32, "duplicates": 0, "rejected": 0, "rejections": []}
    second = client.post("/api/v1/events", content=body, headers=_auth(token))
    assert second.json() == {"received": 32, "stored": 0, "duplicates": 32, "rejected": 0, "rejections": []}
    assert _rows(pg_dsn, agent_id) == {"count_intervals": 31, "line_counts": 60, "health": 1}


def test_racing_identical_batches_store_each_event_once(pg_dsn: str, client: TestClient) -> None:
    agent_id = f"agent-{next(_agent_numbers)}"
    events = [_interval(agent_id, m, {("bus", "in"): 2, ("truck", "out"): 3}) for m in range(200)]
    events.append(events[0])  # the same event twice in one batch is a duplicate too

    async def race() -> list[tuple[int, int]]:
        conns = [await psycopg.AsyncConnection.connect(pg_dsn) for _ in range(4)]
        try:
            results = await asyncio.gather(*(store_events(conn, events) for conn in conns))
        finally:
            for conn in conns:
                await conn.close()
        return [(r.stored, r.duplicates) for r in results]

    results = asyncio.run(race())
    assert sum(stored for stored, _ in results) == 200
    assert sum(duplicates for _, duplicates in results) == 4 * 201 - 200
    assert _rows(pg_dsn, agent_id) == {"count_intervals": 200, "line_counts": 400, "health": 0}


def test_bad_event_is_refused_alone_and_kept_as_a_dead_letter(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    good = [json.loads(_interval(agent_id, m, {("car", "in"): 1}).model_dump_json()) for m in range(50)]
    bad = json.loads(_interval(agent_id, 50, {("car", "in"): 1}).model_dump_json())
    bad["counts"][0]["count"] = -5
    body = json.dumps({"agent_id": agent_id, "events": [*good, bad]}).encode()

    response = client.post("/api/v1/events", content=body, headers=_auth(token))
    assert response.status_code == 200, response.text
    reason = "counts.0.count: Input should be greater than or equal to 0"
    assert response.json() == {
        "received": 51,
        "stored": 50,
        "duplicates": 0,
        "rejected": 1,
        "rejections": [{"index": 50, "event_id": bad["event_id"], "reason": reason}],
    }
    assert _rows(pg_dsn, agent_id) == {"count_intervals": 50, "line_counts": 50, "health": 0}

    not_json = client.post("/api/v1/events", content=b'{"agent_id": ', headers=_auth(token))
    assert not_json.status_code == 422
    assert "Invalid JSON" in not_json.json()["detail"]

    with psycopg.connect(pg_dsn) as conn:
        letters = conn.execute(
            "SELECT channel, position, event_id, reason, payload FROM dead_letters WHERE agent_id = %s ORDER BY id",
            (agent_id,),
        ).fetchall()
        stats = conn.execute(
            "SELECT batches, events_stored, events_duplicate, events_rejected FROM agent_ingest_stats "
            "WHERE agent_id = %s",
            (agent_id,),
        ).fetchone()
    assert [(c, pos, eid, r) for c, pos, eid, r, _ in letters] == [
        ("http", 50, bad["event_id"], reason),
        ("http", None, None, letters[1][3]),
    ]
    assert json.loads(letters[0][4]) == bad
    assert letters[1][3].startswith("invalid batch, 1 error(s): (batch): Invalid JSON")
    assert bytes(letters[1][4]) == b'{"agent_id": '
    assert stats == (2, 50, 0, 2)

    listed = client.get("/api/v1/ingest/dead-letters", params={"agent_id": agent_id, "limit": 1}).json()
    assert [(i["position"], i["payload_bytes"]) for i in listed["items"]] == [(None, len(b'{"agent_id": '))]
    older = client.get(
        "/api/v1/ingest/dead-letters", params={"agent_id": agent_id, "before_id": listed["next_before_id"]}
    ).json()
    assert [(i["position"], i["reason"]) for i in older["items"]] == [(50, reason)]
    assert older["next_before_id"] is None
    assert "payload" not in older["items"][0]  # raw payloads may hold personal data: not served here
    totals = {row["agent_id"]: row for row in client.get("/api/v1/ingest/agents").json()}
    assert (totals[agent_id]["events_stored"], totals[agent_id]["events_rejected"]) == (50, 2)


def test_events_from_a_wrong_clock_are_refused_with_reasons(
    pg_dsn: str, client: TestClient, agent: tuple[str, str]
) -> None:
    agent_id, token = agent
    now = dt.datetime.now(dt.UTC)
    events: list[CountIntervalEvent | HealthEvent] = [
        HealthEvent(agent_id=agent_id, source_id="cam-1", time=now, state="live"),
        HealthEvent(agent_id=agent_id, source_id="cam-1", time=now + dt.timedelta(minutes=11), state="live"),
    ]
    response = client.post("/api/v1/events", content=_batch_bytes(agent_id, events), headers=_auth(token))
    assert response.status_code == 200
    ack = response.json()
    assert (ack["stored"], ack["rejected"], ack["rejections"][0]["index"]) == (1, 1, 1)
    assert "ahead of central's clock (at most 600 s allowed)" in ack["rejections"][0]["reason"]


def test_missing_unknown_and_foreign_tokens(pg_dsn: str, client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    other_id, other_token = f"agent-{next(_agent_numbers)}", ""
    with psycopg.connect(pg_dsn) as conn:
        other_token = add_agent(conn, other_id)
    body = _batch_bytes(agent_id, [_interval(agent_id, 0, {("car", "in"): 1})])

    missing = client.post("/api/v1/events", content=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert client.post("/api/v1/events", content=body, headers=_auth(token + "x")).status_code == 401
    assert client.post("/api/v1/events", content=body, headers={"Authorization": token}).status_code == 401
    foreign = client.post("/api/v1/events", content=body, headers=_auth(other_token))
    assert foreign.status_code == 403
    assert other_id in foreign.json()["detail"]
    assert _rows(pg_dsn, agent_id)["count_intervals"] == 0


def test_revoked_token_is_refused(pg_dsn: str, client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    body = _batch_bytes(agent_id, [_interval(agent_id, 0, {("car", "in"): 1})])
    assert client.post("/api/v1/events", content=body, headers=_auth(token)).status_code == 200
    with psycopg.connect(pg_dsn) as conn:
        revoke_agent(conn, agent_id)
    body = _batch_bytes(agent_id, [_interval(agent_id, 1, {("car", "in"): 1})])
    assert client.post("/api/v1/events", content=body, headers=_auth(token)).status_code == 401
    with psycopg.connect(pg_dsn) as conn:
        new_token = add_agent(conn, agent_id, rotate=True)
    assert client.post("/api/v1/events", content=body, headers=_auth(token)).status_code == 401
    assert client.post("/api/v1/events", content=body, headers=_auth(new_token)).status_code == 200


def test_gzip_body_and_size_limits(pg_dsn: str, client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    body = _batch_bytes(agent_id, [_interval(agent_id, m, {("van", "in"): 4}) for m in range(10)])
    gzip_headers = _auth(token) | {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = client.post("/api/v1/events", content=gzip.compress(body), headers=gzip_headers)
    assert response.json() == {"received": 10, "stored": 10, "duplicates": 0, "rejected": 0, "rejections": []}

    # Whitespace inflates the JSON past the 256 KiB limit only once decompressed.
    padded = body[:-1] + b" " * (300 * 1024) + b"}"
    bomb = client.post("/api/v1/events", content=gzip.compress(padded), headers=gzip_headers)
    assert bomb.status_code == 413
    assert client.post("/api/v1/events", content=padded, headers=_auth(token)).status_code == 413
    brotli = client.post("/api/v1/events", content=body, headers=_auth(token) | {"Content-Encoding": "br"})
    assert brotli.status_code == 415
    assert _rows(pg_dsn, agent_id)["count_intervals"] == 10


def _store_pattern(client: TestClient, agent_id: str, token: str, source_id: str) -> list[CountIntervalEvent]:
    """Three hours of one-minute intervals with counts that differ per minute, class and direction."""
    events = [
        _interval(
            agent_id,
            minute,
            {("motorbike", "in"): minute % 7, ("motorbike", "out"): minute % 3, ("car", "in"): minute % 2},
            source_id=source_id,
        )
        for minute in range(180)
    ]
    response = client.post("/api/v1/events", content=_batch_bytes(agent_id, list(events)), headers=_auth(token))
    assert response.json()["stored"] == 180
    return events


def test_counts_per_bucket_class_and_direction(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    events = _store_pattern(client, agent_id, token, source_id="cam-counts")
    expected: Counter[tuple[str, str, str]] = Counter()
    for event in events:
        hour = event.time.replace(minute=0).isoformat()
        for b in event.counts:
            if b.count:
                expected[(hour, b.vehicle_class, b.direction)] += b.count

    params: dict[str, Any] = {
        "source_id": "cam-counts",
        "start": T0.isoformat(),
        "end": (T0 + dt.timedelta(hours=3)).isoformat(),
        "bucket": "1h",
        "group_by": "vehicle_class,direction",
    }
    rows = client.get("/api/v1/counts", params=params).json()
    got = {(r["bucket"], r["vehicle_class"], r["direction"]): r["count"] for r in rows}
    assert {k: v for k, v in got.items() if v} == dict(expected)
    assert len(got) == 3 * 3  # 3 hours x 3 (class, direction) pairs

    only_in = client.get("/api/v1/counts", params=params | {"direction": "in", "group_by": []}).json()
    assert [r["count"] for r in only_in] == [
        sum(b.count for e in events[h * 60 : (h + 1) * 60] for b in e.counts if b.direction == "in") for h in range(3)
    ]
    assert set(only_in[0]) == {"bucket", "count", *QUALITY_FIELDS}
    # These events carry no quality: counted as such, never shown as full coverage.
    assert [(r["intervals"], r["intervals_without_quality"], r["coverage"]) for r in only_in] == [(60, 60, None)] * 3


def test_daily_buckets_follow_the_requested_timezone(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    _store_pattern(client, agent_id, token, source_id="cam-tz")
    params = {"source_id": "cam-tz", "start": "2025-04-30T00:00:00Z", "end": "2025-05-02T00:00:00Z", "bucket": "1d"}
    utc = client.get("/api/v1/counts", params=params).json()
    vietnam = client.get("/api/v1/counts", params=params | {"timezone": "Asia/Ho_Chi_Minh"}).json()
    assert [r["bucket"] for r in utc] == ["2025-05-01T00:00:00+00:00"]
    # Local midnight is 17:00 UTC: 00:00-03:00 UTC falls in the local day that began on 30 April.
    assert [r["bucket"] for r in vietnam] == ["2025-04-30T17:00:00+00:00"]
    assert utc[0]["count"] == vietnam[0]["count"]


def test_totals_and_bad_parameters(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    events = _store_pattern(client, agent_id, token, source_id="cam-totals")
    params = {"agent_id": agent_id, "start": T0.isoformat(), "end": (T0 + dt.timedelta(days=1)).isoformat()}
    rows = client.get("/api/v1/counts/totals", params=params).json()
    expected: Counter[tuple[str, str]] = Counter()
    for event in events:
        for b in event.counts:
            expected[(b.vehicle_class, b.direction)] += b.count
    assert {(r["vehicle_class"], r["direction"]): r["count"] for r in rows} == dict(expected)
    assert {(r["agent_id"], r["source_id"], r["line_id"]) for r in rows} == {(agent_id, "cam-totals", "line-1")}

    assert client.get("/api/v1/counts", params={"bucket": "5x"}).status_code == 422
    assert client.get("/api/v1/counts", params={"group_by": "count"}).status_code == 422
    assert client.get("/api/v1/counts", params={"vehicle_class": "spaceship"}).status_code == 422
    assert client.get("/api/v1/counts/totals", params={"start": "2025-05-01T00:00:00"}).status_code == 422


def test_overview_page_holds_no_data_before_sign_in(client: TestClient, agent: tuple[str, str]) -> None:
    agent_id, token = agent
    late = CountIntervalEvent(
        agent_id=agent_id,
        source_id="cam-page",
        line_id="line-page",
        time=T0 + dt.timedelta(days=30),
        interval_s=300,
        counts=(CountBucket(vehicle_class="motorbike", direction="out", count=17),),
    )
    assert (
        client.post("/api/v1/events", content=_batch_bytes(agent_id, [late]), headers=_auth(token)).status_code == 200
    )
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # The shell signs in first and reads the scoped APIs (tests/e2e/test_overview_page.py); nothing stored is here.
    assert "Tổng quan" in page.text
    assert "cam-page" not in page.text
    assert client.get("/overview/static/overview.js").status_code == 200
    assert client.get("/overview/static/index.html").status_code == 404


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/events", "/api/v1/counts", "/api/v1/counts/totals", "/healthz", "/readyz"} <= set(paths)
