"""Hourly and daily count rollups on the real TimescaleDB (Apache path), and the Timescale-edition path.

Intervals are stored through the ingest writer (which marks their hours dirty); the rollups must
then equal sums computed here from the events themselves, per class and direction, with day
buckets at local (UTC+7) midnight and late data rewriting old buckets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.edition import detect_features
from central_ingest.store.maintenance import ensure_timescale_policies
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.rollups import RollupReport, refresh_rollups, rollup_tables
from central_ingest.store.writer import store_events
from event_contract import CountBucket, CountIntervalEvent, IntervalQuality

pytestmark = pytest.mark.integration

ZONE = "Asia/Ho_Chi_Minh"
T0 = dt.datetime(2025, 5, 1, 16, 0, tzinfo=dt.UTC)
"""16:00 UTC is 23:00 local: the data below spans local midnight (17:00 UTC)."""
CLASSES = ("motorbike", "car", "truck")

CountKey = tuple[dt.datetime, str, str, str, int, str, str]
QualityKey = tuple[dt.datetime, str, str, str, int]
QualitySums = tuple[int, int, float | None, float | None, float | None]


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


def make_interval(
    rng: random.Random,
    *,
    agent_id: str,
    line_id: str,
    start: dt.datetime,
    interval_s: int = 60,
    source_id: str = "cam-1",
    with_quality: bool = True,
) -> CountIntervalEvent:
    counts = tuple(
        CountBucket(vehicle_class=cls, direction=direction, count=rng.randint(0, 9))
        for cls in CLASSES
        for direction in ("in", "out")
        if rng.random() < 0.7
    )
    quality = None
    if with_quality:
        # Multiples of 0.5 s: their sums are exact in binary floating point, whatever the order.
        analysed = interval_s - 0.5 * rng.randint(1, 10)
        quality = IntervalQuality(
            expected_s=float(interval_s),
            analysed_s=analysed,
            frames_analysed=int(analysed * 5),
            frames_dropped=rng.randint(0, 3),
            downtime_s=0.5 * rng.randint(0, 1),
            detector_backend="cpu-onnx",
            coverage=analysed / interval_s,
        )
    return CountIntervalEvent(
        agent_id=agent_id,
        source_id=source_id,
        line_id=line_id,
        time=start,
        interval_s=interval_s,
        counts=counts,
        quality=quality,
    )


def local_midnight(instant: dt.datetime) -> dt.datetime:
    local_date = instant.astimezone(ZoneInfo(ZONE)).date()
    return dt.datetime(local_date.year, local_date.month, local_date.day, tzinfo=ZoneInfo(ZONE)).astimezone(dt.UTC)


def expected_counts(events: Sequence[CountIntervalEvent], day: bool) -> dict[CountKey, int]:
    sums: Counter[CountKey] = Counter()
    for e in events:
        bucket = local_midnight(e.time) if day else e.time.replace(minute=0, second=0, microsecond=0)
        for b in e.counts:
            key = (bucket, e.agent_id, e.source_id, e.line_id, e.interval_s, b.vehicle_class, b.direction)
            sums[key] += b.count
    return dict(sums)


def expected_quality(events: Sequence[CountIntervalEvent], day: bool) -> dict[QualityKey, QualitySums]:
    groups: dict[QualityKey, list[CountIntervalEvent]] = defaultdict(list)
    for e in events:
        bucket = local_midnight(e.time) if day else e.time.replace(minute=0, second=0, microsecond=0)
        groups[(bucket, e.agent_id, e.source_id, e.line_id, e.interval_s)].append(e)
    result: dict[QualityKey, QualitySums] = {}
    for key, members in groups.items():
        known = [e.quality for e in members if e.quality is not None]
        result[key] = (
            len(members),
            len(members) - len(known),
            sum(q.expected_s for q in known) if known else None,
            sum(q.analysed_s for q in known) if known else None,
            sum(q.downtime_s for q in known) if known else None,
        )
    return result


def stored_counts(conn: psycopg.Connection[Any], table: str, agent_id: str) -> dict[CountKey, int]:
    rows = conn.execute(
        f"SELECT bucket, agent_id, source_id, line_id, interval_s, vehicle_class, direction, count FROM {table}"
        " WHERE agent_id = %s",
        (agent_id,),
    ).fetchall()
    return {tuple(row[:7]): row[7] for row in rows}


def stored_quality(conn: psycopg.Connection[Any], table: str, agent_id: str) -> dict[QualityKey, QualitySums]:
    rows = conn.execute(
        "SELECT bucket, agent_id, source_id, line_id, interval_s, intervals, intervals_without_quality,"
        f" expected_s, analysed_s, downtime_s FROM {table} WHERE agent_id = %s",
        (agent_id,),
    ).fetchall()
    return {tuple(row[:5]): tuple(row[5:]) for row in rows}


def store(dsn: str, events: Sequence[CountIntervalEvent]) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await store_events(conn, events)

    asyncio.run(run())


def refresh(dsn: str, **kwargs: Any) -> RollupReport:
    async def run() -> RollupReport:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return await refresh_rollups(conn, ZONE, **kwargs)

    return asyncio.run(run())


def assert_rollups_match(dsn: str, agent_id: str, events: Sequence[CountIntervalEvent]) -> None:
    with psycopg.connect(dsn) as conn:
        assert stored_counts(conn, "counts_hourly", agent_id) == expected_counts(events, day=False)
        assert stored_counts(conn, "counts_daily", agent_id) == expected_counts(events, day=True)
        assert stored_quality(conn, "count_quality_hourly", agent_id) == expected_quality(events, day=False)
        assert stored_quality(conn, "count_quality_daily", agent_id) == expected_quality(events, day=True)


def three_hours_of_two_lines(agent_id: str, rng: random.Random) -> list[CountIntervalEvent]:
    """16:00-18:59 UTC: 1-minute intervals of two lines, 15-minute ones of line-1, one schema-1.0 interval."""
    events = [
        make_interval(rng, agent_id=agent_id, line_id=line, start=T0 + dt.timedelta(minutes=m))
        for m in range(180)
        for line in ("line-1", "line-2")
    ]
    events += [
        make_interval(rng, agent_id=agent_id, line_id="line-1", start=T0 + dt.timedelta(minutes=m), interval_s=900)
        for m in range(0, 180, 15)
    ]
    events.append(
        make_interval(
            rng, agent_id=agent_id, line_id="line-3", start=T0 + dt.timedelta(minutes=61, seconds=5), with_quality=False
        )
    )
    return events


def test_rollups_equal_raw_sums_with_local_midnight_days(dsn: str) -> None:
    agent_id = "agent-rollup-1"
    events = three_hours_of_two_lines(agent_id, random.Random(1))
    store(dsn, events)

    report = refresh(dsn)

    assert (report.hours_claimed, report.hours_recomputed, report.hours_skipped) == (3, 3, 0)
    assert report.days_recomputed == 2  # 16:00 UTC is 2025-05-01 local, 17:00 and 18:00 UTC are 2025-05-02
    assert_rollups_match(dsn, agent_id, events)
    with psycopg.connect(dsn) as conn:
        days = conn.execute("SELECT DISTINCT bucket FROM counts_daily WHERE agent_id = %s ORDER BY 1", (agent_id,))
        assert [row[0] for row in days.fetchall()] == [
            dt.datetime(2025, 4, 30, 17, tzinfo=dt.UTC),
            dt.datetime(2025, 5, 1, 17, tzinfo=dt.UTC),
        ]
        # The 60 s and 900 s intervals of line-1 stay apart, as the key requires.
        lengths = conn.execute(
            "SELECT interval_s, sum(count) FROM counts_daily WHERE agent_id = %s AND line_id = 'line-1'"
            " GROUP BY 1 ORDER BY 1",
            (agent_id,),
        ).fetchall()
    raw_by_length: Counter[int] = Counter()
    for e in events:
        if e.line_id == "line-1":
            raw_by_length[e.interval_s] += sum(b.count for b in e.counts)
    assert lengths == sorted(raw_by_length.items())

    # Nothing dirty: a second refresh recomputes nothing and changes nothing.
    again = refresh(dsn)
    assert (again.hours_claimed, again.hours_recomputed, again.transactions) == (0, 0, 0)
    assert_rollups_match(dsn, agent_id, events)


def test_late_data_rewrites_old_buckets(dsn: str) -> None:
    agent_id = "agent-rollup-late"
    rng = random.Random(2)
    events = three_hours_of_two_lines(agent_id, rng)
    store(dsn, events)
    refresh(dsn)

    # Stored today: an interval of a week ago (a new old hour) and one more in an hour already rolled up.
    late = [
        make_interval(rng, agent_id=agent_id, line_id="line-1", start=dt.datetime(2025, 4, 24, 10, 5, tzinfo=dt.UTC)),
        make_interval(rng, agent_id=agent_id, line_id="line-2", start=T0 + dt.timedelta(minutes=30, seconds=30)),
    ]
    assert all(e.counts for e in late)
    store(dsn, late)
    report = refresh(dsn, hours_per_transaction=1)

    assert (report.hours_claimed, report.hours_recomputed, report.transactions) == (2, 2, 2)
    assert_rollups_match(dsn, agent_id, [*events, *late])


def test_refresh_is_idempotent_and_survives_a_crash_after_the_claim(dsn: str) -> None:
    agent_id = "agent-rollup-crash"
    events = three_hours_of_two_lines(agent_id, random.Random(3))
    store(dsn, events)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A crash right after the claim: the hours sit in count_rollup_pending, the dirty table is empty.
        conn.execute(
            "WITH d AS (DELETE FROM count_rollup_dirty RETURNING hour)"
            " INSERT INTO count_rollup_pending SELECT hour FROM d"
        )
        # A wrong row left by the crashed run must be replaced, not added to.
        conn.execute(
            "INSERT INTO counts_hourly VALUES (%s, %s, 'cam-1', 'line-1', 60, 'car', 'in', 999999)", (T0, agent_id)
        )

    report = refresh(dsn)

    assert (report.hours_claimed, report.hours_recomputed) == (0, 3)
    assert_rollups_match(dsn, agent_id, events)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO count_rollup_dirty SELECT DISTINCT bucket FROM counts_hourly WHERE agent_id = %s", (agent_id,)
        )
    assert refresh(dsn).hours_recomputed >= 3
    assert_rollups_match(dsn, agent_id, events)


def test_refresh_needs_an_autocommit_connection(dsn: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await refresh_rollups(conn, ZONE)

    with pytest.raises(ValueError, match="autocommit"):
        asyncio.run(run())


def test_service_tables_are_read_on_the_apache_edition(dsn: str) -> None:
    async def run() -> str:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return (await rollup_tables(conn)).counts_daily

    assert asyncio.run(run()) == "counts_daily"


APACHE_SKIP = (
    "TimescaleDB here is the Apache edition: no continuous aggregates/policies; "
    "this path runs on the Timescale-licensed image"
)


def test_timescale_edition_builds_continuous_aggregates_and_policies(dsn: str) -> None:
    async def edition() -> bool:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            return (await detect_features(conn)).uses_policies

    if not asyncio.run(edition()):
        pytest.skip(APACHE_SKIP)

    agent_id = f"agent-cagg-{uuid.uuid4().hex[:6]}"
    events = three_hours_of_two_lines(agent_id, random.Random(4))
    store(dsn, events)
    settings = Settings(database_url=dsn, retention=RetentionSettings(counts_days=10))

    async def build() -> tuple[Any, Any, str]:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            first = await ensure_timescale_policies(conn, settings)
            second = await ensure_timescale_policies(conn, settings)
            for view in (
                "counts_hourly_cagg",
                "count_quality_hourly_cagg",
                "counts_daily_cagg",
                "count_quality_daily_cagg",
            ):
                await conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)".encode())
            return first, second, (await rollup_tables(conn)).counts_daily

    first, second, daily = asyncio.run(build())
    assert len(first.views_created) == 4
    assert (second.views_created, second.refresh_policies_set, second.retention_policies_set) == ((), (), ())
    assert daily == "counts_daily_cagg"
    with psycopg.connect(dsn) as conn:
        assert stored_counts(conn, "counts_hourly_cagg", agent_id) == expected_counts(events, day=False)
        assert stored_counts(conn, "counts_daily_cagg", agent_id) == expected_counts(events, day=True)
        jobs = conn.execute(
            "SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
        ).fetchone()
    assert jobs == (9,)  # 7 raw hypertables (not plate_passes, violations: audited deletes) and 2 hourly aggregates


def test_claim_waits_for_an_ingest_transaction_that_marked_an_hour(dsn: str) -> None:
    """A writer that met an already-dirty hour (ON CONFLICT DO NOTHING) must still reach the rollups."""
    agent_id = "agent-rollup-race"
    rng = random.Random(9)
    first = make_interval(rng, agent_id=agent_id, line_id="line-1", start=T0)
    second = make_interval(rng, agent_id=agent_id, line_id="line-1", start=T0 + dt.timedelta(minutes=1))
    assert first.counts
    assert second.counts
    store(dsn, [first])  # the hour is dirty now

    async def run() -> RollupReport:
        async with (
            await psycopg.AsyncConnection.connect(dsn) as writer,
            await psycopg.AsyncConnection.connect(dsn, autocommit=True) as maintainer,
        ):
            await store_events_uncommitted(writer, second)
            refresh_task = asyncio.create_task(refresh_rollups(maintainer, ZONE))
            await asyncio.sleep(0.5)
            assert not refresh_task.done()  # the claim waits for the open ingest transaction
            await writer.commit()
            return await refresh_task

    report = asyncio.run(run())

    assert report.hours_recomputed == 1
    with psycopg.connect(dsn) as conn:
        assert stored_counts(conn, "counts_hourly", agent_id) == expected_counts([first, second], day=False)


async def store_events_uncommitted(conn: psycopg.AsyncConnection[Any], event: CountIntervalEvent) -> None:
    """What the writer does for one interval, left uncommitted (the writer marks the hour DO NOTHING)."""
    await conn.execute(
        "INSERT INTO count_intervals (time, event_id, agent_id, source_id, line_id, interval_s, schema_version)"
        " VALUES (%s, %s, %s, %s, %s, %s, '1.0')",
        (event.time, event.event_id, event.agent_id, event.source_id, event.line_id, event.interval_s),
    )
    for b in event.counts:
        await conn.execute(
            "INSERT INTO line_counts VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                event.time,
                event.event_id,
                event.agent_id,
                event.source_id,
                event.line_id,
                event.interval_s,
                b.vehicle_class,
                b.direction,
                b.count,
            ),
        )
    await conn.execute(
        "INSERT INTO count_rollup_dirty VALUES (date_trunc('hour', %s::timestamptz, 'UTC')) ON CONFLICT DO NOTHING",
        (event.time,),
    )
