"""A site's field sensors: the broker they publish to, the sensors, and how the subscriber buffers.

The agent's config embeds one ``SensorsSiteConfig``; central, reading a province broker directly,
can use the same model. The sensor list is checked as a whole at load time (unique ids, one
format per shared topic), so a mistake is refused at start, not at the first message.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ioc_common.backoff import BackoffConfig
from ioc_common.sensors.broker import BrokerConfig
from ioc_common.sensors.config import SensorConfig, check_sensors


class SensorsSiteConfig(BaseModel):
    """Where the site's stations publish, which stations there are, and the subscriber's limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: BrokerConfig = Field(
        default_factory=BrokerConfig, description="The broker the stations publish to (defaults: local, MQTT 5)."
    )
    sensors: tuple[SensorConfig, ...] = Field(
        default=(), description="The stations read over MQTT; ids must be unique within the site."
    )
    queue_capacity: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Messages waiting between the network thread and the worker. Policy 'block': when full the "
        "network thread waits (counted as queue_waits) and the broker holds the rest; nothing is dropped.",
    )
    batch_max: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Most messages stored with one sink call (one fsync); the broker's inflight window "
        "(broker.receive_maximum) also bounds a batch.",
    )
    max_payload_bytes: int = Field(
        default=65_536, ge=64, le=16 * 1024 * 1024, description="Larger payloads are dead-lettered as too_large."
    )
    store_retry_backoff: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=0.2, ceiling_s=30.0),
        description="Delay between tries while the spool or the dead-letter store fails (nothing is "
        "acknowledged meanwhile, so nothing is lost).",
    )
    stop_timeout_s: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="On stop: how long to keep storing queued messages; the rest stay unacknowledged in the "
        "broker session and come back on the next start.",
    )

    @model_validator(mode="after")
    def _sensors_consistent(self) -> SensorsSiteConfig:
        check_sensors(self.sensors)
        return self

    def silent_after_s(self) -> dict[str, float]:
        """Sensor id -> seconds without a reading before it is reported silent (``SensorSubscriber``)."""
        return {sensor.id: sensor.silent_after_s for sensor in self.sensors}
