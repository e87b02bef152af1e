"""MQTT ingest without a broker: topic scheme, payload decoding, config checks, and the message
handler's decisions (dead letter, store, retry while the database is down) with a fake ingestor."""

from __future__ import annotations

import asyncio
import gzip
import random
from dataclasses import dataclass, field

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from central_ingest.ingest.batch import FieldError, InvalidBatchError
from central_ingest.ingest.mqtt_config import MqttIngestConfig
from central_ingest.ingest.mqtt_handler import MessageHandler, ReceivedMessage
from central_ingest.ingest.mqtt_topics import (
    PayloadError,
    TopicError,
    agent_id_from_topic,
    agent_topic,
    decode_payload,
    shared_subscription,
)
from central_ingest.ingest.pipeline import AgentMismatchError
from central_ingest.store.writer import Channel
from event_contract import BatchAck
from ioc_common.backoff import BackoffConfig

# --- topics ---------------------------------------------------------------------------------


def test_agent_topic_and_shared_subscription_follow_the_scheme() -> None:
    assert agent_topic("ioc/v1", "agent-7") == "ioc/v1/agents/agent-7/events"
    assert shared_subscription("ioc/v1", "ioc-ingest") == "$share/ioc-ingest/ioc/v1/agents/+/events"


def test_agent_id_is_read_back_from_its_topic() -> None:
    assert agent_id_from_topic("ioc/v1", agent_topic("ioc/v1", "hue.cam:01_a")) == "hue.cam:01_a"
    assert agent_id_from_topic("site/x", "site/x/agents/a1/events") == "a1"


@pytest.mark.parametrize(
    "topic",
    [
        "ioc/v1/agents/a1/alerts",  # not the events level
        "ioc/v2/agents/a1/events",  # another prefix
        "ioc/v1/agents//events",  # empty agent id
        "ioc/v1/agents/a1/x/events",  # two levels where the id should be
        "ioc/v1/agents/-a1/events",  # an id must start with a letter or digit
        "ioc/v1/agents/" + "a" * 65 + "/events",  # longer than an identifier may be
        "ioc/v1/events",
        "",
    ],
)
def test_topics_outside_the_scheme_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        agent_id_from_topic("ioc/v1", topic)


# --- payloads -------------------------------------------------------------------------------


def test_plain_json_passes_through_and_gzip_is_detected_by_its_magic_bytes() -> None:
    body = b'{"agent_id": "a1", "events": []}'
    assert decode_payload(body, 1024) == body
    assert decode_payload(gzip.compress(body), 1024) == body


def test_payload_over_the_limit_is_refused_before_decompression() -> None:
    assert decode_payload(b"x" * 1024, 1024) == b"x" * 1024
    with pytest.raises(PayloadError, match="1025 bytes exceeds the limit of 1024"):
        decode_payload(b"x" * 1025, 1024)


def test_gzip_bomb_and_damaged_gzip_are_refused() -> None:
    bomb = gzip.compress(b" " * 100_000)
    assert len(bomb) < 1024
    with pytest.raises(PayloadError, match="decompressed body exceeds the limit of 1024 bytes"):
        decode_payload(bomb, 1024)
    with pytest.raises(PayloadError, match="corrupt"):
        decode_payload(b"\x1f\x8bnot really gzip", 1024)
    with pytest.raises(PayloadError, match="truncated"):
        decode_payload(gzip.compress(b"{}" * 50)[:-12], 1024)


# --- config ---------------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = MqttIngestConfig()
    assert (config.port, config.share_group, config.topic_prefix, config.queue_size) == (
        1883,
        "ioc-ingest",
        "ioc/v1",
        64,
    )
    assert config.max_payload_bytes is None
    assert config.client_id.startswith("ioc-ingest-")
    assert MqttIngestConfig().client_id != config.client_id  # unique per process, and per worker within it


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"share_group": "a/b"}, "share_group"),
        ({"share_group": "g+"}, "share_group"),
        ({"topic_prefix": "ioc/#"}, "topic_prefix"),
        ({"topic_prefix": "/ioc"}, "topic_prefix"),
        ({"password": "secret"}, "without a username"),
        ({"ca_file": "/etc/ssl/ca.pem"}, "tls is false"),
        ({"queue_size": 0}, "queue_size"),
        ({"brokr": "x"}, "brokr"),
    ],
)
def test_config_refuses_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttIngestConfig.model_validate(overrides)


# --- the message handler with a fake ingestor -----------------------------------------------

GOOD_ACK = BatchAck(received=3, stored=2, duplicates=0, rejected=1)


@dataclass
class FakeIngestor:
    """Raises the queued errors first, then answers ``ack``; records every call."""

    errors: list[Exception] = field(default_factory=list)
    ack: BatchAck = GOOD_ACK
    ingested: list[tuple[bytes, str]] = field(default_factory=list)
    refused: list[tuple[bytes, str | None, str]] = field(default_factory=list)

    async def ingest(self, payload: bytes, *, agent_id: str, channel: Channel) -> BatchAck:
        assert channel == "mqtt"
        self.ingested.append((payload, agent_id))
        if self.errors:
            raise self.errors.pop(0)
        return self.ack

    async def refuse_unreadable(self, payload: bytes, agent_id: str | None, channel: Channel, reason: str) -> None:
        assert channel == "mqtt"
        self.refused.append((payload, agent_id, reason))


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def _handler(ingestor: FakeIngestor, sleep: RecordingSleep | None = None) -> MessageHandler:
    return MessageHandler(
        ingestor,
        topic_prefix="ioc/v1",
        max_payload_bytes=1024,
        retry_backoff=BackoffConfig(base_s=0.5, ceiling_s=4.0),
        rng=random.Random(7),
        sleep=sleep or RecordingSleep(),
    )


def _message(payload: bytes, topic: str = "ioc/v1/agents/a1/events") -> ReceivedMessage:
    return ReceivedMessage(topic=topic, payload=payload, mid=5, qos=1)


def test_good_message_is_ingested_under_the_topics_agent_and_counted() -> None:
    ingestor = FakeIngestor()
    handler = _handler(ingestor)
    asyncio.run(handler.handle(_message(gzip.compress(b'{"batch": 1}'))))
    assert ingestor.ingested == [(b'{"batch": 1}', "a1")]
    counters = handler.counters
    assert (counters.stored_events, counters.duplicates, counters.rejected_events) == (2, 0, 1)
    assert (counters.refused_payloads, counters.store_retries) == (0, 0)


def test_bad_topic_is_dead_lettered_without_an_agent_and_never_ingested() -> None:
    ingestor = FakeIngestor()
    handler = _handler(ingestor)
    asyncio.run(handler.handle(_message(b"{}", topic="ioc/v1/agents/a1/status")))
    assert ingestor.ingested == []
    [(payload, agent_id, reason)] = ingestor.refused
    assert (payload, agent_id) == (b"{}", None)
    assert "is not ioc/v1/agents/{agent_id}/events" in reason
    assert handler.counters.refused_payloads == 1


def test_oversized_message_is_dead_lettered_cut_to_the_limit() -> None:
    ingestor = FakeIngestor()
    handler = _handler(ingestor)
    asyncio.run(handler.handle(_message(b"y" * 5000)))
    [(payload, agent_id, reason)] = ingestor.refused
    assert (payload, agent_id) == (b"y" * 1024, "a1")
    assert reason == "message of 5000 bytes exceeds the limit of 1024 bytes (first 1024 bytes kept)"


def test_refusals_raised_by_the_ingestor_are_finished_not_retried() -> None:
    ingestor = FakeIngestor(
        errors=[InvalidBatchError((FieldError("(batch)", "bad"),), 1), AgentMismatchError("other agent")]
    )
    handler = _handler(ingestor)
    asyncio.run(handler.handle(_message(b"not json")))
    asyncio.run(handler.handle(_message(b'{"agent_id": "a2"}')))
    assert len(ingestor.ingested) == 2
    assert ingestor.refused == []  # the Ingestor keeps those dead letters itself
    assert (handler.counters.refused_payloads, handler.counters.store_retries) == (2, 0)


def test_database_unavailable_retries_the_same_message_with_backoff_until_it_is_stored() -> None:
    ingestor = FakeIngestor(
        errors=[
            psycopg.OperationalError("connection refused"),
            PoolTimeout("no connection in 10 s"),
            psycopg.OperationalError("the database system is starting up"),
        ]
    )
    sleep = RecordingSleep()
    handler = _handler(ingestor, sleep)
    asyncio.run(handler.handle(_message(b'{"batch": 2}')))
    assert ingestor.ingested == [(b'{"batch": 2}', "a1")] * 4
    assert len(sleep.delays) == 3
    for attempt, delay in enumerate(sleep.delays):  # full jitter under the exponential cap
        assert 0.0 <= delay <= min(4.0, 0.5 * 2**attempt)
    assert (handler.counters.store_retries, handler.counters.stored_events) == (3, 2)


def test_handle_does_not_return_while_the_database_stays_down() -> None:
    """The worker acknowledges only after ``handle`` returns: while storing fails it must not return."""

    class DownIngestor(FakeIngestor):
        async def ingest(self, payload: bytes, *, agent_id: str, channel: Channel) -> BatchAck:
            self.ingested.append((payload, agent_id))
            raise psycopg.OperationalError("connection refused")

    ingestor = DownIngestor()
    sleep = RecordingSleep()
    handler = _handler(ingestor, sleep)

    async def scenario() -> bool:
        task = asyncio.create_task(handler.handle(_message(b"{}")))
        while len(ingestor.ingested) < 20:
            await asyncio.sleep(0)
        finished = task.done()
        task.cancel()
        return finished

    assert asyncio.run(scenario()) is False
    assert handler.counters.store_retries >= 19
    assert max(sleep.delays) <= 4.0  # the ceiling holds after many tries
    assert ingestor.refused == []


def test_unexpected_error_is_dead_lettered_with_its_reason_so_the_worker_goes_on() -> None:
    ingestor = FakeIngestor(errors=[psycopg.errors.NumericValueOutOfRange("value out of range")])
    handler = _handler(ingestor)
    asyncio.run(handler.handle(_message(b'{"batch": 3}')))
    [(payload, agent_id, reason)] = ingestor.refused
    assert (payload, agent_id) == (b'{"batch": 3}', "a1")
    assert reason == "could not be stored: NumericValueOutOfRange: value out of range"
    assert (handler.counters.failed_payloads, handler.counters.refused_payloads) == (1, 1)
