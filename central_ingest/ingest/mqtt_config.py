"""Declarative configuration of one MQTT ingest worker (broker, share group, queue, retries).

Every knob has a default that suits the devstack mosquitto; production points ``host`` at a
clustered broker (EMQX, HiveMQ) and gives each worker a stable ``client_id`` (for example the
pod name) so a restarted worker resumes its broker session and gets its unacknowledged messages
back. See docs/mqtt_topics.md for the topic scheme and the broker ACL.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ioc_common.backoff import BackoffConfig

MQTT_MAX_RECEIVE_MAXIMUM = 65_535
"""MQTT 5 carries Receive Maximum in two bytes."""


def default_client_id() -> str:
    """``ioc-ingest-<host>-<pid>-<random>``: unique per process, still telling an operator where it runs."""
    host = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in socket.gethostname())[:32]
    return f"ioc-ingest-{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _plain_topic_text(value: str, what: str, *, slashes: bool) -> str:
    forbidden = "+#\0" if slashes else "+#/\0"
    if not value or any(ch in value for ch in forbidden) or value.startswith("/") or value.endswith("/"):
        shown = "+ # NUL" if slashes else "+ # / NUL"
        raise ValueError(f"{what} {value!r} must be non-empty, hold no {shown} and not start or end with '/'")
    return value


class MqttIngestConfig(BaseModel):
    """One ingest worker: which broker, which share group, how much it buffers, how it retries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is the usual TLS port).")
    username: str | None = Field(default=None, description="User name; null for an anonymous broker.")
    password: SecretStr | None = Field(default=None, description="Password of username (never printed).")
    tls: bool = Field(default=False, description="Connect with TLS (the server certificate is verified).")
    ca_file: Path | None = Field(default=None, description="CA bundle for TLS; null: the system's trust store.")
    client_id: str = Field(
        default_factory=default_client_id,
        min_length=1,
        max_length=128,
        description="MQTT client id, unique per worker. Default: unique per process; set a stable one per "
        "worker instance so a restarted worker resumes its session and gets its unacknowledged messages back.",
    )
    share_group: str = Field(
        default="ioc-ingest",
        description="Shared-subscription group: workers of one group split the messages between them.",
    )
    topic_prefix: str = Field(
        default="ioc/v1", description="Agents publish to {topic_prefix}/agents/{agent_id}/events."
    )
    queue_size: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Messages waiting between the network thread and the database writer. Policy 'block': "
        "when full the network thread waits (counted as queue_waits) and the broker stops sending.",
    )
    receive_maximum: int = Field(
        default=64,
        ge=1,
        le=MQTT_MAX_RECEIVE_MAXIMUM,
        description="MQTT 5 Receive Maximum: most unacknowledged messages the broker sends this worker at once.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive, seconds.")
    reconnect_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=1.0, ceiling_s=60.0),
        description="Delay between broker reconnects: exponential, full jitter, a ceiling (base_s = min).",
    )
    store_retry_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=0.5, ceiling_s=30.0),
        description="Delay between tries of one message while the database is unavailable (it is not "
        "acknowledged meanwhile, so nothing is lost).",
    )
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        le=4_294_967_295,
        description="How long the broker keeps this worker's session (and its unacknowledged QoS 1 messages) "
        "after a disconnect; connections use clean_start=False.",
    )
    max_payload_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Largest message, compressed and decompressed (gzip bombs); null: the service's max_body_bytes.",
    )
    drain_timeout_s: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="On stop: how long to keep storing queued messages after unsubscribing; the rest stay "
        "unacknowledged and are delivered again.",
    )

    @model_validator(mode="after")
    def _check(self) -> MqttIngestConfig:
        _plain_topic_text(self.topic_prefix, "topic_prefix", slashes=True)
        _plain_topic_text(self.share_group, "share_group", slashes=False)
        if self.password is not None and self.username is None:
            raise ValueError("mqtt password is set without a username")
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is set but tls is false")
        return self
