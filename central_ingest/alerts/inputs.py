"""Database reads that feed the rules: violation counts and camera coverage per period, progress rows,
recent sensor readings, and when each source was last heard from. Numbers only; no decisions.

Coverage of a junction in a period (see docs/alerts.md): per camera, its count intervals of the
finest interval length it stored in the period; ``analysed`` = sum of analysed_s divided by its
number of lines (every line of a camera watches the same frames), ``expected`` = the larger of the
period's length and sum of expected_s / lines. A camera with no interval at all in the period is
0 analysed of the period length (downtime); an interval without quality (schema 1.0) counts as
0 analysed of its length. The junction's coverage is the sum of analysed over the sum of expected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import psycopg

from central_ingest.alerts.evaluate import Period, PeriodSample, ProgressRow, Reading, frac
from central_ingest.alerts.rules import SourceRef

Conn = psycopg.AsyncConnection[Any]

_PERIODS_AND_CAMERAS = """
WITH p AS (SELECT * FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) WITH ORDINALITY AS p(s, e, n)),
c AS (SELECT * FROM unnest(%(agents)s::text[], %(sources)s::text[]) AS c(agent_id, source_id))
"""
_VIOLATIONS = (
    _PERIODS_AND_CAMERAS
    + """
SELECT p.n, (
    SELECT count(*) FROM violations v JOIN c ON v.agent_id = c.agent_id AND v.source_id = c.source_id
    WHERE v.time >= p.s AND v.time < p.e AND v.category = ANY(%(categories)s)
) FROM p ORDER BY p.n
"""
)
_COVERAGE = (
    _PERIODS_AND_CAMERAS
    + """,
i AS (
    SELECT p.n, i.agent_id, i.source_id, i.line_id, i.interval_s,
           coalesce(i.analysed_s, 0) AS analysed_s, coalesce(i.expected_s, i.interval_s) AS expected_s
    FROM p JOIN count_intervals i ON i.time >= p.s AND i.time < p.e
    JOIN c ON i.agent_id = c.agent_id AND i.source_id = c.source_id
),
finest AS (SELECT n, agent_id, source_id, min(interval_s) AS interval_s FROM i GROUP BY 1, 2, 3)
SELECT i.n, i.agent_id, i.source_id, count(DISTINCT i.line_id), sum(i.analysed_s), sum(i.expected_s)
FROM i JOIN finest USING (n, agent_id, source_id, interval_s)
GROUP BY 1, 2, 3
"""
)
_RECENT_EVIDENCE = """
SELECT e->>'uri' FROM violations v, jsonb_array_elements(v.evidence) AS e
WHERE v.time >= %(start)s AND v.time < %(end)s AND v.category = ANY(%(categories)s)
  AND (v.agent_id, v.source_id) IN (SELECT * FROM unnest(%(agents)s::text[], %(sources)s::text[]))
ORDER BY v.time DESC LIMIT %(limit)s
"""


def _seconds(delta: dt.timedelta) -> Fraction:
    return Fraction(delta.days * 86_400 + delta.seconds) + Fraction(delta.microseconds, 1_000_000)


async def violation_samples(
    conn: Conn,
    cameras: Sequence[SourceRef],
    categories: Sequence[str],
    periods: Sequence[Period],
    now: dt.datetime,
) -> list[PeriodSample]:
    """One sample per period, in the order given; a period still running counts only its elapsed part."""
    params = {
        "starts": [p.start for p in periods],
        "ends": [p.end for p in periods],
        "agents": [c.agent_id for c in cameras],
        "sources": [c.source_id for c in cameras],
        "categories": list(categories),
    }
    counts = {n: count for n, count in await (await conn.execute(_VIOLATIONS, params)).fetchall()}
    per_camera: dict[tuple[int, str, str], tuple[int, float, float]] = {
        (n, agent, source): (lines, analysed, expected)
        for n, agent, source, lines, analysed, expected in await (await conn.execute(_COVERAGE, params)).fetchall()
    }
    samples = []
    for n, period in enumerate(periods, start=1):
        length = _seconds(min(period.end, max(now, period.start)) - period.start)
        analysed, expected = Fraction(0), Fraction(0)
        for camera in cameras:
            found = per_camera.get((n, camera.agent_id, camera.source_id))
            if found is None:
                expected += length
                continue
            lines, camera_analysed, camera_expected = found
            analysed += frac(camera_analysed) / lines
            expected += max(length, frac(camera_expected) / lines)
        samples.append(PeriodSample(counts.get(n, 0), analysed, expected))
    return samples


async def violation_evidence(
    conn: Conn, cameras: Sequence[SourceRef], categories: Sequence[str], period: Period, limit: int = 5
) -> tuple[str, ...]:
    """Media links of the period's latest violations, newest first."""
    cur = await conn.execute(
        _RECENT_EVIDENCE,
        {
            "start": period.start,
            "end": period.end,
            "categories": list(categories),
            "agents": [c.agent_id for c in cameras],
            "sources": [c.source_id for c in cameras],
            "limit": limit,
        },
    )
    return tuple(uri for (uri,) in await cur.fetchall() if uri)


async def latest_progress(
    conn: Conn, project_id: str, package_id: str, before: dt.datetime, timezone: str
) -> list[ProgressRow]:
    """The best candidate rows before ``before`` (the same order as ``evaluate.pick_actual``)."""
    cur = await conn.execute(
        "SELECT (time AT TIME ZONE %(tz)s)::date AS day, time, percent_complete, confidence, confirmed, "
        "coalesce((SELECT array_agg(e->>'uri') FROM jsonb_array_elements(evidence) AS e), '{}') "
        "FROM progress WHERE project_id = %(project)s AND package_id = %(package)s AND time < %(before)s "
        "ORDER BY day DESC, confirmed DESC, time DESC LIMIT 3",
        {"tz": timezone, "project": project_id, "package": package_id, "before": before},
    )
    return [
        ProgressRow(day, time, frac(pct), frac(conf), confirmed, tuple(uris))
        for day, time, pct, conf, confirmed, uris in await cur.fetchall()
    ]


_PROJECT_ROWS = """
WITH pk AS (SELECT unnest(%(packages)s::text[]) AS package_id),
bounds AS (
    SELECT pk.package_id,
           (SELECT max(p.time) FROM progress p WHERE p.project_id = %(project)s AND p.package_id = pk.package_id
              AND p.confirmed AND p.time < %(since)s) AS confirmed_at,
           (SELECT max(p.time) FROM progress p WHERE p.project_id = %(project)s AND p.package_id = pk.package_id
              AND p.time < %(since)s) AS latest_at
    FROM pk
),
w AS (
    SELECT package_id,
           least(%(since)s::timestamptz,
                 date_trunc('day', confirmed_at AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s,
                 date_trunc('day', latest_at AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s) AS from_t
    FROM bounds
)
SELECT p.package_id, (p.time AT TIME ZONE %(tz)s)::date, p.time, p.percent_complete, p.confidence, p.confirmed,
       p.method, p.note, p.evidence
FROM w JOIN progress p ON p.project_id = %(project)s AND p.package_id = w.package_id
WHERE p.time >= w.from_t AND p.time < %(before)s
UNION ALL
SELECT e.package_id, (e.time AT TIME ZONE %(tz)s)::date, e.time, e.percent_complete, e.confidence, e.confirmed,
       e.method, e.note, e.evidence
FROM w CROSS JOIN LATERAL (
    SELECT * FROM progress p WHERE p.project_id = %(project)s AND p.package_id = w.package_id
      AND NOT p.confirmed AND p.time < w.from_t ORDER BY p.time DESC LIMIT 1
) AS e
ORDER BY 3
"""


def _evidence_of(evidence: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(uris, sha256 digests) of a stored evidence list."""
    refs = [ref for ref in evidence or () if isinstance(ref, dict)]
    uris = tuple(str(ref["uri"]) for ref in refs if ref.get("uri"))
    digests = tuple(str(ref["sha256"]) for ref in refs if ref.get("sha256"))
    return uris, digests


async def project_rows(
    conn: Conn, project_id: str, packages: Sequence[str], *, since: dt.datetime, before: dt.datetime, timezone: str
) -> dict[str, list[ProgressRow]]:
    """Per package ('' = the project), oldest first: the rows in ``[since, before)`` and the history that the
    actuals of that range need (``projects.actual``): the rows from the local day of the last confirmation
    and of the latest row before ``since``, and the last estimate before those. ``since = before``: just
    enough for the figure on ``before``'s day."""
    cur = await conn.execute(
        _PROJECT_ROWS,
        {"packages": list(packages), "project": project_id, "since": since, "before": before, "tz": timezone},
    )
    found: dict[str, list[ProgressRow]] = {package: [] for package in packages}
    for package, day, time, pct, conf, confirmed, method, note, evidence in await cur.fetchall():
        uris, digests = _evidence_of(evidence)
        found[package].append(ProgressRow(day, time, frac(pct), frac(conf), confirmed, uris, method, note, digests))
    return found


async def critical_packages(conn: Conn, project_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The packages the latest plan version of each project marks critical (projects with none are absent)."""
    cur = await conn.execute(
        "SELECT k.project_id, array_agg(k.package_id ORDER BY k.position) FROM project_plan_packages k "
        "JOIN (SELECT project_id, max(plan_version) AS v FROM project_plans WHERE project_id = ANY(%s) GROUP BY 1) l "
        "ON k.project_id = l.project_id AND k.plan_version = l.v WHERE k.critical GROUP BY 1",
        (list(project_ids),),
    )
    return {project: tuple(packages) for project, packages in await cur.fetchall()}


async def recent_readings(
    conn: Conn, source: SourceRef, metric: str, span_s: float, active_since: dt.datetime
) -> list[Reading]:
    """Readings in [latest - span_s, latest] plus the one just before, oldest first (latest within active_since)."""
    cur = await conn.execute(
        """
        WITH latest AS (
            SELECT max(time) AS t FROM sensor_readings
            WHERE agent_id = %(agent)s AND source_id = %(source)s AND metric = %(metric)s AND time >= %(since)s
        )
        (SELECT r.time, r.value FROM sensor_readings r, latest
         WHERE r.agent_id = %(agent)s AND r.source_id = %(source)s AND r.metric = %(metric)s
           AND r.time >= latest.t - %(span)s AND r.time <= latest.t)
        UNION ALL
        (SELECT r.time, r.value FROM sensor_readings r, latest
         WHERE r.agent_id = %(agent)s AND r.source_id = %(source)s AND r.metric = %(metric)s
           AND r.time < latest.t - %(span)s AND r.time >= %(since)s
         ORDER BY r.time DESC LIMIT 1)
        ORDER BY 1
        """,
        {
            "agent": source.agent_id,
            "source": source.source_id,
            "metric": metric,
            "since": active_since,
            "span": dt.timedelta(seconds=span_s),
        },
    )
    return [Reading(time, frac(value)) for time, value in await cur.fetchall()]


async def active_sensors(conn: Conn, sensor_kind: str, metric: str, since: dt.datetime) -> list[SourceRef]:
    cur = await conn.execute(
        "SELECT DISTINCT agent_id, source_id FROM sensor_readings "
        "WHERE sensor_kind = %s AND metric = %s AND time >= %s ORDER BY 1, 2",
        (sensor_kind, metric, since),
    )
    return [SourceRef(agent_id=a, source_id=s) for a, s in await cur.fetchall()]


async def last_seen(
    conn: Conn, *, heard_since: dt.datetime | None = None, source: SourceRef | None = None
) -> dict[tuple[str, str], tuple[dt.datetime, tuple[str, ...]]]:
    """(agent, source) -> (latest event time of any family, the families heard)."""
    cur = await conn.execute(
        "SELECT agent_id, source_id, max(last_event_time), array_agg(family ORDER BY family) FROM source_last_seen "
        "WHERE (%(agent)s::text IS NULL OR (agent_id = %(agent)s AND source_id = %(source)s)) "
        "GROUP BY 1, 2 HAVING %(since)s::timestamptz IS NULL OR max(last_received_at) >= %(since)s ORDER BY 1, 2",
        {
            "agent": None if source is None else source.agent_id,
            "source": None if source is None else source.source_id,
            "since": heard_since,
        },
    )
    return {(a, s): (last, tuple(families)) for a, s, last, families in await cur.fetchall()}


async def station_alert_levels(conn: Conn, source: SourceRef) -> tuple[float, float, float] | None:
    """The alert levels (báo động 1/2/3) a water-level station last reported, if it ever did."""
    async with conn.cursor() as cursor:
        await cursor.execute(
            "SELECT alert_levels_m FROM sensor_stations WHERE agent_id = %s AND source_id = %s",
            (source.agent_id, source.source_id),
        )
        row = await cursor.fetchone()
    if row is None or len(row[0]) != 3:
        return None
    first, second, third = (float(v) for v in row[0])
    return (first, second, third)
