"""Declarative configuration of the alert notification sinks (webhooks, one MQTT broker, the SSE stream).

Every sink has its own bounded queue and retry policy, so a slow police endpoint cannot hold back
the operator pages. Secrets are ``SecretStr`` (never printed in logs or reprs) or read from a file,
so a YAML file in version control can name a secret without holding it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from ioc_common.backoff import BackoffConfig

SINK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""Webhook ids: short and printable, they name the sink in stats and logs (``webhook:<id>``)."""


class WebhookSinkConfig(BaseModel):
    """One HTTP endpoint that receives every alert transition as a signed JSON POST."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SINK_ID_PATTERN, description="Name of this webhook in stats and logs.")
    url: AnyHttpUrl = Field(description="http(s) URL the notice is POSTed to.")
    secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 signing key shared with the receiver; or use secret_file."
    )
    secret_file: Path | None = Field(
        default=None, description="File whose first line is the signing key (keeps the key out of the config)."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=300, description="Timeout of one POST (connect + answer), s.")
    max_attempts: int = Field(default=8, ge=1, le=100, description="Tries per notice before it counts as failed.")
    backoff: BackoffConfig = Field(
        default_factory=BackoffConfig, description="Delay between tries: exponential, full jitter, a ceiling."
    )
    queue_size: int = Field(
        default=1000, ge=1, le=1_000_000, description="Notices waiting for this webhook; when full the oldest drops."
    )

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookSinkConfig:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError(f"webhook {self.id!r}: set exactly one of secret and secret_file")
        if self.secret is not None and not self.secret.get_secret_value().strip():
            raise ValueError(f"webhook {self.id!r}: secret is empty")
        return self

    def signing_key(self) -> bytes:
        """The key: ``secret``, or the first line of ``secret_file`` (read now: rotating it needs a restart)."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        assert self.secret_file is not None  # guaranteed by the validator
        try:
            lines = self.secret_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"webhook {self.id!r}: cannot read secret_file {self.secret_file}: {error}") from error
        key = lines[0].strip() if lines else ""
        if not key:
            raise ValueError(f"webhook {self.id!r}: the first line of secret_file {self.secret_file} is empty")
        return key.encode()


class MqttSinkConfig(BaseModel):
    """The MQTT broker that alert notices are published to (QoS 1 by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port (8883 is the usual TLS port).")
    username: str | None = Field(default=None, description="User name; null for an anonymous broker.")
    password: SecretStr | None = Field(default=None, description="Password of username.")
    tls: bool = Field(default=False, description="Connect with TLS (server certificate verified).")
    ca_file: Path | None = Field(default=None, description="CA bundle for TLS; null: the system's trust store.")
    client_id: str = Field(
        default="ioc-central-alerts", min_length=1, max_length=128, description="MQTT client id; unique per process."
    )
    topic_prefix: str = Field(
        default="ioc/v1/alerts",
        min_length=1,
        description="Topics are {topic_prefix}/{rule_kind}/{subject}; no wildcards, no leading or trailing '/'.",
    )
    qos: Literal[0, 1, 2] = Field(default=1, description="Publish QoS; 1 waits for the broker's PUBACK.")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive, s.")
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="How long one try waits for the connection and then the PUBACK, s."
    )
    queue_size: int = Field(
        default=1000, ge=1, le=1_000_000, description="Notices waiting; when full the oldest drops."
    )
    max_attempts: int = Field(default=8, ge=1, le=100, description="Tries per notice before it counts as failed.")
    backoff: BackoffConfig = Field(
        default_factory=BackoffConfig,
        description="Delay between tries of one notice, and between reconnects (paho: exponential, no jitter).",
    )

    @model_validator(mode="after")
    def _topic_prefix_is_a_plain_topic(self) -> MqttSinkConfig:
        prefix = self.topic_prefix
        if any(ch in prefix for ch in "+#\0") or prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"topic_prefix {prefix!r} must not hold + # NUL nor start or end with '/'")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt password is set without a username")
        return self


class SseConfig(BaseModel):
    """The server-sent event stream for operator pages (``GET /api/v1/alerts/stream``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_queue_size: int = Field(
        default=100, ge=1, le=100_000, description="Notices waiting per connected client; when full the oldest drops."
    )
    heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, description="A comment line is sent this often so proxies keep the stream open."
    )


class SinksConfig(BaseModel):
    """Where alert notifications go; with the defaults only the SSE stream is on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: tuple[WebhookSinkConfig, ...] = Field(default=(), description="Signed HTTP endpoints.")
    mqtt: MqttSinkConfig | None = Field(default=None, description="MQTT broker to publish to; null: off.")
    sse: SseConfig = Field(default_factory=SseConfig, description="The operator pages' event stream.")

    @model_validator(mode="after")
    def _unique_webhook_ids(self) -> SinksConfig:
        ids = [webhook.id for webhook in self.webhooks]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"webhook ids must be unique, repeated: {duplicates}")
        return self
