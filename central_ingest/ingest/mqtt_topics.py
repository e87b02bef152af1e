"""The MQTT topic scheme and payload decoding, as pure functions (no broker, no database).

Agents publish one EventBatch per message to ``{prefix}/agents/{agent_id}/events`` (QoS 1, not
retained, JSON or gzip-compressed JSON). Ingest workers subscribe to
``$share/{group}/{prefix}/agents/+/events``. The agent id level is the sender's identity: the
broker's ACL lets a user publish only under its own id, so the id read here from the topic plays
the role the token plays on HTTP. Alerts go out under ``{prefix}/alerts/...`` (the alert sinks).
See docs/mqtt_topics.md.
"""

from __future__ import annotations

import re
from typing import Final

from central_ingest.ingest.body import BodyError, gunzip_limited
from event_contract.models import IDENTIFIER_PATTERN

GZIP_MAGIC: Final = b"\x1f\x8b"
"""A gzip stream starts with these bytes; JSON never does, so no flag is needed."""

_AGENT_ID: Final = re.compile(IDENTIFIER_PATTERN)


class TopicError(ValueError):
    """The topic is not ``{prefix}/agents/{agent_id}/events`` with a valid agent id."""


class PayloadError(ValueError):
    """The message cannot be read as a batch: too large or damaged gzip."""


def agent_topic(prefix: str, agent_id: str) -> str:
    """Where ``agent_id`` publishes its batches."""
    return f"{prefix}/agents/{agent_id}/events"


def shared_subscription(prefix: str, group: str) -> str:
    """What a worker of ``group`` subscribes to: every agent's batches, split between the group's workers."""
    return f"$share/{group}/{prefix}/agents/+/events"


def agent_id_from_topic(prefix: str, topic: str) -> str:
    """The agent id level of ``topic``; ``TopicError`` when the topic does not follow the scheme."""
    head = f"{prefix}/agents/"
    if not topic.startswith(head) or not topic.endswith("/events"):
        raise TopicError(f"topic {topic!r} is not {agent_topic(prefix, '{agent_id}')}")
    agent_id = topic[len(head) : -len("/events")]
    if not _AGENT_ID.fullmatch(agent_id):
        raise TopicError(f"topic {topic!r}: {agent_id!r} is not a valid agent id ({IDENTIFIER_PATTERN})")
    return agent_id


def decode_payload(payload: bytes, limit: int) -> bytes:
    """The batch JSON: ``payload`` itself, or gunzipped when it starts with the gzip magic bytes.

    ``limit`` applies to the message and to the decompressed bytes (a small gzip bomb cannot
    expand into gigabytes).
    """
    if len(payload) > limit:
        raise PayloadError(f"message of {len(payload)} bytes exceeds the limit of {limit} bytes")
    if not payload.startswith(GZIP_MAGIC):
        return payload
    try:
        return gunzip_limited(payload, limit)
    except BodyError as error:
        raise PayloadError(error.message) from None
