"""Central's MQTT replies (outcome + BatchAck after the commit) and how the agent's transport reads them."""

from __future__ import annotations

import asyncio
import random

import pytest

from central_ingest.ingest.batch import FieldError, InvalidBatchError
from central_ingest.ingest.mqtt_handler import (
    ACK_OUTCOME_PROPERTY,
    BatchReply,
    MessageHandler,
    ReceivedMessage,
    refused_reply,
    reply_topic,
)
from central_ingest.store.writer import Channel
from edge_agent.delivery import mqtt_uplink
from edge_agent.delivery.mqtt_uplink import acks_topic, events_topic, outcome_of_reply
from edge_agent.delivery.transport import Acked, Refused, Retry, TooLarge
from event_contract import BatchAck, Rejection
from ioc_common.backoff import BackoffConfig

PREFIX = "ioc/v1"


class Ingestor:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.refused: list[str] = []

    async def ingest(self, payload: bytes, *, agent_id: str, channel: Channel) -> BatchAck:
        if self.error is not None:
            raise self.error
        return BatchAck(received=3, stored=2, duplicates=1)

    async def refuse_unreadable(self, payload: bytes, agent_id: str | None, channel: Channel, reason: str) -> None:
        self.refused.append(reason)


def _handle(ingestor: Ingestor, payload: bytes = b"{}") -> BatchReply:
    handler = MessageHandler(
        ingestor, topic_prefix=PREFIX, max_payload_bytes=1024, retry_backoff=BackoffConfig(), rng=random.Random(1)
    )
    return asyncio.run(handler.handle(ReceivedMessage(events_topic(PREFIX, "a1"), payload, mid=1, qos=1)))


def test_the_handler_answers_every_finished_message() -> None:
    stored = _handle(Ingestor())
    assert stored == BatchReply("stored", BatchAck(received=3, stored=2, duplicates=1))

    refused = _handle(Ingestor(InvalidBatchError((FieldError("(batch)", "not json"),), 1)))
    assert refused.outcome == "refused"
    assert refused.ack.received == 0
    assert "not json" in refused.ack.rejections[0].reason

    too_large = _handle(Ingestor(), b"x" * 2000)
    assert too_large.outcome == "too_large"
    assert "exceeds the limit of 1024 bytes" in too_large.ack.rejections[0].reason


def _message(response_topic: str | None, topic: str = "ioc/v1/agents/a1/events") -> ReceivedMessage:
    return ReceivedMessage(topic, b"{}", 1, 1, response_topic=response_topic, correlation_data=b"c")


@pytest.mark.parametrize(
    ("topic", "response_topic", "allowed"),
    [
        ("ioc/v1/agents/a1/events", "ioc/v1/agents/a1/acks/ioc-agent-a1-uplink", True),
        ("ioc/v1/agents/a1/events", None, False),
        ("ioc/v1/agents/a1/events", "ioc/v1/agents/a2/acks/x", False),  # another agent's acks
        ("ioc/v1/agents/a1/events", "ioc/v1/alerts/fire/x", False),  # anywhere else
        ("ioc/v1/agents/a1/events", "ioc/v1/agents/a1/acks/", False),
        ("ioc/v1/agents/a1/events", "ioc/v1/agents/a1/acks/x/y", False),
        ("ioc/v1/agents/a1/events", "ioc/v1/agents/a1/acks/+", False),
        ("ioc/v1/agents/-bad/events", "ioc/v1/agents/-bad/acks/x", False),  # no valid sender
    ],
)
def test_a_reply_goes_only_to_the_senders_own_acks_topic(topic: str, response_topic: str | None, allowed: bool) -> None:
    assert (reply_topic(PREFIX, _message(response_topic, topic)) is not None) is allowed


def test_the_agent_reads_each_reply_outcome() -> None:
    ack = BatchAck(received=2, stored=1, duplicates=0, rejected=1, rejections=(Rejection(index=1, reason="bad"),))
    assert outcome_of_reply(ack.model_dump_json().encode(), [(ACK_OUTCOME_PROPERTY, "stored")]) == Acked(ack)
    assert outcome_of_reply(ack.model_dump_json().encode(), None) == Acked(ack)

    refused = refused_reply("refused", "invalid batch, 1 error(s)")
    outcome = outcome_of_reply(refused.body(), [("other", "x"), (ACK_OUTCOME_PROPERTY, "refused")])
    assert outcome == Refused("central refused the batch: invalid batch, 1 error(s)")

    too_large = refused_reply("too_large", "message of 9 MB exceeds the limit")
    assert isinstance(outcome_of_reply(too_large.body(), [(ACK_OUTCOME_PROPERTY, "too_large")]), TooLarge)

    assert isinstance(outcome_of_reply(b"garbage", [(ACK_OUTCOME_PROPERTY, "stored")]), Retry)


def test_both_sides_name_the_outcome_property_alike_and_the_topics_follow_the_scheme() -> None:
    assert mqtt_uplink.ACK_OUTCOME_PROPERTY == ACK_OUTCOME_PROPERTY
    assert events_topic(PREFIX, "a1") == "ioc/v1/agents/a1/events"
    assert acks_topic(PREFIX, "a1", "c1") == "ioc/v1/agents/a1/acks/c1"
