"""Central ingest throughput and alert latency on this box, with idempotency on, against baselines.

    python -m benchmarks.central_ingest [--batches 60] [--batch-size 1000] [--out benchmarks/results]

Phases, each on a fresh database of one private, durable (fsync on) PostgreSQL+TimescaleDB cluster:

1. storage layer: ``store_events`` (COPY into the hypertables, staging + ON CONFLICT fallback) with
   two concurrent connections (two agents), against the baseline: the same rows with a plain
   ``executemany`` INSERT ... ON CONFLICT DO NOTHING, also two connections. Then the same batches
   again: nothing may be stored twice.
2. HTTP: a ``central-ingest serve`` process, gzip 1000-event batches POSTed by concurrent clients
   (one agent each); events/s = events acknowledged as stored / wall time.
3. MQTT: batches published (QoS 1) to the agent topic, one ``central-ingest mqtt-worker`` process
   (shared subscription) stores them; events/s = events stored / time from first publish until the
   database holds them all.
4. alert latency: while HTTP load runs in the background, batches each holding one water-level
   reading above a station's alarm level are POSTed; the time from sending the batch to receiving
   its alert on the server-sent event stream, p50/p99.
5. sizes: rows and bytes per stored event of each family, and the projected size of a province-year.

Prints the results and saves ``benchmarks/results/central_ingest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from benchmarks.common import RESULTS_DIR, package_versions, save_result
from benchmarks.ingest_load import BUCKET_CLASSES, MIX, batch_body, make_batches, store_executemany
from central_ingest.ingest.mqtt_topics import agent_topic
from central_ingest.store.agents import add_agent
from central_ingest.store.migrate import apply_migrations
from central_ingest.store.writer import store_events
from devstack.apps import ManagedProcess, start_central
from devstack.mosquitto import MosquittoBroker
from devstack.postgres import PostgresCluster, PostgresSettings
from event_contract import Event, EventBatch, SensorReadingEvent

NAME = "central_ingest"
FAMILY_TABLES = {
    "count_interval": ("count_intervals", "line_counts"),
    "health": ("health",),
    "sensor_reading": ("sensor_readings",),
    "violation": ("violations",),
}
STORED_ROOTS = ("count_intervals", "health", "violations")


def _recent_t0() -> dt.datetime:
    # Recent, so clock sanity accepts every event; an hour of room for the 10 ms spacing of the events.
    return dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)


def _scalar(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query.encode(), params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query}")
    return row[0]


def stored_events(dsn: str) -> int:
    """Events in the database: one row per root event, distinct event ids for sensor readings."""
    with psycopg.connect(dsn) as conn:
        roots = sum(int(_scalar(conn, f"SELECT count(*) FROM {t}")) for t in STORED_ROOTS)
        sensors = int(_scalar(conn, "SELECT count(DISTINCT event_id) FROM sensor_readings"))
    return roots + sensors


# -- 1. storage layer ------------------------------------------------------------------------------


async def _copy_writer_run(dsn: str, batches: Sequence[Sequence[Event]], connections: int) -> tuple[float, int]:
    queue = list(reversed(batches))
    conns = [await psycopg.AsyncConnection.connect(dsn) for _ in range(connections)]

    async def worker(conn: psycopg.AsyncConnection[Any]) -> int:
        stored = 0
        while queue:
            batch = queue.pop()
            stored += (await store_events(conn, batch, agent_id=batch[0].agent_id)).stored
        return stored

    try:
        start = time.perf_counter()
        stored = sum(await asyncio.gather(*(worker(c) for c in conns)))
        return time.perf_counter() - start, stored
    finally:
        for conn in conns:
            await conn.close()


def _executemany_run(dsn: str, batches: Sequence[Sequence[Event]], connections: int) -> tuple[float, int]:
    queue = list(reversed(batches))
    lock = threading.Lock()
    totals: list[int] = []

    def worker() -> None:
        stored = 0
        with psycopg.connect(dsn) as conn:
            while True:
                with lock:
                    if not queue:
                        break
                    batch = queue.pop()
                stored += store_executemany(conn, batch)
        with lock:
            totals.append(stored)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, sum(totals)


def measure_storage(cluster: PostgresCluster, batches: list[list[Event]], connections: int) -> dict[str, Any]:
    events = sum(len(b) for b in batches)
    result: dict[str, Any] = {"events": events, "connections": connections}
    runs: dict[str, Callable[[str], tuple[float, int]]] = {
        "executemany": lambda dsn: _executemany_run(dsn, batches, connections),
        "copy": lambda dsn: asyncio.run(_copy_writer_run(dsn, batches, connections)),
    }
    for name, run in runs.items():
        dsn = cluster.create_database(f"bench_storage_{name}")
        apply_migrations(dsn)
        elapsed, _ = run(dsn)
        in_db = stored_events(dsn)
        resend_elapsed, _ = run(dsn)  # the same batches again: idempotency must store nothing
        result[name] = {
            "seconds": round(elapsed, 3),
            "events_per_s": round(events / elapsed),
            "stored_events": in_db,
            "stored_after_resend": stored_events(dsn),
            "resend_events_per_s": round(events / resend_elapsed),
        }
        if name == "copy":
            result["sizes"] = measure_sizes(dsn, batches)
        cluster.drop_database(f"bench_storage_{name}")
    return result


# -- 5. sizes --------------------------------------------------------------------------------------


def measure_sizes(dsn: str, batches: Sequence[Sequence[Event]]) -> dict[str, Any]:
    """Rows and bytes (heap + indexes, from hypertable_size) per stored event of each family."""
    kinds: dict[str, int] = {}
    for batch in batches:
        for event in batch:
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
    sizes: dict[str, Any] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(b"VACUUM ANALYZE")
        for kind, tables in FAMILY_TABLES.items():
            rows = 0
            size = 0
            per_table: dict[str, Any] = {}
            for table in tables:
                n = int(_scalar(conn, f"SELECT count(*) FROM {table}"))
                b = int(_scalar(conn, "SELECT hypertable_size(%s)", (table,)))
                per_table[table] = {"rows": n, "bytes": b, "bytes_per_row": round(b / n, 1) if n else None}
                rows += n
                size += b
            sizes[kind] = {
                "events": kinds.get(kind, 0),
                "rows_per_event": round(rows / kinds[kind], 2),
                "bytes_per_event": round(size / kinds[kind], 1),
                "tables": per_table,
            }
    return sizes


def province_year(
    sizes: dict[str, Any], cameras: int = 500, classes: int = 10, directions: int = 2, counts_days: int = 90
) -> dict[str, Any]:
    """One count interval a minute per camera with every (class, direction) bucket present (a worst case:
    agents send only the buckets that counted something), from the measured bytes per row."""
    tables = sizes["count_interval"]["tables"]
    interval_row = tables["count_intervals"]["bytes_per_row"]
    bucket_row = tables["line_counts"]["bytes_per_row"]
    intervals = cameras * 525_600
    total = intervals * (interval_row + classes * directions * bucket_row)
    typical = intervals * (interval_row + len(BUCKET_CLASSES) * 2 * bucket_row)
    return {
        "cameras": cameras,
        "interval_s": 60,
        "buckets_per_interval": classes * directions,
        "intervals_per_year": intervals,
        "rows_per_year": intervals * (1 + classes * directions),
        "bytes_per_interval_row": interval_row,
        "bytes_per_bucket_row": bucket_row,
        "gib_per_year": round(total / 2**30, 1),
        "gib_per_year_with_4_buckets": round(typical / 2**30, 1),
        "raw_retention_days": counts_days,
        "gib_held_with_raw_retention": round(total * counts_days / 365 / 2**30, 1),
        "note": "uncompressed heap + indexes (hypertable_size); the Timescale-licensed edition's compression "
        "is not available on this Apache build; rollups (hourly/daily) keep the history past the raw retention",
    }


# -- 2. HTTP ---------------------------------------------------------------------------------------


def _tokens(dsn: str, agent_ids: Sequence[str]) -> dict[str, str]:
    apply_migrations(dsn)
    with psycopg.connect(dsn) as conn:
        return {agent_id: add_agent(conn, agent_id) for agent_id in agent_ids}


async def post_batches(url: str, streams: dict[str, tuple[str, list[bytes]]]) -> tuple[float, int, int]:
    """POST every agent's bodies, one concurrent stream per agent; (seconds, stored, duplicates)."""
    async with httpx.AsyncClient(base_url=url, timeout=120.0) as client:

        async def stream(token: str, bodies: list[bytes]) -> tuple[int, int]:
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
            }
            stored = duplicates = 0
            for body in bodies:
                response = await client.post("/api/v1/events", content=body, headers=headers)
                response.raise_for_status()
                ack = response.json()
                stored += int(ack["stored"])
                duplicates += int(ack["duplicates"])
            return stored, duplicates

        start = time.perf_counter()
        results = await asyncio.gather(*(stream(token, bodies) for token, bodies in streams.values()))
        elapsed = time.perf_counter() - start
    return elapsed, sum(s for s, _ in results), sum(d for _, d in results)


def measure_http(cluster: PostgresCluster, workdir: Path, batches: list[list[Event]]) -> dict[str, Any]:
    dsn = cluster.create_database("bench_http")
    agent_ids = sorted({b[0].agent_id for b in batches})
    tokens = _tokens(dsn, agent_ids)
    bodies: dict[str, list[bytes]] = {a: [] for a in agent_ids}
    for batch in batches:
        bodies[batch[0].agent_id].append(batch_body(batch))
    streams = {a: (tokens[a], bodies[a]) for a in agent_ids}
    events = sum(len(b) for b in batches)
    central = start_central(dsn, workdir / "central-http.log")
    try:
        elapsed, stored, _ = asyncio.run(post_batches(central.url, streams))
        resend_elapsed, restored, duplicates = asyncio.run(post_batches(central.url, streams))
    finally:
        central.process.stop()
    result = {
        "events": events,
        "concurrent_agents": len(agent_ids),
        "batch_size": len(batches[0]),
        "gzip": True,
        "seconds": round(elapsed, 3),
        "events_per_s": round(stored / elapsed),
        "stored_events": stored,
        "stored_in_db": stored_events(dsn),
        "resend_stored": restored,
        "resend_duplicates": duplicates,
        "resend_events_per_s": round(events / resend_elapsed),
    }
    cluster.drop_database("bench_http")
    return result


# -- 3. MQTT --------------------------------------------------------------------------------------


def _wait_stored(dsn: str, expected: int, timeout_s: float) -> float:
    """Seconds until the database holds ``expected`` events (polled every 20 ms)."""
    start = time.perf_counter()
    while stored_events(dsn) < expected:
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"only {stored_events(dsn)} of {expected} events stored after {timeout_s} s")
        time.sleep(0.02)
    return time.perf_counter() - start


def _mqtt_publisher(broker: MosquittoBroker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(broker.username, broker.password)
    client.max_inflight_messages_set(100)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def measure_mqtt(cluster: PostgresCluster, workdir: Path, batches: list[list[Event]]) -> dict[str, Any]:
    """Publish every batch (QoS 1) as fast as the broker takes them; one mqtt-worker process stores them."""
    broker = MosquittoBroker(workdir)
    broker.start()
    dsn = cluster.create_database("bench_mqtt")
    apply_migrations(dsn)
    env = {
        "IOC_CENTRAL_DATABASE_URL": dsn,
        "IOC_CENTRAL_MQTT_INGEST__HOST": broker.host,
        "IOC_CENTRAL_MQTT_INGEST__PORT": str(broker.port),
        "IOC_CENTRAL_MQTT_INGEST__USERNAME": broker.username,
        "IOC_CENTRAL_MQTT_INGEST__PASSWORD": broker.password,
    }
    worker = ManagedProcess.start(
        "mqtt-worker", [sys.executable, "-m", "central_ingest", "mqtt-worker"], workdir / "mqtt-worker.log", env
    )
    publisher = _mqtt_publisher(broker)
    try:
        warm_up = batches[0]
        # A message published before the worker has subscribed reaches nobody: resend the (idempotent)
        # warm-up batch until it is stored, so the timed part starts with a subscribed, warm worker.
        deadline = time.perf_counter() + 60
        while stored_events(dsn) < len(warm_up):
            if time.perf_counter() > deadline or not worker.running():
                raise RuntimeError(f"the mqtt-worker stored nothing:\n{worker.log_tail()}")
            topic = agent_topic("ioc/v1", warm_up[0].agent_id)
            publisher.publish(topic, batch_body(warm_up), qos=1).wait_for_publish(30)
            time.sleep(0.5)
        rest = batches[1:]
        payloads = [(agent_topic("ioc/v1", b[0].agent_id), batch_body(b)) for b in rest]
        events = sum(len(b) for b in rest)
        start = time.perf_counter()
        infos = [publisher.publish(topic, payload, qos=1) for topic, payload in payloads]
        for info in infos:
            info.wait_for_publish(60)
        published_s = time.perf_counter() - start
        elapsed = published_s + _wait_stored(dsn, len(warm_up) + events, timeout_s=600)
        result: dict[str, Any] = {
            "events": events,
            "batch_size": len(rest[0]),
            "workers": 1,
            "seconds": round(elapsed, 3),
            "publish_seconds": round(published_s, 3),
            "events_per_s": round(events / elapsed),
            "stored_in_db": stored_events(dsn),
        }
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        worker.stop()
        broker.stop()
    cluster.drop_database("bench_mqtt")
    result["summary"] = {"events_per_s_mqtt": result["events_per_s"]}
    return result


# -- 4. alert latency ------------------------------------------------------------------------------

ALERT_RULES = """
rules:
  - id: water-level
    kind: sensor_threshold
    sensor_kind: water_level
    metric: water_level_m
    levels: [{name: bao_dong_1, value: 9.5, severity: notice}]
    min_duration_s: 0
"""


class _AlertStream:
    """Reads the SSE stream in a thread and notes when each subject's alert arrived."""

    def __init__(self, url: str, token: str) -> None:
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, token), daemon=True)
        self._thread.start()

    def _run(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}  # the stream needs a signed-in reader
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=None), headers=headers) as client,
                client.stream("GET", url) as response,
            ):
                response.raise_for_status()
                for line in response.iter_lines():
                    self.ready.set()
                    if line.startswith("data:"):
                        notice = json.loads(line[5:])
                        self.arrived.setdefault(notice["subject"], time.perf_counter())
        except httpx.TransportError:
            return  # the server stopped at the end of the phase


def _background_load(url: str, token: str, bodies: list[bytes], stop: threading.Event) -> dict[str, float]:
    """POST the bodies round and round until ``stop`` (after the first round they are re-sends, which the
    service must still read, check and find stored); returns the events/s it pushed through."""
    headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip", "Content-Type": "application/json"}
    processed = 0
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120.0) as client:
        while not stop.is_set():
            for body in bodies:
                if stop.is_set():
                    break
                response = client.post("/api/v1/events", content=body, headers=headers)
                response.raise_for_status()
                ack = response.json()
                processed += int(ack["stored"]) + int(ack["duplicates"])
    return {"events": float(processed), "events_per_s": processed / (time.perf_counter() - start)}


def measure_alert_latency(
    cluster: PostgresCluster, workdir: Path, load: list[list[Event]], probes: int
) -> dict[str, Any]:
    dsn = cluster.create_database("bench_alerts")
    tokens = _tokens(dsn, ["agent-load", "agent-probe"])
    rules = workdir / "alert_rules.yaml"
    rules.write_text(ALERT_RULES, encoding="utf-8")
    central = start_central(dsn, workdir / "central-alerts.log", env={"IOC_CENTRAL_ALERT_RULES_PATH": str(rules)})
    stream = _AlertStream(f"{central.url}/api/v1/alerts/stream", central.reader_token())
    stop = threading.Event()
    load_result: dict[str, float] = {}
    bodies = [batch_body(batch) for batch in load]
    loader = threading.Thread(
        target=lambda: load_result.update(_background_load(central.url, tokens["agent-load"], bodies, stop))
    )
    latencies: list[float] = []
    load_still_running = False
    try:
        if not stream.ready.wait(30):
            raise RuntimeError("the alert stream did not answer")
        loader.start()
        headers = {"Authorization": f"Bearer {tokens['agent-probe']}"}
        sent: dict[str, float] = {}
        with httpx.Client(base_url=central.url, timeout=30.0) as client:
            for number in range(probes):
                reading = SensorReadingEvent(
                    agent_id="agent-probe",
                    source_id=f"wl-{number}",
                    time=dt.datetime.now(dt.UTC),
                    sensor_kind="water_level",
                    values={"water_level_m": 10.0},
                )
                body = EventBatch(agent_id="agent-probe", events=(reading,)).model_dump_json()
                subject = f"sensor:agent-probe/wl-{number}"
                sent[subject] = time.perf_counter()
                client.post("/api/v1/events", content=body, headers=headers).raise_for_status()
                time.sleep(0.05)
        load_still_running = loader.is_alive()
        deadline = time.perf_counter() + 30
        while len(stream.arrived.keys() & sent.keys()) < len(sent) and time.perf_counter() < deadline:
            time.sleep(0.05)
        latencies = sorted(stream.arrived[s] - t for s, t in sent.items() if s in stream.arrived)
    finally:
        stop.set()
        if loader.is_alive():
            loader.join()
        central.process.stop()
    cluster.drop_database("bench_alerts")
    if not latencies:
        raise RuntimeError("no alert arrived")
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    result: dict[str, Any] = {
        "probes": probes,
        "alerts_received": len(latencies),
        "latency_p50_s": round(statistics.median(latencies), 4),
        "latency_p99_s": round(p99, 4),
        "latency_max_s": round(latencies[-1], 4),
        "background_load_events_per_s": round(load_result.get("events_per_s", 0.0)),
        "background_load_still_running_at_last_probe": load_still_running,
        "measured_from": "POST of the batch holding the reading (client side)",
        "measured_to": "the alert's frame on /api/v1/alerts/stream (server-sent events)",
    }
    result["summary"] = {
        "alert_latency_p50_s": result["latency_p50_s"],
        "alert_latency_p99_s": result["latency_p99_s"],
        "alerts_missing": probes - len(latencies),
    }
    return result


# -- main ------------------------------------------------------------------------------------------


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    storage = result["storage"]
    summary: dict[str, Any] = {
        "events_per_s_storage": storage["copy"]["events_per_s"],
        "events_per_s_storage_baseline_executemany": storage["executemany"]["events_per_s"],
        "storage_speedup_vs_executemany": round(
            storage["copy"]["events_per_s"] / storage["executemany"]["events_per_s"], 2
        ),
        "duplicates_stored_on_resend": storage["copy"]["stored_after_resend"] - storage["copy"]["stored_events"],
    }
    if "http" in result:
        summary["events_per_s_http"] = result["http"]["events_per_s"]
    for key in ("mqtt", "alerts"):
        summary.update(result.get(key, {}).get("summary", {}))
    summary["targets"] = {
        "events_per_s_storage": 50_000,
        "events_per_s_http": 15_000,
        "alert_latency_p99_s": 2.0,
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60, help="batches per phase (default 60)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000)")
    parser.add_argument("--agents", type=int, default=4, help="concurrent agents in the HTTP phase (default 4)")
    parser.add_argument("--connections", type=int, default=2, help="storage-layer connections (default 2)")
    parser.add_argument(
        "--phases", default="storage,http,mqtt,alerts", help="comma-separated: storage, http, mqtt, alerts"
    )
    parser.add_argument("--probes", type=int, default=200, help="alert-latency probes (default 200)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON result goes")
    args = parser.parse_args(argv)
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}

    result: dict[str, Any] = {
        "config": {
            "batches": args.batches,
            "batch_size": args.batch_size,
            "event_mix_per_10": MIX,
            "durable_cluster": True,
            "storage_connections": args.connections,
            "http_agents": args.agents,
        },
        "versions": package_versions(("psycopg", "psycopg-binary", "fastapi", "uvicorn", "pydantic", "paho-mqtt")),
    }
    with tempfile.TemporaryDirectory(prefix="bench-central-") as tmp:
        workdir = Path(tmp)
        cluster = PostgresCluster(workdir, PostgresSettings(durable=True))
        cluster.start()
        try:
            with psycopg.connect(cluster.dsn()) as conn:
                result["versions"]["postgresql"] = str(_scalar(conn, "SHOW server_version"))
            if "storage" in phases:
                agents = [f"agent-s{i}" for i in range(args.connections)]
                batches = make_batches(agents, max(1, args.batches // len(agents)), args.batch_size, _recent_t0())
                result["storage"] = measure_storage(cluster, batches, args.connections)
                result["province_year"] = province_year(result["storage"]["sizes"])
                print(json.dumps({"storage": result["storage"]}, indent=1))
            if "mqtt" in phases:
                agents = [f"agent-m{i}" for i in range(args.agents)]
                batches = make_batches(agents, max(1, args.batches // len(agents)), args.batch_size, _recent_t0())
                result["mqtt"] = measure_mqtt(cluster, workdir, batches)
                print(json.dumps({"mqtt": result["mqtt"]}, indent=1))
            if "alerts" in phases:
                load = make_batches(["agent-load"], args.batches, args.batch_size, _recent_t0())
                result["alerts"] = measure_alert_latency(cluster, workdir, load, args.probes)
                print(json.dumps({"alerts": result["alerts"]}, indent=1))
            if "http" in phases:
                agents = [f"agent-h{i}" for i in range(args.agents)]
                batches = make_batches(agents, max(1, args.batches // len(agents)), args.batch_size, _recent_t0())
                result["http"] = measure_http(cluster, workdir, batches)
                print(json.dumps({"http": result["http"]}, indent=1))
        finally:
            cluster.destroy()
    if "storage" in result:
        result["summary"] = _summary(result)
        print(json.dumps({"summary": result["summary"]}, indent=1))
    path = save_result(NAME, result, args.out)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
