"""Synthetic provincial load for the central ingest benchmark, and the ``executemany`` baseline writer.

The event mix follows what a province sends (per 10 events): 6 count intervals (one line, a
minute, 4 class/direction buckets), 1 health, 2 sensor readings (3 metrics each: an air station),
1 violation. Every batch comes from one agent, as agents send them; times are recent (clock sanity
refuses events older than the retention window) and unique per event.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from central_ingest.store.tables import TABLES, stage_rows
from event_contract import (
    CountBucket,
    CountIntervalEvent,
    Event,
    EventBatch,
    HealthEvent,
    SensorReadingEvent,
    VehicleClass,
    ViolationEvent,
)

MIX = {"count_interval": 6, "health": 1, "sensor_reading": 2, "violation": 1}
"""Events of each kind per 10 events."""
BUCKET_CLASSES: tuple[VehicleClass, ...] = ("motorbike", "car")


def make_event(agent_id: str, index: int, t0: dt.datetime) -> Event:
    """The ``index``-th event of an agent's stream (kinds interleaved by MIX)."""
    time = t0 + dt.timedelta(milliseconds=10 * index)
    camera = f"cam-{index % 8}"
    slot = index % 10
    if slot < MIX["count_interval"]:
        return CountIntervalEvent(
            agent_id=agent_id,
            source_id=camera,
            line_id=f"line-{slot % 2}",
            time=time,
            interval_s=60,
            counts=tuple(
                CountBucket(vehicle_class=cls, direction=direction, count=1 + index % 7)
                for cls in BUCKET_CLASSES
                for direction in ("in", "out")
            ),
        )
    if slot < MIX["count_interval"] + MIX["health"]:
        return HealthEvent(agent_id=agent_id, source_id=camera, time=time, state="live", fps=12.5, uptime_s=index)
    if slot < MIX["count_interval"] + MIX["health"] + MIX["sensor_reading"]:
        return SensorReadingEvent(
            agent_id=agent_id,
            source_id=f"air-{index % 4}",
            time=time,
            sensor_kind="environment",
            values={"pm2_5": 20.0 + index % 30, "pm10": 40.0 + index % 50, "vn_aqi": 60.0 + index % 40},
        )
    return ViolationEvent(
        agent_id=agent_id,
        source_id=camera,
        time=time,
        violation_type="red_light",
        category="violation",
        track_id=index,
        vehicle_class="motorbike",
    )


def make_batches(agent_ids: Sequence[str], batches_per_agent: int, size: int, t0: dt.datetime) -> list[list[Event]]:
    """Batches interleaved across agents: agent 0's first, agent 1's first, ..., agent 0's second, ..."""
    result: list[list[Event]] = []
    for number in range(batches_per_agent):
        for agent_id in agent_ids:
            start = number * size
            result.append([make_event(agent_id, start + i, t0) for i in range(size)])
    return result


def batch_body(events: Sequence[Event], *, compress: bool = True) -> bytes:
    """The HTTP/MQTT payload of a batch, gzip-compressed as agents send it."""
    body = EventBatch(agent_id=events[0].agent_id, events=tuple(events)).model_dump_json().encode()
    return gzip.compress(body, compresslevel=6) if compress else body


def _insert_statement(table: str, columns: str, count: int) -> bytes:
    placeholders = ", ".join(["%s"] * count)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING".encode()


def store_executemany(conn: psycopg.Connection[Any], events: Sequence[Event]) -> int:
    """Baseline: the same rows with one ``executemany`` INSERT ... ON CONFLICT DO NOTHING per table.

    Idempotent like the real writer (children are guarded by their own unique keys); returns the
    rows inserted into the root tables (events new to central, except sensor readings count rows).
    """
    staged = stage_rows(events)
    new_roots = 0
    with conn.transaction(), conn.cursor() as cursor:
        for table in TABLES:
            rows = staged.of(table)
            if not rows:
                continue
            if any(kind == "jsonb" for _, kind in table.columns):
                rows = [tuple(Jsonb(v) if isinstance(v, list) else v for v in row) for row in rows]
            cursor.executemany(_insert_statement(table.name, table.column_list, len(table.columns)), rows)
            if table.parent is None:
                new_roots += max(cursor.rowcount, 0)
    return new_roots
