"""Query API of the event families on the real TimescaleDB, through the FastAPI app (TestClient).

The app is the real ``create_app``.
Data goes in through the ingest writer; answers are checked against the events themselves:
filters, keyset pages that together return every row exactly once, CSV/JSON exports that parse
back to the stored numbers, and rollups equal to the raw sums.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from central_ingest.app import create_app
from central_ingest.plates.keyring import new_keyring
from central_ingest.plates.vault import PlateVault
from central_ingest.settings import Settings
from central_ingest.store.family_queries import EXPORT_COLUMNS
from central_ingest.store.rollups import refresh_rollups
from central_ingest.store.writer import store_events
from event_contract import (
    CountBucket,
    CountIntervalEvent,
    Event,
    IntervalQuality,
    ProgressEvent,
    SensorReadingEvent,
    ViolationEvent,
)
from tests.api_sessions import api_headers

pytestmark = pytest.mark.integration

T0 = dt.datetime(2025, 5, 1, 8, 0, tzinfo=dt.UTC)
RANGE = {"start": "2025-05-01T00:00:00Z", "end": "2025-05-02T00:00:00Z"}
TYPES = (("red_light", "violation"), ("wrong_way", "violation"), ("possible_accident", "incident"))


@pytest.fixture(scope="module")
def client(pg_dsn: str) -> Iterator[TestClient]:
    # The rows here are dated 2025, older than the retention periods: the app's own maintenance pass must not
    # race the fixtures and delete them.
    settings = Settings(database_url=pg_dsn, pool_max_size=4, maintenance_enabled=False)
    with TestClient(create_app(settings)) as test_client:
        test_client.headers.update(api_headers(pg_dsn))  # an operator: the read APIs need a session
        yield test_client


VAULT = PlateVault.from_keyring(new_keyring())
"""Violations with a plate are sealed at ingest; these tests read them without the plate."""


def store(dsn: str, events: Sequence[Event]) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await store_events(conn, events, vault=VAULT)

    asyncio.run(run())


def walk(client: TestClient, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Every item of every page, and the number of pages."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        answer = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages < 1000


@pytest.fixture(scope="module")
def violations(pg_dsn: str, client: TestClient) -> list[ViolationEvent]:
    events = [
        ViolationEvent(
            agent_id="agent-v",
            source_id=f"cam-{i % 2 + 1}",
            # Three events share each time: the event id breaks the tie in the page order.
            time=T0 + dt.timedelta(seconds=10 * (i // 3)),
            violation_type=TYPES[i % 3][0],
            category=TYPES[i % 3][1],
            track_id=i,
            plate="30A-123.45" if i == 5 else None,
            plate_confidence=0.9 if i == 5 else None,
        )
        for i in range(250)
    ]
    store(pg_dsn, events)
    return events


def newest_first(events: Sequence[ViolationEvent | ProgressEvent]) -> list[str]:
    return [str(e.event_id) for e in sorted(events, key=lambda e: (e.time, e.event_id), reverse=True)]


def test_violation_pages_return_every_row_once_newest_first(
    client: TestClient, violations: list[ViolationEvent]
) -> None:
    items, pages = walk(client, "/api/v1/violations", {**RANGE, "limit": 37})

    assert [item["event_id"] for item in items] == newest_first(violations)
    assert pages == 7  # 250 rows, 37 a page
    assert "plate" not in items[0]
    assert [item["track_id"] for item in items if item["has_plate"]] == [5]


def test_violation_filters(client: TestClient, violations: list[ViolationEvent]) -> None:
    incidents, _ = walk(
        client, "/api/v1/violations", {**RANGE, "category": "incident", "source_id": "cam-1", "limit": 10}
    )
    wanted = [e for e in violations if e.category == "incident" and e.source_id == "cam-1"]
    assert [item["event_id"] for item in incidents] == newest_first(wanted)
    assert len(wanted) == 42

    red, _ = walk(client, "/api/v1/violations", {**RANGE, "violation_type": "red_light", "limit": 1000})
    assert len(red) == sum(1 for e in violations if e.violation_type == "red_light")

    narrow = {
        "start": (T0 + dt.timedelta(seconds=100)).isoformat(),
        "end": (T0 + dt.timedelta(seconds=200)).isoformat(),
    }
    in_range, _ = walk(client, "/api/v1/violations", narrow)
    assert len(in_range) == 30  # times 100..190 s, three events each


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cursor": "not-a-cursor"}, "cursor is not valid"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"category": "crime"}, "category"),
        ({"start": "2025-05-01T00:00:00"}, "timezone"),
        ({"start": "2025-05-02T00:00:00Z", "end": "2025-05-01T00:00:00Z"}, "must be before"),
    ],
)
def test_violation_parameter_errors_are_422(client: TestClient, params: dict[str, Any], message: str) -> None:
    answer = client.get("/api/v1/violations", params=params)

    assert answer.status_code == 422
    assert message in answer.text


@pytest.fixture(scope="module")
def readings(pg_dsn: str, client: TestClient) -> list[SensorReadingEvent]:
    rng = random.Random(11)
    events = [
        SensorReadingEvent(
            agent_id="agent-s",
            source_id="st-1",
            time=T0 + dt.timedelta(minutes=m),
            sensor_kind="water_level",
            values={"water_level_m": 0.25 * rng.randint(0, 40), "temperature_c": 0.5 * rng.randint(40, 70)},
        )
        for m in range(120)
    ]
    other_station = SensorReadingEvent(
        agent_id="agent-s", source_id="st-2", time=T0, sensor_kind="water_level", values={"water_level_m": 9.0}
    )
    store(pg_dsn, [*events, other_station])
    return events


def test_raw_sensor_pages_return_every_reading_once(client: TestClient, readings: list[SensorReadingEvent]) -> None:
    items, _ = walk(client, "/api/v1/sensors/readings", {**RANGE, "source_id": "st-1", "limit": 50})

    got = [(item["event_id"], item["metric"], item["value"]) for item in items]
    expected = [(str(e.event_id), metric, value) for e in readings for metric, value in e.values.items()]
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got)) == 240
    times = [item["time"] for item in items]
    assert times == sorted(times, reverse=True)

    levels, _ = walk(
        client, "/api/v1/sensors/readings", {**RANGE, "source_id": "st-1", "metric": "water_level_m", "limit": 1000}
    )
    assert {item["metric"] for item in levels} == {"water_level_m"}
    assert len(levels) == 120


def test_bucketed_sensor_series(client: TestClient, readings: list[SensorReadingEvent]) -> None:
    answer = client.get(
        "/api/v1/sensors/readings", params={**RANGE, "source_id": "st-1", "metric": "water_level_m", "bucket": "1h"}
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next_cursor"] is None
    assert [item["bucket"] for item in body["items"]] == ["2025-05-01T08:00:00+00:00", "2025-05-01T09:00:00+00:00"]
    for item, hour in zip(body["items"], (readings[:60], readings[60:]), strict=True):
        values = [e.values["water_level_m"] for e in hour]
        assert (item["min"], item["max"], item["last"], item["readings"]) == (min(values), max(values), values[-1], 60)
        assert item["avg"] == sum(values) / 60  # multiples of 0.25: the sum is exact

    combined = client.get("/api/v1/sensors/readings", params={"source_id": "st-1", "bucket": "1h", "cursor": "x"})
    assert combined.status_code == 422
    assert client.get("/api/v1/sensors/readings", params={"source_id": "st-1", "bucket": "7x"}).status_code == 422
    assert client.get("/api/v1/sensors/readings", params=RANGE).status_code == 422  # source_id is required


def test_progress_pages_and_package_filter(pg_dsn: str, client: TestClient) -> None:
    events = [
        ProgressEvent(
            agent_id="agent-p",
            source_id="site-cam",
            time=T0 - dt.timedelta(days=d),
            project_id="road-7",
            package_id=package,
            percent_complete=50.0 - d,
            method="survey" if d % 4 == 0 else "camera_visual",
            confidence=1.0 if d % 4 == 0 else 0.6,
            confirmed=d % 4 == 0,
            **({} if d % 4 == 0 else {"raw_percent": 51.0 - d, "frames_used": 5, "frames_rejected": 1, "quality": 0.8}),
        )
        for d in range(12)
        for package in (None, "bridge")
    ]
    store(pg_dsn, events)

    items, pages = walk(client, "/api/v1/progress", {"project_id": "road-7", "end": RANGE["end"], "limit": 5})

    assert [item["event_id"] for item in items] == newest_first(events)
    assert pages == 5
    first = items[0]
    assert (first["method"], first["confidence"], first["confirmed"], first["percent_complete"]) == (
        "survey",
        1.0,
        True,
        50.0,
    )
    assert (items[2]["method"], items[2]["confidence"], items[2]["confirmed"]) == ("camera_visual", 0.6, False)
    # A camera estimate carries its measurement (schema 1.5); a survey figure has none.
    assert (items[2]["raw_percent"], items[2]["frames_used"], items[2]["frames_rejected"], items[2]["quality"]) == (
        50.0,
        5,
        1,
        0.8,
    )
    assert (first["raw_percent"], first["frames_used"], first["quality"]) == (None, None, None)
    whole, _ = walk(client, "/api/v1/progress", {"project_id": "road-7", "package_id": "", "end": RANGE["end"]})
    assert {item["package_id"] for item in whole} == {""}
    assert len(whole) == 12
    assert client.get("/api/v1/progress", params={"package_id": "bridge"}).status_code == 422


def interval(
    rng: random.Random, line: str, start: dt.datetime, interval_s: int = 60, quiet: bool = False
) -> CountIntervalEvent:
    analysed = interval_s - 0.5 * rng.randint(1, 8)
    return CountIntervalEvent(
        agent_id="agent-c",
        source_id="cam-9",
        line_id=line,
        time=start,
        interval_s=interval_s,
        counts=()
        if quiet
        else tuple(
            CountBucket(vehicle_class=cls, direction=direction, count=rng.randint(1, 20))
            for cls in ("motorbike", "car")
            for direction in ("in", "out")
        ),
        quality=IntervalQuality(
            expected_s=float(interval_s),
            analysed_s=analysed,
            frames_analysed=int(analysed) * 5,
            frames_dropped=1,
            downtime_s=0.5,
            detector_backend="cpu-onnx",
            coverage=analysed / interval_s,
        ),
    )


@pytest.fixture(scope="module")
def counts(pg_dsn: str, client: TestClient) -> list[CountIntervalEvent]:
    rng = random.Random(5)
    events = [
        interval(rng, line, T0 + dt.timedelta(minutes=m), quiet=m == 7)
        for m in range(90)
        for line in ("line-1", "line-2")
    ]
    events += [interval(rng, "line-1", T0 + dt.timedelta(minutes=m), interval_s=900) for m in range(0, 90, 15)]
    store(pg_dsn, events)
    return events


def sums(events: Sequence[CountIntervalEvent], vehicle_class: str | None = None) -> Counter[tuple[str, str, str]]:
    result: Counter[tuple[str, str, str]] = Counter()
    for e in events:
        for b in e.counts:
            if vehicle_class is None or b.vehicle_class == vehicle_class:
                result[(e.line_id, b.vehicle_class, b.direction)] += b.count
    return result


def test_csv_export_parses_back_to_the_stored_numbers(client: TestClient, counts: list[CountIntervalEvent]) -> None:
    answer = client.get("/api/v1/counts/export", params={**RANGE, "source_id": "cam-9", "format": "csv"})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == ('attachment; filename="counts_20250501T0000Z_20250502T0000Z.csv"')
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    minute = [e for e in counts if e.interval_s == 60]  # the finest length of each line is exported
    assert len(rows) == sum(max(len(e.counts), 1) for e in minute)
    got: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        if row["vehicle_class"]:
            got[(row["line_id"], row["vehicle_class"], row["direction"])] += int(row["count"])
    assert got == sums(minute)
    by_event = {str(e.event_id): e for e in minute}
    for row in rows:
        event = by_event[row["event_id"]]
        assert event.quality is not None
        assert float(row["coverage"]) == event.quality.coverage
        assert float(row["analysed_s"]) == event.quality.analysed_s
        assert dt.datetime.fromisoformat(row["time"]) == event.time
        assert dt.datetime.fromisoformat(row["end_time"]) == event.time + dt.timedelta(seconds=60)
    quiet = [row for row in rows if not row["vehicle_class"]]
    assert [(r["line_id"], r["count"], r["direction"]) for r in quiet] == [("line-1", "0", ""), ("line-2", "0", "")]


def test_json_export_with_filters(client: TestClient, counts: list[CountIntervalEvent]) -> None:
    params: dict[str, str | int] = {
        **RANGE,
        "line_id": "line-1",
        "interval_s": 900,
        "vehicle_class": "car",
        "format": "json",
    }
    answer = client.get("/api/v1/counts/export", params=params)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"].endswith('.json"')
    rows = answer.json()
    wide = [e for e in counts if e.interval_s == 900]
    assert len(rows) == len(wide) * 2  # car in and out of each 15-minute interval
    got = Counter({("line-1", "car", d): 0 for d in ("in", "out")})
    for row in rows:
        assert (row["interval_s"], row["vehicle_class"]) == (900, "car")
        got[(row["line_id"], row["vehicle_class"], row["direction"])] += row["count"]
    assert got == sums(wide, "car")

    empty = client.get("/api/v1/counts/export", params={**RANGE, "source_id": "nobody", "format": "csv"})
    assert empty.status_code == 200
    assert empty.text.splitlines() == [",".join(EXPORT_COLUMNS)]  # a header row, and no data
    assert client.get("/api/v1/counts/export", params={"format": "xml"}).status_code == 422


def test_rollup_route_reads_the_refreshed_rollups(
    pg_dsn: str, client: TestClient, counts: list[CountIntervalEvent]
) -> None:
    async def refresh() -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
            await refresh_rollups(conn, "Asia/Ho_Chi_Minh")

    asyncio.run(refresh())

    hourly = client.get("/api/v1/counts/rollup", params={**RANGE, "source_id": "cam-9", "resolution": "hour"})
    assert hourly.status_code == 200, hourly.text
    rows = hourly.json()
    minute = [e for e in counts if e.interval_s == 60]
    assert {row["interval_s"] for row in rows} == {60}
    got: Counter[tuple[str, str, str, str]] = Counter()
    for row in rows:
        got[(row["bucket"], row["line_id"], row["vehicle_class"], row["direction"])] += row["count"]
    expected: Counter[tuple[str, str, str, str]] = Counter()
    for e in minute:
        hour = e.time.replace(minute=0).isoformat()
        for b in e.counts:
            expected[(hour, e.line_id, b.vehicle_class, b.direction)] += b.count
    assert got == expected
    first = next(row for row in rows if row["bucket"] == "2025-05-01T08:00:00+00:00" and row["line_id"] == "line-1")
    hour_events = [e for e in minute if e.line_id == "line-1" and e.time.hour == 8]
    assert first["intervals"] == 60
    assert first["analysed_s"] == sum(e.quality.analysed_s for e in hour_events if e.quality)
    assert first["coverage"] == first["analysed_s"] / first["expected_s"]

    daily = client.get(
        "/api/v1/counts/rollup",
        params={
            "start": "2025-05-01T00:00:00+07:00",  # a bucket is in the range when its start (local midnight) is
            "end": "2025-05-02T00:00:00+07:00",
            "source_id": "cam-9",
            "resolution": "day",
            "vehicle_class": "motorbike",
            "format": "csv",
        },
    )
    assert daily.status_code == 200, daily.text
    day_rows = list(csv.DictReader(io.StringIO(daily.text)))
    # 08:00-09:30 UTC is 15:00-16:30 local: one local day, whose bucket starts at 17:00 UTC the day before.
    assert {row["bucket"] for row in day_rows} == {"2025-04-30T17:00:00+00:00"}
    day_got = Counter({(r["line_id"], r["vehicle_class"], r["direction"]): int(r["count"]) for r in day_rows})
    assert day_got == sums(minute, "motorbike")
    assert {int(r["intervals"]) for r in day_rows} == {90}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"resolution": "week"}, "resolution"),
        ({"resolution": "hour", "start": "2020-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, "buckets"),
        ({"interval_s": 0}, "interval_s"),
        ({"vehicle_class": "tank"}, "vehicle_class"),
    ],
)
def test_rollup_parameter_errors_are_422(client: TestClient, params: dict[str, Any], message: str) -> None:
    answer = client.get("/api/v1/counts/rollup", params=params)

    assert answer.status_code == 422
    assert message in answer.text


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path in ("/api/v1/violations", "/api/v1/sensors/readings", "/api/v1/progress", "/api/v1/counts/export"):
        assert paths[path]["get"]["summary"], path
    assert "next_cursor" in paths["/api/v1/violations"]["get"]["description"]
    assert not any("plate_passes" in path for path in paths)
