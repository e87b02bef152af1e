"""Site-config sections of the traffic stages: a camera's ``plates:``, the agent's ``plate_worker:`` and
``signal_feed:``. (A camera's ``violations:`` is ``edge_agent.violations.config.ViolationRulesConfig``; the
agent's ``evidence:`` is ``edge_agent.evidence.config.EvidenceConfig``.)"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.plates.config import PlateReadingConfig
from event_contract.models import Identifier
from event_contract.taxonomy import VehicleClass
from ioc_common.mqtt_connection import BrokerConnection

DEFAULT_PLATE_CLASSES: tuple[VehicleClass, ...] = ("motorbike", "car", "van", "bus", "truck", "three_wheeler")


class PlateCameraConfig(BaseModel):
    """Plate reading on one camera: the reader, which vehicles, and the line whose crossing is a pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reader: PlateReadingConfig = Field(
        default_factory=PlateReadingConfig,
        description="Plate finder/recogniser backend and the per-track vote (which frames are read). Cameras with "
        "the same reader settings share one model in the agent's plate worker.",
    )
    pass_line_id: Identifier | None = Field(
        default=None,
        description="Counting line (lines[].id) whose crossing makes a plate pass, with its direction. Null: "
        "every tracked vehicle with a read plate is a pass when its track ends (no direction).",
    )
    plate_wait_s: float = Field(
        default=3.0,
        ge=0,
        le=60,
        description="A pass is emitted this long after the line crossing (or when the track ends, if sooner), so "
        "reads still in flight vote; a violation waits this long for its vehicle's plate, then goes without it.",
    )
    classes: tuple[VehicleClass, ...] = Field(
        default=DEFAULT_PLATE_CLASSES,
        min_length=1,
        description="Vehicle classes whose plates are read (bicycles have none).",
    )
    crop_margin: float = Field(
        default=0.05, ge=0, le=0.5, description="The vehicle crop is the box grown by this share on each side."
    )
    track_end_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A track unseen this long has ended: its pass (if it crossed) is decided with the final vote.",
    )
    max_tracks: int = Field(
        default=512, ge=1, le=100_000, description="Tracks followed at once; beyond it the oldest seen is dropped."
    )
    keyframe: bool = Field(
        default=True,
        description="Store the best plate crop of each pass as an evidence keyframe (personal data: see "
        "evidence.upload and max_age_days).",
    )


class PlateWorkerConfig(BaseModel):
    """The agent's one plate-reading thread, shared by every camera with ``plates``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_capacity: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="Crops waiting to be read; when full the OLDEST is dropped (drop_oldest, counted as "
        "jobs_dropped): the voter offers a vehicle still in view again.",
    )
    result_capacity: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Readings waiting for each camera's analytics thread; when full the oldest is dropped (counted).",
    )


class SignalFeedConfig(BrokerConnection):
    """The junction's signal controller feed over MQTT: each message sets one signal's state (``signals[].mqtt``)."""

    CLIENT_ID_FORMAT: ClassVar[str] = "ioc-signals-{agent_id}"

    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id; null: 'ioc-signals-<agent id>'. Two clients must never share one.",
    )
    topic: str = Field(
        default="ioc/v1/signals/#",
        min_length=1,
        max_length=256,
        description="Topic filter the controller publishes signal states on (JSON, see docs/edge_traffic.md).",
    )
    qos: Literal[0, 1] = Field(
        default=1, description="Subscription QoS: 1, the broker re-sends until the agent has the message."
    )
    session_expiry_s: int = Field(
        default=0,
        ge=0,
        le=86_400,
        description="MQTT 5 session kept after a disconnect; 0: none (an old signal state is worth nothing later).",
    )

    @model_validator(mode="after")
    def _topic(self) -> SignalFeedConfig:
        if "\0" in self.topic:
            raise ValueError("topic must not hold NUL")
        return self
