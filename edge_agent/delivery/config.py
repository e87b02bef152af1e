"""How the agent delivers its spooled events to central: the transport (HTTP or MQTT), batching, retries.

``UplinkConfig`` is the ``central:`` section of a site config. It is frozen and refuses unknown keys;
the keys of the old in-memory queue (``queue_capacity``, ``queue_policy``) are refused with an error
that says what replaced them, so an old site config fails loudly at ``validate-config`` instead of
being half-understood.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge_agent.delivery.circuit_breaker import BreakerConfig
from event_contract import MAX_BATCH_EVENTS
from ioc_common.backoff import BackoffConfig
from ioc_common.mqtt_connection import MQTT_MAX_SESSION_EXPIRY_S, BrokerConnection
from ioc_common.secret_files import read_secret_file

MIB = 1024 * 1024


class MqttUplinkConfig(BrokerConnection):
    """The broker an agent publishes its batches to (``transport: mqtt``); see docs/mqtt_topics.md.

    The connection (login, TLS with client certificates, session) is the one the sensor subscriber uses.
    """

    CLIENT_ID_FORMAT: ClassVar[str] = "ioc-agent-{agent_id}-uplink"

    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version. 5: central acknowledges each batch after committing it (response topic + "
        "correlation data). 3.1.1: only the broker's PUBACK is awaited, a weaker guarantee (see docs).",
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id; null: 'ioc-agent-{agent_id}-uplink', stable across restarts.",
    )
    username: str | None = Field(default=None, description="User name; make it the agent id (one ACL pattern).")
    session_expiry_s: int = Field(
        default=300,
        ge=0,
        le=MQTT_MAX_SESSION_EXPIRY_S,
        description="MQTT 5: how long the broker keeps this client's session (acks published while it "
        "reconnects) after a disconnect.",
    )
    topic_prefix: str = Field(default="ioc/v1", min_length=1, description="Batches go to {prefix}/agents/{id}/events.")
    connect_wait_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a send waits for a broker connection before it counts as a failed try.",
    )

    @model_validator(mode="after")
    def _topic_prefix(self) -> MqttUplinkConfig:
        if any(ch in self.topic_prefix for ch in "+#\0") or self.topic_prefix.strip("/") != self.topic_prefix:
            raise ValueError(f"topic_prefix {self.topic_prefix!r} must hold no + # NUL and not start/end with '/'")
        return self


class UplinkConfig(BaseModel):
    """Where events go to central and how: transport, batching, retries, circuit breaker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["http", "mqtt"] = Field(
        default="http", description="http: POST batches to url; mqtt: publish them to the broker in mqtt."
    )
    url: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL of central ingest, e.g. https://ioc.example.vn; /api/v1/events is added. "
        "Required with transport http.",
    )
    token: SecretStr | None = Field(default=None, description="Bearer token of this agent (http). Prefer token_file.")
    token_file: Path | None = Field(
        default=None, description="File holding the bearer token (first line), read when the uplink starts."
    )
    mqtt: MqttUplinkConfig | None = Field(default=None, description="The broker; required with transport mqtt.")
    batch_max_events: int = Field(
        default=500, ge=1, le=MAX_BATCH_EVENTS, description="Most events in one batch (central accepts up to 5000)."
    )
    batch_max_bytes: int = Field(
        default=MIB,
        ge=1024,
        le=64 * MIB,
        description="Most bytes of event JSON in one batch (before gzip); a single larger event goes alone.",
    )
    flush_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="With fewer than batch_max_events waiting, the longest the sender waits for a batch to fill.",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="HTTP connect/read timeout per request; MQTT: how long a batch waits for central's ack.",
    )
    retry: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=0.5, ceiling_s=60.0),
        description="Backoff between failed tries (exponential, full jitter; Retry-After honoured up to the ceiling).",
    )
    breaker: BreakerConfig = Field(
        default_factory=BreakerConfig,
        description="Circuit breaker: after repeated failures stop sending and probe with one small batch.",
    )
    live_share: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Share of each batch taken from the newest events of a priority while a backlog drains "
        "oldest-first, so live data is not stuck behind hours of backlog.",
    )
    gzip: bool = Field(default=True, description="Compress batches (HTTP Content-Encoding: gzip; MQTT gzip payload).")
    queue_capacity: None = Field(
        default=None, exclude=True, description="Replaced by the spool's max_bytes; setting it is an error."
    )
    queue_policy: None = Field(
        default=None, exclude=True, description="Replaced by the spool's drop policy; setting it is an error."
    )

    @field_validator("queue_capacity", mode="before")
    @classmethod
    def _capacity_replaced(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "queue_capacity was replaced by spool.max_bytes: unsent events now wait in a durable spool on "
                "disk; remove queue_capacity from central: and size the spool with spool: {max_bytes: ...}"
            )

    @field_validator("queue_policy", mode="before")
    @classmethod
    def _policy_replaced(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "queue_policy was replaced by the spool's drop policy (lowest priority, oldest first; see "
                "docs/edge_spool.md): remove queue_policy from central:"
            )

    @model_validator(mode="after")
    def _transport_settings(self) -> UplinkConfig:
        if self.transport == "http":
            if self.url is None:
                raise ValueError("transport http needs url: the base URL of central ingest")
            if self.token is not None and self.token_file is not None:
                raise ValueError("set either token or token_file, not both")
            if self.token is None and self.token_file is None:
                raise ValueError("set token or token_file: central accepts only authenticated agents")
            if self.mqtt is not None:
                raise ValueError("mqtt is set but transport is http: set transport: mqtt or remove mqtt")
        else:
            if self.mqtt is None:
                raise ValueError("transport mqtt needs mqtt: {host: ...}, the broker to publish to")
            if self.url is not None or self.token is not None or self.token_file is not None:
                raise ValueError("url/token/token_file are for transport http; the broker login is under mqtt")
        return self

    def resolve_token(self) -> str:
        """The bearer token; reads ``token_file`` now, with an error that names the file."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is None:
            raise ValueError("no token: transport http needs token or token_file")
        return read_secret_file(self.token_file, "central token_file")
