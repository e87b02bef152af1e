"""Central reading a province broker's field stations directly, with the agent's own parsing code.

``central-ingest sensor-bridge --config SITE.yaml --agent-id ID`` subscribes like an edge agent does
(``ioc_common.sensors``: the same ``SensorsSiteConfig``, ``SensorNormaliser`` and ``SensorSubscriber``),
but stores straight into TimescaleDB instead of a spool: readings through ``store_events`` (idempotent:
a redelivered message is a duplicate, never a second row) and refused payloads, with their raw bytes and
the reason, into central's ``dead_letters``. A message is acknowledged to the broker only after its
transaction committed, so a bridge killed mid-batch loses nothing (persistent session, QoS 1). ``ID``
names the bridge as the readings' ``agent_id`` (e.g. ``province-hue``); it needs no token.

Threads: paho's network thread and the subscriber's worker (see ``SensorSubscriber``); the worker hands
each batch to this process's event loop, where the async pool writes it, and waits for the commit.
Alerts on these readings come from the serve process's scheduled full pass (``alert_evaluate_every_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from central_ingest.settings import Settings
from central_ingest.store.pool import open_pool
from central_ingest.store.writer import DeadLetter as StoredDeadLetter
from central_ingest.store.writer import store_events
from event_contract import SensorReadingEvent
from ioc_common.dead_letter import DeadLetter
from ioc_common.sensors.normalise import SensorNormaliser
from ioc_common.sensors.site import SensorsSiteConfig
from ioc_common.sensors.subscriber import SensorSubscriber
from ioc_common.yaml_files import load_model

log = logging.getLogger(__name__)

STORE_TIMEOUT_S = 60.0
"""A batch not committed by then raises in the worker, which keeps it unacknowledged and retries."""


class DatabaseSink:
    """``ReadingSink`` and ``DeadLetterSink`` for the subscriber's worker thread: each call commits or raises."""

    def __init__(self, pool: AsyncConnectionPool[Any], loop: asyncio.AbstractEventLoop, agent_id: str) -> None:
        self._pool = pool
        self._loop = loop
        self._agent_id = agent_id

    def store(self, events: Sequence[SensorReadingEvent]) -> None:
        self._run(self._write(list(events), []))

    def keep_many(self, letters: Sequence[DeadLetter]) -> None:
        refused = [
            StoredDeadLetter(
                channel="mqtt",
                agent_id=self._agent_id,
                position=None,
                event_id=None,
                reason=f"{letter.code}: {letter.reason} (topic {letter.topic}, sensor {letter.sensor_id or '?'})",
                payload=letter.raw,
            )
            for letter in letters
        ]
        self._run(self._write([], refused))

    async def _write(self, events: list[SensorReadingEvent], refused: list[StoredDeadLetter]) -> None:
        async with self._pool.connection() as conn:
            await store_events(conn, events, dead_letters=refused, agent_id=self._agent_id)

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(STORE_TIMEOUT_S)


def load_site(path: Path) -> SensorsSiteConfig:
    """The stations file: the ``sensors:`` section of an agent config, on its own (errors name FILE:LINE)."""
    return load_model(path, SensorsSiteConfig)


async def run_bridge(settings: Settings, site: SensorsSiteConfig, agent_id: str) -> None:
    """Until SIGINT/SIGTERM: subscribe, store, acknowledge."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    pool = open_pool(settings)
    await pool.open()
    sink = DatabaseSink(pool, loop, agent_id)
    subscriber = SensorSubscriber(
        site.broker,
        SensorNormaliser(agent_id, site.sensors, max_payload_bytes=site.max_payload_bytes),
        sink,
        sink,
        agent_id=agent_id,
        silent_after_s=site.silent_after_s(),
        queue_capacity=site.queue_capacity,
        batch_max=site.batch_max,
        store_retry_backoff=site.store_retry_backoff,
    )
    subscriber.start()
    log.info("sensor bridge %s: %d stations on %s:%d", agent_id, len(site.sensors), site.broker.host, site.broker.port)
    try:
        await stop.wait()
    finally:
        # The worker may be waiting on this loop for a commit: stop it from another thread.
        await asyncio.to_thread(subscriber.stop, site.stop_timeout_s)
        await pool.close()
        log.info("sensor bridge %s stopped: %s", agent_id, subscriber.stats())
