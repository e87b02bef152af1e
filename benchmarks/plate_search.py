"""Vehicle-pass search latency over 10 million sealed passes, against a clear-text index, projected to 100 million.

    python -m benchmarks.plate_search [--rows 10000000] [--days 120] [--cameras 120] [--queries 200]

A private PostgreSQL + TimescaleDB cluster (fsync off: a throw-away bulk load; queries do not write) gets
the real schema (migrations), then ``--rows`` synthetic passes over ``--days`` days (1-day chunks) from
``--cameras`` cameras, loaded with binary COPY, sealed exactly as the writer seals them (AES-256-GCM per
row with the row's AAD, blind index, 3-gram tokens). The benchmark adds one column the product does not
have, ``plate_clear`` with an index on (plate_clear, time DESC): the baseline, the same query on clear text.

Vehicles: a few "regulars" (commuters, taxis: about 30 % of passes) and a long tail of the province's
other vehicles, with Vietnamese plate formats (one-line car plates, two-line motorbike plates) and
province codes weighted towards the big cities; each plate's index values are computed once and reused
(its random token padding included), its ciphertext is fresh per row.

Measured (warm cache, one connection, each query end to end through ``search_passes``):
exact plate over a random 30-day window (p50/p95/p99), the same SQL without decryption, the clear-text
baseline; witness patterns ("30A-1??.45") and suffix patterns ("*12345") over 30 days, with candidates
decrypted and how many were false (shared tokens but no match); for some patterns, how many candidates
untruncated 3-grams would have given (the cost of the truncation). Then the projection to 100 million
rows (see benchmarks/plate_search.md). Prints the results, saves ``benchmarks/results/plate_search.json``
and drops the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import RESULTS_DIR, package_versions, save_result
from central_ingest.plates.keyring import new_keyring
from central_ingest.plates.partial import TOKEN_BITS, PlatePattern, compact_plate, grams
from central_ingest.plates.search import PassQuery, search_passes
from central_ingest.plates.vault import PlateVault, plate_aad
from central_ingest.store.migrate import apply_migrations
from devstack.postgres import PostgresCluster, PostgresSettings

NAME = "plate_search"
BYTES_PER_ROW_ON_DISK = 900
"""Heap and every index, measured at about 700 bytes a row; the check asks for this much free space."""
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WINDOW = dt.timedelta(days=30)
REGULAR_SHARE = 0.3
PASSES_PER_VEHICLE = 6.0
"""Tail vehicles: rows / this many distinct tail plates (a vehicle passes a camera a few times in 4 months)."""
PROVINCES = (
    ("29", 6), ("30", 10), ("31", 3), ("33", 3), ("40", 2), ("51", 8), ("59", 10), ("50", 3), ("41", 2),
    ("15", 2), ("14", 2), ("17", 1), ("18", 1), ("19", 1), ("20", 1), ("21", 1), ("22", 1), ("34", 2),
    ("35", 1), ("36", 2), ("37", 2), ("38", 1), ("43", 2), ("47", 1), ("49", 1), ("60", 2), ("61", 2),
    ("62", 1), ("63", 1), ("65", 2), ("66", 1), ("67", 1), ("68", 1), ("72", 1), ("74", 1), ("75", 1),
    ("76", 1), ("77", 1), ("78", 1), ("79", 1), ("81", 1), ("82", 1), ("83", 1), ("84", 1), ("85", 1),
    ("86", 1), ("88", 1), ("89", 1), ("90", 1), ("92", 1), ("93", 1), ("94", 1), ("95", 1), ("97", 1), ("98", 1),
)  # fmt: skip
SERIES = "ABCDEFGHKLMNPSTUVXYZ"
COPY_COLUMNS = (
    ("time", "timestamptz"),
    ("event_id", "uuid"),
    ("agent_id", "text"),
    ("source_id", "text"),
    ("plate_key_id", "text"),
    ("plate_ct", "bytea"),
    ("plate_bidx", "bytea"),
    ("plate_index_key", "text"),
    ("plate_grams", "int4[]"),
    ("plate_confidence", "float4"),
    ("track_id", "int8"),
    ("vehicle_class", "text"),
    ("direction", "text"),
    ("line_id", "text"),
    ("schema_version", "text"),
    ("plate_layout", "text"),
    ("format_valid", "bool"),
    ("reads", "int4"),
    ("plate_clear", "text"),
)
DEFERRED_INDEXES = (
    "CREATE INDEX plate_passes_bidx_time_idx ON plate_passes (plate_bidx, time DESC)",
    "CREATE INDEX plate_passes_grams_idx ON plate_passes USING gin (plate_grams)",
    "CREATE INDEX plate_passes_source_time_idx ON plate_passes (source_id, time DESC)",
    "CREATE INDEX bench_plate_clear_time_idx ON plate_passes (plate_clear, time DESC)",
)
CLEAR_SQL = (
    "SELECT time, event_id, agent_id, source_id, plate_clear, plate_confidence, direction, vehicle_class,"
    " vehicle_colour, plate_colour, line_id, track_id, evidence FROM plate_passes WHERE plate_clear = %s"
    " AND time >= %s AND time < %s ORDER BY time DESC, event_id DESC LIMIT 501"
)
SEALED_SQL = CLEAR_SQL.replace("plate_clear, plate_confidence", "plate_key_id, plate_ct, plate_confidence").replace(
    "WHERE plate_clear = %s", "WHERE plate_bidx = %s"
)


def random_plate(rng: random.Random) -> str:
    province = rng.choices([p for p, _ in PROVINCES], [w for _, w in PROVINCES])[0]
    series = rng.choice(SERIES)
    if rng.random() < 0.6:  # motorbike, two-line: 59X1-234.56
        return f"{province}{series}{rng.randrange(1, 10)}-{rng.randrange(0, 1000):03d}.{rng.randrange(0, 100):02d}"
    if rng.random() < 0.15:  # old car format: 30A-1234
        return f"{province}{series}-{rng.randrange(1000, 10000)}"
    return f"{province}{series}-{rng.randrange(100, 1000)}.{rng.randrange(0, 100):02d}"


class Fleet:
    """The vehicles: plates drawn once, regulars drawn often; index values cached per plate."""

    def __init__(self, rows: int, seed: int, vault: PlateVault) -> None:
        self.rng = random.Random(seed)
        regulars = max(10, rows // 200)
        tail = max(100, int(rows * (1 - REGULAR_SHARE) / PASSES_PER_VEHICLE))
        seen: set[str] = set()
        plates: list[str] = []
        while len(plates) < regulars + tail:
            plate = random_plate(self.rng)
            if plate not in seen:
                seen.add(plate)
                plates.append(plate)
        self.regulars, self.tail = plates[:regulars], plates[regulars:]
        self.vault = vault
        self._index: dict[str, tuple[bytes, list[int]]] = {}

    def draw(self) -> str:
        pool = self.regulars if self.rng.random() < REGULAR_SHARE else self.tail
        return pool[self.rng.randrange(len(pool))]

    def index_of(self, plate: str) -> tuple[bytes, list[int]]:
        cached = self._index.get(plate)
        if cached is None:
            sealed = self.vault.seal(plate)
            cached = self._index[plate] = (sealed.blind_index, list(sealed.tokens))
        return cached


def day_rows(fleet: Fleet, day: dt.datetime, count: int, cameras: int) -> Iterator[tuple[Any, ...]]:
    rng, vault = fleet.rng, fleet.vault
    offsets = sorted(rng.random() * 86_400 for _ in range(count))
    index_key = vault.index_key_id
    for offset in offsets:
        plate = fleet.draw()
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        camera = f"cam-{rng.randrange(cameras):03d}"
        agent = f"site-{camera[-3:-1]}"
        key_id, ciphertext = vault.seal_blob(plate.encode().ljust(16, b"\x00"), plate_aad(agent, event_id))
        bidx, tokens = fleet.index_of(plate)
        two_line = plate[3].isdigit()
        yield (
            day + dt.timedelta(seconds=offset), event_id, agent, camera, key_id, ciphertext, bidx, index_key, tokens,
            0.8 + 0.2 * rng.random(), rng.randrange(1_000_000), "motorbike" if two_line else "car",
            rng.choice(("in", "out")), "l1", "1.4", "two_line" if two_line else "one_line", True, 3, plate,
        )  # fmt: skip


def load(dsn: str, fleet: Fleet, rows: int, days: int, cameras: int) -> dict[str, float]:
    statement = f"COPY plate_passes ({', '.join(c for c, _ in COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    start = time.perf_counter()
    per_day = rows / days
    written = 0
    with psycopg.connect(dsn) as conn:
        for d in range(days):
            count = round(per_day * (d + 1)) - written
            day = END - dt.timedelta(days=days - d)
            with conn.cursor() as cursor, cursor.copy(statement.encode()) as copy:
                copy.set_types([kind for _, kind in COPY_COLUMNS])
                for row in day_rows(fleet, day, count, cameras):
                    copy.write_row(row)
            conn.commit()
            written += count
            if d % 10 == 9:
                print(f"loaded {written:,} rows ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        copied = time.perf_counter() - start
        conn.autocommit = True
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        for ddl in DEFERRED_INDEXES:
            conn.execute(ddl.encode())
        conn.execute("VACUUM ANALYZE plate_passes")
    return {"copy_s": round(copied, 1), "index_s": round(time.perf_counter() - start - copied, 1)}


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 2)}


def windows(rng: random.Random, days: int, count: int) -> list[tuple[dt.datetime, dt.datetime]]:
    first = END - dt.timedelta(days=days)
    span = max(0, days - WINDOW.days)
    out = []
    for _ in range(count):
        since = first + dt.timedelta(days=rng.randrange(span + 1))
        out.append((since, since + WINDOW))
    return out


async def measure_exact(dsn: str, fleet: Fleet, days: int, queries: int) -> dict[str, Any]:
    rng = random.Random(11)
    plates = [rng.choice(fleet.regulars) for _ in range(queries // 2)] + [
        rng.choice(fleet.tail) for _ in range(queries - queries // 2)
    ]
    spans = windows(rng, days, queries)
    sealed_ms: list[float] = []
    sql_ms: list[float] = []
    clear_ms: list[float] = []
    found: list[int] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for warm in (True, False):  # first pass warms the cache; the second is measured
            for plate, (since, until) in zip(plates, spans, strict=True):
                t0 = time.perf_counter()
                result = await search_passes(conn, fleet.vault, PassQuery(plate=plate, since=since, until=until))
                t1 = time.perf_counter()
                # Unprepared, like search_passes: a generic plan would read every chunk (see the .md).
                bidx = fleet.vault.blind_index(plate)
                cursor = await conn.execute(SEALED_SQL.encode(), (bidx, since, until), prepare=False)
                sealed_rows = await cursor.fetchall()
                t2 = time.perf_counter()
                cursor = await conn.execute(CLEAR_SQL.encode(), (plate, since, until), prepare=False)
                clear_rows = await cursor.fetchall()
                t3 = time.perf_counter()
                if len(clear_rows) != len(result.records) or len(sealed_rows) != len(clear_rows):
                    raise AssertionError(f"{plate}: sealed search found {len(result.records)}, clear {len(clear_rows)}")
                if not warm:
                    sealed_ms.append((t1 - t0) * 1000)
                    sql_ms.append((t2 - t1) * 1000)
                    clear_ms.append((t3 - t2) * 1000)
                    found.append(len(result.records))
        cursor = await conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + SEALED_SQL.encode(),
            (fleet.vault.blind_index(plates[0]), *spans[0]),
        )
        plan = (await cursor.fetchone() or [None])[0]
    return {
        "queries": queries,
        "sealed": percentiles(sealed_ms),
        "sealed_sql_only": percentiles(sql_ms),
        "clear_text_baseline": percentiles(clear_ms),
        "rows_per_query": {"mean": round(statistics.fmean(found), 1), "max": max(found)},
        "per_row_ms": per_row_cost(sealed_ms, found),
        "plan_chunks_scanned": _chunks_in_plan(plan),
    }


def per_row_cost(samples: list[float], rows: list[int]) -> dict[str, float]:
    """Least-squares fit ms = fixed + per_row * rows (what grows with rows per plate at 100 M)."""
    mean_x, mean_y = statistics.fmean(rows), statistics.fmean(samples)
    var = sum((x - mean_x) ** 2 for x in rows)
    slope = 0.0 if var == 0 else sum((x - mean_x) * (y - mean_y) for x, y in zip(rows, samples, strict=True)) / var
    return {"fixed_ms": round(mean_y - slope * mean_x, 3), "per_row_ms": round(slope, 4)}


def _chunks_in_plan(plan: Any) -> int:
    def walk(node: Any) -> int:
        if not isinstance(node, dict):
            return 0
        own = 1 if str(node.get("Relation Name", "")).startswith("_hyper") else 0
        return own + sum(walk(child) for child in node.get("Plans", []))

    if isinstance(plan, list) and plan:
        return walk(plan[0].get("Plan"))
    return 0


def patterns(fleet: Fleet, count: int) -> list[tuple[str, str]]:
    rng = random.Random(13)
    chosen: list[tuple[str, str]] = []
    for n in range(count):
        plate = rng.choice(fleet.regulars if n % 2 else fleet.tail)
        if n % 2 == 0 and "." in plate:  # a witness saw the start and the end: 30A-1??.45
            head, tail = plate.split("-")
            chosen.append(("witness", f"{head}-{tail[0]}??{tail[3:]}"))
        else:  # the last five digits: *12345
            chosen.append(("suffix", "*" + compact_plate(plate)[-5:]))
    return chosen


async def measure_partial(dsn: str, fleet: Fleet, days: int, count: int, untruncated_checks: int) -> dict[str, Any]:
    rng = random.Random(17)
    chosen = patterns(fleet, count)
    spans = windows(rng, days, count)
    by_kind: dict[str, list[float]] = {}
    stats: list[dict[str, Any]] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for warm in (True, False):
            for (kind, text), (since, until) in zip(chosen, spans, strict=True):
                t0 = time.perf_counter()
                result = await search_passes(conn, fleet.vault, PassQuery(pattern=text, since=since, until=until))
                elapsed = (time.perf_counter() - t0) * 1000
                if not warm:
                    by_kind.setdefault(kind, []).append(elapsed)
                    stats.append(
                        {
                            "kind": kind,
                            "matches": len(result.records),
                            "candidates": result.candidates_checked,
                            "truncated": result.truncated,
                            "since": since,
                            "until": until,
                            "pattern": text,
                        }
                    )
        untruncated = []
        for item in stats[:untruncated_checks]:
            runs = PlatePattern.parse(item["pattern"]).known_runs
            wanted = sorted({g for run in runs if len(run) >= 3 for g in grams(run)})
            condition = " AND ".join("replace(replace(plate_clear, '-', ''), '.', '') LIKE %s" for _ in wanted)
            cursor = await conn.execute(
                f"SELECT count(*) FROM plate_passes WHERE {condition} AND time >= %s AND time < %s".encode(),
                (*[f"%{g}%" for g in wanted], item["since"], item["until"]),
            )
            exact_gram_candidates = int((await cursor.fetchone() or (0,))[0])
            untruncated.append(
                {
                    "pattern_kind": item["kind"],
                    "matches": item["matches"],
                    "candidates_truncated_tokens": item["candidates"],
                    "candidates_untruncated_grams": exact_gram_candidates,
                }
            )
    all_ms = [ms for samples in by_kind.values() for ms in samples]
    unfinished = [s for s in stats if not s["truncated"]]
    false = [s["candidates"] - s["matches"] for s in unfinished]
    return {
        "queries": count,
        "all": percentiles(all_ms),
        "by_kind": {kind: percentiles(samples) for kind, samples in by_kind.items()},
        "matches_mean": round(statistics.fmean(s["matches"] for s in stats), 1),
        "candidates_mean": round(statistics.fmean(s["candidates"] for s in stats), 1),
        "false_candidates_mean": round(statistics.fmean(false), 1) if false else None,
        "false_candidate_share": round(sum(false) / max(1, sum(s["candidates"] for s in unfinished)), 4),
        "hit_limit_or_cap": sum(1 for s in stats if s["truncated"]),
        "truncation_cost_samples": untruncated,
    }


def sizes(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT hypertable_size('plate_passes')").fetchone()
        indexes = conn.execute(
            "SELECT indexname, hypertable_index_size(format('%I', indexname)::regclass) FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename = 'plate_passes' ORDER BY 1"
        ).fetchall()
        chunks = conn.execute("SELECT count(*) FROM show_chunks('plate_passes')").fetchone()
        bidx_depth = conn.execute(
            "SELECT max(level) FROM (SELECT (bt_metap(c::text)).level FROM ("
            " SELECT format('%I.%I', ci.schemaname, ci.indexname) AS c FROM pg_indexes ci"
            " WHERE ci.indexname LIKE '%plate_passes_bidx_time_idx%' AND ci.schemaname = '_timescaledb_internal') s) m"
        ).fetchone()
    return {
        "total_bytes": int((total or (0,))[0]),
        "chunks": int((chunks or (0,))[0]),
        "bidx_btree_levels_max": (bidx_depth or (None,))[0],
        "index_bytes": {str(name): int(size or 0) for name, size in indexes},
    }


def project(result: dict[str, Any], rows: int, days: int) -> dict[str, Any]:
    """100 M rows over the same days: 10x rows per chunk, one more B-tree level at most, rows per plate 1x..10x."""
    factor = 100_000_000 / rows
    exact = result["exact"]
    fixed, per_row = exact["per_row_ms"]["fixed_ms"], exact["per_row_ms"]["per_row_ms"]
    mean_rows = exact["rows_per_query"]["mean"]
    p95 = exact["sealed"]["p95_ms"]
    extra_level_ms = WINDOW.days * 0.01  # one more (cached) page per chunk: ~10 us each
    same_fleet = p95 + per_row * mean_rows * (factor - 1) + extra_level_ms
    more_vehicles = p95 + extra_level_ms
    return {
        "rows": 100_000_000,
        "scale_factor": round(factor, 1),
        "chunks_per_30_days": WINDOW.days,
        "rows_per_chunk": round(100_000_000 / days),
        "assumptions": "same 1-day chunks and days; each chunk's bidx B-tree gains at most one level; "
        "rows per plate x1 (10x more vehicles) or x10 (the same vehicles pass 10x as often: the conservative case)",
        "exact_p95_ms_more_vehicles": round(more_vehicles, 1),
        "exact_p95_ms_same_vehicles_10x_passes": round(same_fleet, 1),
        "fit_fixed_ms": fixed,
        "fit_per_row_ms": per_row,
    }


def check_disk(rows: int, where: Path) -> dict[str, Any]:
    free = shutil.disk_usage(where).free
    need = rows * BYTES_PER_ROW_ON_DISK
    if free < need * 1.2:
        raise SystemExit(f"{where}: {free / 1e9:.1f} GB free, the load needs about {need / 1e9:.1f} GB; use --rows")
    return {"free_gb_before": round(free / 1e9, 1), "estimated_need_gb": round(need / 1e9, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--cameras", type=int, default=120)
    parser.add_argument("--queries", type=int, default=200, help="exact queries measured (partial: a quarter)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.days <= WINDOW.days or not 50 <= args.cameras <= 200:
        parser.error("--days must exceed 30 and --cameras be 50..200")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-plates-", dir="/var/tmp") as tmp:
        result: dict[str, Any] = {
            "rows": args.rows,
            "days": args.days,
            "cameras": args.cameras,
            "token_bits": TOKEN_BITS,
            "disk": check_disk(args.rows, Path(tmp)),
        }
        cluster = PostgresCluster(Path(tmp), PostgresSettings(durable=False))
        cluster.start()
        try:
            with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
                admin.execute("ALTER SYSTEM SET shared_buffers = '4GB'")
                admin.execute("ALTER SYSTEM SET work_mem = '64MB'")
                admin.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
                admin.execute("ALTER SYSTEM SET jit = off")
            cluster.stop()
            cluster.start()
            dsn = cluster.create_database("plates")
            apply_migrations(dsn)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
                conn.execute("ALTER TABLE plate_passes ADD COLUMN plate_clear text")
                for index in ("plate_passes_bidx_time_idx", "plate_passes_grams_idx", "plate_passes_source_time_idx"):
                    conn.execute(f"DROP INDEX {index}".encode())
                result["versions"] = {
                    "postgresql": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
                    **package_versions(("psycopg", "cryptography")),
                }
            fleet = Fleet(args.rows, args.seed, PlateVault.from_keyring(new_keyring()))
            result["fleet"] = {"regular_plates": len(fleet.regulars), "tail_plates": len(fleet.tail)}
            result["load"] = load(dsn, fleet, args.rows, args.days, args.cameras)
            print(json.dumps({"load": result["load"]}), file=sys.stderr)
            result["sizes"] = sizes(dsn)
            result["exact"] = asyncio.run(measure_exact(dsn, fleet, args.days, args.queries))
            result["partial"] = asyncio.run(measure_partial(dsn, fleet, args.days, max(8, args.queries // 4), 10))
            result["projection_100m"] = project(result, args.rows, args.days)
        finally:
            cluster.destroy()
    exact, partial, projection = result["exact"], result["partial"], result["projection_100m"]
    result |= {
        "exact_p95_ms": exact["sealed"]["p95_ms"],
        "exact_p50_ms": exact["sealed"]["p50_ms"],
        "exact_p99_ms": exact["sealed"]["p99_ms"],
        "clear_text_exact_p95_ms": exact["clear_text_baseline"]["p95_ms"],
        "partial_p95_ms": partial["all"]["p95_ms"],
        "projected_100m_exact_p95_ms": projection["exact_p95_ms_same_vehicles_10x_passes"],
        "target_exact_p95_ms": 200,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    path = save_result(NAME, result, args.out)
    print(json.dumps(result, indent=1, default=str))
    print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
