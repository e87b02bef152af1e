"""Scheduled database upkeep: rollups then retention (Apache path), or the policy check (Timescale path).

``run_maintenance_once`` runs one pass under a session advisory lock, so when several central
processes share a database only one of them works at a time (the others report ``ran=False``).
On the Apache edition a pass refreshes the rollups FIRST and only then drops raw chunks (see
``store.retention``), so no count leaves the database before the rollups hold it. On the
Timescale edition a pass makes sure the continuous aggregates and the refresh and retention jobs
exist with the configured windows (``ensure_timescale_policies``), empties the dirty-hour tables
the service path would have used, and prunes the dead letters (a plain table).

Personal data is deleted by the service on BOTH editions: a TimescaleDB background job cannot append
to the audit log, so ``plate_passes`` and ``violations`` get no retention job (one left by an older
version is removed) and each pass drops their chunks, then the evidence images, through
``apply_retention``, which writes one ``retention_delete`` audit entry per table in the deleting
transaction (``AUDITED_TABLES``).

``maintenance_loop`` repeats a pass every ``every_s`` seconds for the life of the process: an
error is logged and counted and the next pass comes after a backoff (full jitter, at most
``every_s``); the loop only ends when it is cancelled.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from central_ingest.settings import RetentionSettings, Settings
from central_ingest.store.edition import TimescaleFeatures, detect_features
from central_ingest.store.retention import (
    EVIDENCE_TABLE,
    PERSONAL_DATA_TABLES,
    RetentionReport,
    RetentionTarget,
    apply_retention,
    clamp_counts,
    dead_letter_target,
    evidence_target,
    plan,
    raw_targets,
    retention_policies,
    service_targets,
)
from central_ingest.store.rollups import (
    CONTINUOUS_AGGREGATES,
    RollupReport,
    continuous_aggregate_statements,
    oldest_unrolled_hour,
    refresh_rollups,
)
from ioc_common.backoff import Backoff, BackoffConfig

log = logging.getLogger(__name__)

DEFAULT_EVERY_S = 300.0
MAINTENANCE_LOCK_KEY = 0x10C_5C4E_3A01
"""Any constant works; it must differ from the migrations' key and be the same in every process."""
MIN_TIMESCALE_COUNTS_DAYS = 4
"""A refresh window of (counts_days - 1) days must span two day buckets plus the 1 h end offset."""
REFRESH_END_OFFSET = dt.timedelta(hours=1)
HOURLY_REFRESH_EVERY = dt.timedelta(minutes=15)
DAILY_REFRESH_EVERY = dt.timedelta(hours=1)

Path = Literal["service", "policies"]

AUDITED_TABLES = PERSONAL_DATA_TABLES
"""Tables whose retention the service runs on every edition (never a database job): their deletions are audited."""


@dataclass(frozen=True)
class RefreshPolicy:
    view: str
    start_offset: dt.timedelta
    end_offset: dt.timedelta
    schedule_interval: dt.timedelta


@dataclass(frozen=True)
class PolicyReport:
    views_created: tuple[str, ...]
    """Continuous aggregates that did not exist before this pass."""
    refresh_policies_set: tuple[str, ...]
    retention_policies_set: tuple[str, ...]
    """Relations whose job was added or replaced because its window differed from the settings."""
    retention_policies_removed: tuple[str, ...] = ()
    """Personal-data tables whose retention job (left by an older version) was removed: the service deletes them,
    audited."""


@dataclass(frozen=True)
class MaintenanceReport:
    at: dt.datetime
    ran: bool
    """False: another process held the maintenance lock, nothing was done."""
    license: str = ""
    path: Path | None = None
    rollups: RollupReport | None = None
    retention: RetentionReport | None = None
    policies: PolicyReport | None = None


@dataclass
class MaintenanceStats:
    """Counters of a maintenance loop, for logs and the metrics page."""

    passes: int = 0
    skipped_locked: int = 0
    errors: int = 0
    last_error: str | None = None
    last_report: MaintenanceReport | None = None
    consecutive_errors: int = field(default=0)


def refresh_policies(settings: Settings) -> tuple[RefreshPolicy, ...]:
    """Refresh windows of the continuous aggregates; pure.

    The window starts one day inside the raw retention: a refresh over a range whose raw chunks
    were dropped would empty those buckets of the aggregate.
    """
    days = settings.retention.counts_days
    if days < MIN_TIMESCALE_COUNTS_DAYS:
        raise ValueError(
            f"retention.counts_days={days}: the Timescale path needs at least {MIN_TIMESCALE_COUNTS_DAYS} days "
            "so the aggregates' refresh window stays inside the raw retention"
        )
    start = dt.timedelta(days=days - 1)
    views = CONTINUOUS_AGGREGATES
    return (
        RefreshPolicy(views.counts_hourly, start, REFRESH_END_OFFSET, HOURLY_REFRESH_EVERY),
        RefreshPolicy(views.quality_hourly, start, REFRESH_END_OFFSET, HOURLY_REFRESH_EVERY),
        RefreshPolicy(views.counts_daily, start, REFRESH_END_OFFSET, DAILY_REFRESH_EVERY),
        RefreshPolicy(views.quality_daily, start, REFRESH_END_OFFSET, DAILY_REFRESH_EVERY),
    )


# A job's relation: the materialization hypertable for a continuous aggregate, else the table itself.
_JOB_MATCHES = b"""
SELECT count(*) FILTER (WHERE matches), count(*) FROM (
    SELECT (j.config->>'drop_after')::interval = %(drop_after)s::interval
           OR ((j.config->>'start_offset')::interval = %(start_offset)s::interval
               AND (j.config->>'end_offset')::interval = %(end_offset)s::interval) AS matches
    FROM timescaledb_information.jobs AS j
    WHERE j.proc_name = %(proc)s AND j.hypertable_name = coalesce(
        (SELECT c.materialization_hypertable_name FROM timescaledb_information.continuous_aggregates AS c
         WHERE c.view_name = %(relation)s), %(relation)s)
) AS found
"""


async def _job_is_current(
    conn: psycopg.AsyncConnection[Any],
    proc: str,
    relation: str,
    *,
    drop_after: dt.timedelta | None = None,
    start_offset: dt.timedelta | None = None,
    end_offset: dt.timedelta | None = None,
) -> bool:
    params = {
        "proc": proc,
        "relation": relation,
        "drop_after": drop_after,
        "start_offset": start_offset,
        "end_offset": end_offset,
    }
    cursor = await conn.execute(_JOB_MATCHES, params)
    row = await cursor.fetchone()
    return row is not None and row[0] == 1 and row[1] == 1


def licensed_retention_policies(settings: RetentionSettings) -> dict[str, dt.timedelta]:
    """Timescale path: the retention jobs to keep, i.e. ``retention_policies`` without the audited tables; pure."""
    return {table: keep for table, keep in retention_policies(settings).items() if table not in AUDITED_TABLES}


def audited_targets(settings: RetentionSettings) -> tuple[RetentionTarget, ...]:
    """Timescale path: what the service deletes itself, audited: the personal-data hypertables, then the evidence
    images (after the violations, whose references keep an image longer); pure."""
    personal = tuple(target for target in raw_targets(settings) if target.table in AUDITED_TABLES)
    return (*personal, evidence_target(settings))


async def _has_retention_job(conn: psycopg.AsyncConnection[Any], table: str) -> bool:
    cursor = await conn.execute(
        b"SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"
        b" AND hypertable_name = %s",
        (table,),
    )
    row = await cursor.fetchone()
    return row is not None and int(row[0]) > 0


async def _existing_views(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    cursor = await conn.execute(b"SELECT view_name FROM timescaledb_information.continuous_aggregates")
    return {str(name) for (name,) in await cursor.fetchall()}


async def ensure_timescale_policies(conn: psycopg.AsyncConnection[Any], settings: Settings) -> PolicyReport:
    """Create the continuous aggregates and make their refresh jobs and the retention jobs match settings.

    Idempotent: a job whose window already matches is left alone; one that differs is replaced.
    Only for an edition with continuous aggregates and policies (``TimescaleFeatures.uses_policies``).
    """
    features = await detect_features(conn)
    if not features.uses_policies:
        raise RuntimeError(
            f"TimescaleDB licence {features.license!r} has no continuous aggregates or policies; "
            "use refresh_rollups and apply_retention instead"
        )
    wanted_refresh = refresh_policies(settings)
    before = await _existing_views(conn)
    for statement in continuous_aggregate_statements(settings.timezone):
        await conn.execute(statement)
    created = tuple(sorted(await _existing_views(conn) - before))

    refreshed: list[str] = []
    for policy in wanted_refresh:
        current = await _job_is_current(
            conn,
            "policy_refresh_continuous_aggregate",
            policy.view,
            start_offset=policy.start_offset,
            end_offset=policy.end_offset,
        )
        if not current:
            await conn.execute(b"SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", (policy.view,))
            await conn.execute(
                b"SELECT add_continuous_aggregate_policy(%s, start_offset => %s::interval,"
                b" end_offset => %s::interval, schedule_interval => %s::interval)",
                (policy.view, policy.start_offset, policy.end_offset, policy.schedule_interval),
            )
            refreshed.append(policy.view)

    retained: list[str] = []
    for relation, keep in licensed_retention_policies(settings.retention).items():
        if not await _job_is_current(conn, "policy_retention", relation, drop_after=keep):
            await conn.execute(b"SELECT remove_retention_policy(%s, if_exists => true)", (relation,))
            await conn.execute(b"SELECT add_retention_policy(%s, drop_after => %s::interval)", (relation, keep))
            retained.append(relation)
    removed: list[str] = []
    for table in sorted(AUDITED_TABLES - {EVIDENCE_TABLE}):  # evidence_blobs is a plain table: never had a job
        if await _has_retention_job(conn, table):
            await conn.execute(b"SELECT remove_retention_policy(%s, if_exists => true)", (table,))
            removed.append(table)
    return PolicyReport(created, tuple(refreshed), tuple(retained), tuple(removed))


@asynccontextmanager
async def _autocommit(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """Autocommit for the pass (each step commits on its own), restored afterwards for the pool."""
    previous = conn.autocommit
    if not previous:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            raise ValueError("maintenance needs an idle connection (not inside a transaction)")
        await conn.set_autocommit(True)
    try:
        yield
    finally:
        if not previous and not conn.closed:
            await conn.set_autocommit(False)


async def _service_pass(
    conn: psycopg.AsyncConnection[Any], settings: Settings, now: dt.datetime, features: TimescaleFeatures
) -> MaintenanceReport:
    rollups = await refresh_rollups(conn, settings.timezone)
    steps = clamp_counts(plan(service_targets(settings.retention), now), await oldest_unrolled_hour(conn))
    retention = await apply_retention(conn, steps)
    return MaintenanceReport(now, True, features.license, "service", rollups=rollups, retention=retention)


async def _policy_pass(
    conn: psycopg.AsyncConnection[Any], settings: Settings, now: dt.datetime, features: TimescaleFeatures
) -> MaintenanceReport:
    policies = await ensure_timescale_policies(conn, settings)
    # The aggregates track changes themselves; the writer's dirty hours are not needed here.
    for table in ("count_rollup_dirty", "count_rollup_pending"):
        await conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    targets = (*audited_targets(settings.retention), dead_letter_target(settings.retention))
    retention = await apply_retention(conn, plan(targets, now))
    return MaintenanceReport(now, True, features.license, "policies", retention=retention, policies=policies)


async def run_maintenance_once(
    conn: psycopg.AsyncConnection[Any], settings: Settings, now: dt.datetime
) -> MaintenanceReport:
    """One pass (see the module doc); ``now`` sets the retention cutoffs. ``conn`` must be idle."""
    async with _autocommit(conn):
        cursor = await conn.execute(b"SELECT pg_try_advisory_lock(%s)", (MAINTENANCE_LOCK_KEY,))
        row = await cursor.fetchone()
        if row is None or not row[0]:
            return MaintenanceReport(now, False)
        try:
            features = await detect_features(conn)
            run_pass = _policy_pass if features.uses_policies else _service_pass
            return await run_pass(conn, settings, now, features)
        finally:
            if not conn.closed:
                await conn.execute(b"SELECT pg_advisory_unlock(%s)", (MAINTENANCE_LOCK_KEY,))


def _summary(report: MaintenanceReport) -> str:
    parts = [f"path={report.path}"]
    if report.rollups is not None:
        r = report.rollups
        parts.append(f"hours recomputed={r.hours_recomputed} days={r.days_recomputed} skipped={r.hours_skipped}")
    if report.retention is not None:
        parts.append(f"chunks dropped={report.retention.chunks_dropped}")
        parts += [f"{t.table}: {t.deleted_rows} rows deleted" for t in report.retention.tables if t.deleted_rows]
    if report.policies is not None:
        p = report.policies
        removed = (
            f" retention jobs removed={list(p.retention_policies_removed)}" if p.retention_policies_removed else ""
        )
        parts.append(
            f"views created={list(p.views_created)} jobs set={[*p.refresh_policies_set, *p.retention_policies_set]}"
            + removed
        )
    return "; ".join(parts)


async def maintenance_loop(
    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
    settings: Settings,
    every_s: float = DEFAULT_EVERY_S,
    *,
    stats: MaintenanceStats | None = None,
    rng: random.Random | None = None,
) -> None:
    """Run a pass every ``every_s`` seconds until cancelled; errors are logged, counted and backed off."""
    if every_s <= 0:
        raise ValueError(f"every_s must be > 0, got {every_s}")
    stats = stats if stats is not None else MaintenanceStats()
    # Not for cryptography: the jitter only spreads retries.
    backoff = Backoff(BackoffConfig(base_s=min(5.0, every_s), ceiling_s=every_s), rng or random.Random())  # noqa: S311
    while True:
        try:
            async with pool.connection() as conn:
                report = await run_maintenance_once(conn, settings, dt.datetime.now(dt.UTC))
        except Exception as error:  # the loop must outlive any one failed pass
            stats.errors += 1
            stats.consecutive_errors += 1
            stats.last_error = f"{type(error).__name__}: {error}"
            log.exception("database maintenance failed (%d in a row)", stats.consecutive_errors)
            delay = backoff.next_delay()
        else:
            stats.passes += 1
            stats.consecutive_errors = 0
            stats.last_report = report
            backoff.reset()
            delay = every_s
            if report.ran:
                log.info("database maintenance: %s", _summary(report))
            else:
                stats.skipped_locked += 1
                log.info("database maintenance skipped: another process holds the lock")
        await anyio.sleep(delay)
