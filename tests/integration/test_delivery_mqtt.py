"""Store and forward over MQTT, end to end: spool -> Delivery -> mosquitto -> ``central-ingest mqtt-worker``.

Central acknowledges each batch on the agent's acks topic after committing it; a worker killed
before that ack makes the agent resend, and the batch is still stored once. Each test uses its own
topic prefix so workers of different tests never share messages.
"""

from __future__ import annotations

import random
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from central_ingest.store.migrate import apply_migrations
from devstack.mosquitto import MosquittoBroker
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.mqtt_uplink import MqttTransport
from edge_agent.delivery.sender import Delivery
from edge_agent.delivery.spool import Spool, SpoolConfig
from edge_agent.delivery.transport import Acked
from ioc_common.backoff import BackoffConfig
from tests.integration.test_delivery_http import (
    CentralProcess,
    central_env,
    eventually,
    health_event,
    site_events,
    start_central,
    stored_rows,
)
from tests.unit.test_delivery_sender import MemoryDeadLetters

pytestmark = pytest.mark.integration

DATABASE_DOWN = "postgresql://ioc@127.0.0.1:1/none?connect_timeout=1"


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/ioc/v1"


@pytest.fixture(scope="module")
def dsn(pg_dsn: str) -> str:
    apply_migrations(pg_dsn)
    return pg_dsn


def _worker(
    broker: MosquittoBroker, dsn: str, prefix: str, log_path: Path, *, client_id: str, group: str
) -> CentralProcess:
    env = central_env(
        dsn,
        pool_min_size="0",
        pool_timeout_s="0.5",
        mqtt_ingest__host=broker.host,
        mqtt_ingest__port=str(broker.port),
        mqtt_ingest__username=broker.username,
        mqtt_ingest__password=broker.password,
        mqtt_ingest__topic_prefix=prefix,
        mqtt_ingest__client_id=client_id,
        mqtt_ingest__share_group=group,
        mqtt_ingest__session_expiry_s="120",
        mqtt_ingest__store_retry_backoff__base_s="0.05",
        mqtt_ingest__store_retry_backoff__ceiling_s="0.2",
        mqtt_ingest__reconnect_backoff__base_s="0.2",
        mqtt_ingest__reconnect_backoff__ceiling_s="1.0",
    )
    return start_central(["mqtt-worker"], env, log_path)


def _uplink(
    broker: MosquittoBroker, prefix: str, mqtt_overrides: dict[str, object] | None = None, **values: object
) -> UplinkConfig:
    mqtt: dict[str, object] = {
        "host": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "topic_prefix": prefix,
        "connect_wait_s": 5.0,
        "reconnect_backoff": BackoffConfig(base_s=0.1, ceiling_s=0.5),
    }
    base: dict[str, object] = {
        "transport": "mqtt",
        "mqtt": mqtt | (mqtt_overrides or {}),
        "flush_interval_s": 0.05,
        "timeout_s": 2.0,
        "retry": BackoffConfig(base_s=0.05, ceiling_s=0.3),
        "breaker": {"failure_threshold": 1000},
    }
    return UplinkConfig.model_validate(base | values)


def _wait_until_subscribed(broker: MosquittoBroker, prefix: str) -> None:
    """Publish a probe batch until central acknowledges one: its worker is then subscribed."""
    probe = _unique("probe")
    transport = MqttTransport(probe, _uplink(broker, prefix, timeout_s=0.5))
    payload = health_event(probe, 0).model_dump_json().encode()
    try:
        eventually(
            "the central MQTT worker acknowledges a probe", lambda: isinstance(transport.send(probe, [payload]), Acked)
        )
    finally:
        transport.close()


@pytest.fixture(scope="module")
def subscribed_prefix(
    mqtt_broker: MosquittoBroker, dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A topic prefix with one running central MQTT worker that stores into ``dsn``."""
    prefix = _prefix()
    log_path = tmp_path_factory.mktemp("mqtt-worker") / "worker.log"
    worker = _worker(mqtt_broker, dsn, prefix, log_path, client_id=_unique("worker"), group=_unique("group"))
    try:
        _wait_until_subscribed(mqtt_broker, prefix)
        yield prefix
    finally:
        worker.stop()


def _delivery(agent: str, config: UplinkConfig, spool: Spool) -> Delivery:
    transport = MqttTransport(agent, config, rng=random.Random(2))
    return Delivery(agent, config, spool, transport, dead_letters=MemoryDeadLetters(), rng=random.Random(3))


def test_batches_are_stored_once_and_acknowledged_by_central(
    mqtt_broker: MosquittoBroker, dsn: str, subscribed_prefix: str, tmp_path: Path
) -> None:
    agent = _unique("edge-mqtt")
    config = _uplink(mqtt_broker, subscribed_prefix, batch_max_events=40)
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite")) as spool:
        delivery = _delivery(agent, config, spool)
        delivery.submit_many(site_events(agent, 200))
        stats = delivery.close(timeout=60)

    assert (stats.sent_events, stats.backlog_events, stats.refused_events) == (220, 0, 0)
    assert stats.stored_events + stats.duplicate_events == 220  # every event accounted for by central's acks
    assert stats.sent_batches >= 220 // 40
    assert stored_rows(dsn, agent) == {"count_intervals": 200, "health": 20}


def test_a_worker_killed_before_its_ack_makes_the_agent_resend_and_the_batch_is_stored_once(
    mqtt_broker: MosquittoBroker, dsn: str, tmp_path: Path
) -> None:
    agent = _unique("edge-mqtt-kill")
    prefix, client_id, group = _prefix(), _unique("worker"), _unique("group")
    # This worker receives the batch but cannot commit it (its database is down): it never acks.
    stuck = _worker(mqtt_broker, DATABASE_DOWN, prefix, tmp_path / "stuck.log", client_id=client_id, group=group)
    spool = Spool(SpoolConfig(path=tmp_path / "spool.sqlite"))
    delivery = _delivery(agent, _uplink(mqtt_broker, prefix, timeout_s=1.0), spool)
    try:
        delivery.submit_many(site_events(agent, 10))  # one batch of 11 events
        eventually("the worker holds the batch", lambda: "database unavailable" in stuck.log())
        retries = delivery.stats().retries
        eventually("the agent resends the unacknowledged batch", lambda: delivery.stats().retries > retries)
        stuck.stop(signal.SIGKILL)
        assert stored_rows(dsn, agent) == {"count_intervals": 0, "health": 0}

        # Same client id: its broker session hands over what the dead worker held, beside the agent's resends.
        good = _worker(mqtt_broker, dsn, prefix, tmp_path / "good.log", client_id=client_id, group=group)
        try:
            eventually("central acks the batch", lambda: delivery.stats().sent_events == 11, timeout_s=60)
            stats = delivery.close(timeout=10)
        finally:
            good.stop()
    finally:
        delivery.close(timeout=1)
        spool.close()

    assert stats.backlog_events == 0
    assert stored_rows(dsn, agent) == {"count_intervals": 10, "health": 1}
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT events_stored, events_duplicate FROM agent_ingest_stats WHERE agent_id = %s", (agent,)
        ).fetchone()
    assert row is not None
    stored, duplicates = row
    assert stored == 11
    assert duplicates >= 11  # the batch reached central at least twice: resent, not lost, not doubled


def test_mqtt_311_takes_the_brokers_puback_as_the_ack(
    mqtt_broker: MosquittoBroker, dsn: str, subscribed_prefix: str, tmp_path: Path
) -> None:
    agent = _unique("edge-mqtt311")
    config = _uplink(mqtt_broker, subscribed_prefix, {"protocol": "3.1.1"})
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite")) as spool:
        delivery = _delivery(agent, config, spool)
        delivery.submit_many(site_events(agent, 30))
        stats = delivery.close(timeout=30)

    assert (stats.sent_events, stats.backlog_events) == (33, 0)
    assert (stats.stored_events, stats.duplicate_events) == (0, 0)  # the broker cannot say what central stored
    eventually("the worker stores what the broker took", lambda: stored_rows(dsn, agent)["count_intervals"] == 30)
    assert stored_rows(dsn, agent) == {"count_intervals": 30, "health": 3}


def test_unreachable_broker_keeps_the_events_in_the_spool(tmp_path: Path) -> None:
    agent = _unique("edge-mqtt-down")
    config = UplinkConfig.model_validate(
        {
            "transport": "mqtt",
            "mqtt": {"host": "127.0.0.1", "port": 9, "connect_wait_s": 0.1},
            "retry": {"base_s": 0.05, "ceiling_s": 0.1},
        }
    )
    with Spool(SpoolConfig(path=tmp_path / "spool.sqlite")) as spool:
        delivery = _delivery(agent, config, spool)
        delivery.submit_many(site_events(agent, 5))
        stats = delivery.close(timeout=0.5)
    assert (stats.sent_events, stats.backlog_events) == (0, 6)
    assert "no connection to broker 127.0.0.1:9" in stats.last_error
