"""Site configuration of one edge agent: pydantic models, YAML loading, errors that point at lines.

A config file names the agent, where central is, its cameras (traffic counting, violations and plates, or
construction progress: ``progress:``) and field sensors, and where its
durable state (the store-and-forward spool, the dead letters) lives. Anything set
under ``defaults`` applies to every camera unless the camera sets it itself
(mappings are merged key by key, lists are replaced), in the manner of Frigate.

``load_config(path)`` returns a validated ``AgentConfig`` or raises ``ConfigError``
whose issues each carry ``FILE:LINE:COL`` of the offending YAML node, so
``edge-agent validate-config FILE`` can show a technician the exact line.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.analytics.coverage import DEFAULT_MAX_FRAME_GAP_S
from edge_agent.analytics.lines import LineConfig
from edge_agent.analytics.zones import ZoneConfig
from edge_agent.delivery.config import UplinkConfig
from edge_agent.delivery.dead_letters import DeadLetterConfig
from edge_agent.delivery.queues import QueuePolicy
from edge_agent.delivery.spool import SpoolConfig
from edge_agent.evidence.config import EvidenceConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.motion_gate import MotionGateConfig
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.preview.config import PreviewConfig
from edge_agent.progress.config import ProgressCameraConfig
from edge_agent.sources.pyav_reader import ReaderConfig
from edge_agent.traffic.config import PlateCameraConfig, PlateWorkerConfig, SignalFeedConfig
from edge_agent.violations.config import ViolationRulesConfig
from event_contract.models import Identifier
from ioc_common.sensors.site import SensorsSiteConfig
from ioc_common.yaml_files import ConfigError, ConfigIssue, Loc, load_model, parse_model

__all__ = ["AgentConfig", "CameraConfig", "ConfigError", "ConfigIssue", "load_config", "parse_config"]


class CameraConfig(ReaderConfig):
    """One camera: how to read it (the ``ReaderConfig`` fields), what to detect, where to count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier = Field(description="Stable camera id, sent in events as source_id.")
    name: str = Field(default="", max_length=200, description="Display name, e.g. 'Cầu Trường Tiền - hướng Lê Lợi'.")
    queue_policy: QueuePolicy = Field(
        default="drop_oldest",
        description="Reader -> analytics hand-off. drop_oldest: analytics always takes the newest frame and "
        "latency never grows (dropped frames are counted); block: every frame is analysed (offline files).",
    )
    queue_capacity: int = Field(
        default=1, ge=1, le=256, description="Frames held between reader and analytics; 1 = latest-frame mailbox."
    )
    detector: DetectorConfig = Field(
        default_factory=DetectorConfig, description="Detector backend and its model; usually set once under defaults."
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="Multi-object tracker settings.")
    motion_gate: MotionGateConfig = Field(
        default_factory=MotionGateConfig,
        description="Skip the detector on frames where nothing moved (off by default; not with backend motion).",
    )
    # Lengths are checked in the validators below, not with min_length: pydantic would also report
    # "too short" for a list whose only item is invalid, pointing the user at the wrong problem.
    lines: tuple[LineConfig, ...] = Field(default=(), description="Counting lines of this camera (0 to 64).")
    zones: tuple[ZoneConfig, ...] = Field(
        default=(), description="Zones (polygons) with occupancy and dwell time (0 to 64)."
    )
    violations: ViolationRulesConfig | None = Field(
        default=None,
        description="Violation and incident rules, signal heads and congestion zones (docs/edge_traffic.md); "
        "none if unset.",
    )
    plates: PlateCameraConfig | None = Field(
        default=None, description="Plate reading and vehicle passes at a pass line (personal data); none if unset."
    )
    progress: ProgressCameraConfig | None = Field(
        default=None,
        description="Construction site camera: daily progress of work packages against reference images, site "
        "activity and a daily timelapse keyframe (docs/site_progress.md); none if unset.",
    )
    max_frame_gap_s: float = Field(
        default=DEFAULT_MAX_FRAME_GAP_S,
        gt=0,
        le=600,
        description="Data quality: the most source time one analysed frame credits as 'analysed' (the gap since "
        "the previous analysed frame, capped at this). Gaps longer than tracking can bridge are not coverage.",
    )

    @model_validator(mode="after")
    def _unique_line_ids(self) -> CameraConfig:
        too_many = len(self.lines) > 64 or len(self.zones) > 64
        if too_many or not (self.lines or self.zones or self.violations or self.progress):
            raise ValueError(
                f"camera {self.id!r}: give 1 to 64 counting lines and/or 1 to 64 zones (or violations: or "
                f"progress:), got {len(self.lines)} lines and {len(self.zones)} zones"
            )
        _require_unique((line.id for line in self.lines), f"camera {self.id!r}: line id")
        _require_unique((zone.id for zone in self.zones), f"camera {self.id!r}: zone id")
        return self

    @model_validator(mode="after")
    def _pass_line_exists(self) -> CameraConfig:
        if self.plates is not None and self.plates.pass_line_id is not None:
            known = [line.id for line in self.lines]
            if self.plates.pass_line_id not in known:
                raise ValueError(
                    f"camera {self.id!r}: plates.pass_line_id {self.plates.pass_line_id!r} is not one of its "
                    f"lines {known}"
                )
        return self

    @property
    def keeps_evidence(self) -> bool:
        """Whether this camera stores keyframes: violations, plates, or a construction timelapse."""
        timelapse = self.progress is not None and self.progress.timelapse.enabled
        return self.violations is not None or self.plates is not None or timelapse

    @property
    def feed_signals(self) -> tuple[str, ...]:
        """Signal ids this camera reads from the controller feed (``violations.signals[].mqtt``)."""
        if self.violations is None:
            return ()
        return tuple(signal.mqtt for signal in self.violations.signals if signal.mqtt is not None)

    @model_validator(mode="after")
    def _gate_fits_detector(self) -> CameraConfig:
        if self.motion_gate.enabled and self.detector.backend == "motion":
            raise ValueError(
                f"camera {self.id!r}: motion_gate does not combine with detector backend 'motion', which must see "
                "every frame to keep its background model (and already detects only what moves)"
            )
        return self


class AgentConfig(BaseModel):
    """Everything one edge agent needs to run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: Identifier = Field(description="Unique id of this agent (one per site box), e.g. 'hue-phu-hoi-01'.")
    central: UplinkConfig = Field(description="Central ingest service and delivery settings.")
    state_dir: Path = Field(
        default=Path("state"),
        description="Directory of the agent's durable state: the spool and the dead-letter store, unless their "
        "path is absolute. Relative to the working directory; use an absolute path on real sites "
        "(e.g. /var/lib/ioc-edge) on a disk that survives reboots.",
    )
    spool: SpoolConfig = Field(
        default_factory=SpoolConfig,
        description="Store-and-forward: every event waits here, on disk, until central acknowledged it.",
    )
    dead_letters: DeadLetterConfig = Field(
        default_factory=DeadLetterConfig,
        description="Inputs the agent refused (bad sensor payloads, events central refused), with their raw bytes.",
    )
    sensors: SensorsSiteConfig | None = Field(
        default=None, description="Field sensors read over MQTT (water level, forest fire, environment); none if unset."
    )
    intervals_s: tuple[int, ...] = Field(
        default=(60,),
        min_length=1,
        max_length=4,
        description="Interval lengths in seconds (1 to 4, each 1..86400), e.g. [60, 900]: every camera reports "
        "each line and zone once per interval of each length, aligned to the UTC clock.",
    )
    interval_s: None = Field(
        default=None, exclude=True, description="Replaced by intervals_s; setting it is an error that says so."
    )
    health_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds between health events of each camera and of the agent itself (spool backlog, drops).",
    )
    shutdown_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Seconds the uplink gets at shutdown to deliver queued events."
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Camera settings applied to every camera that does not set them itself.",
    )
    cameras: tuple[CameraConfig, ...] = Field(
        default=(), description="Cameras of this agent (0 to 64; a sensor-only site has none)."
    )
    preview: PreviewConfig = Field(
        default_factory=PreviewConfig,
        description="Local HTTP server: live annotated preview, detections as SSE, /metrics, /healthz.",
    )
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig,
        description="Keyframes proving violations and plate passes: where (under state_dir), how much, how long, "
        "and what is uploaded to central.",
    )
    plate_worker: PlateWorkerConfig = Field(
        default_factory=PlateWorkerConfig,
        description="The one plate-reading thread shared by the cameras with plates: its bounded queues.",
    )
    signal_feed: SignalFeedConfig | None = Field(
        default=None,
        description="The signal controller's MQTT feed, for signals configured with mqtt:; none if unset.",
    )

    @field_validator("interval_s", mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(f"interval_s was replaced by intervals_s: write intervals_s: [{value}]")

    @field_validator("intervals_s")
    @classmethod
    def _valid_lengths(cls, lengths: tuple[int, ...]) -> tuple[int, ...]:
        for length in lengths:
            if not 0 < length <= 86_400:
                raise ValueError(f"interval length {length} s is outside 1..86400")
        if len(set(lengths)) != len(lengths):
            raise ValueError(f"interval lengths {list(lengths)} repeat a value")
        return tuple(sorted(lengths))

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("defaults"), dict):
            return data
        cameras = data.get("cameras")
        if not isinstance(cameras, list | tuple):
            return data
        merged = dict(data)
        merged["cameras"] = [
            deep_merge(data["defaults"], camera) if isinstance(camera, dict) else camera for camera in cameras
        ]
        return merged

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> AgentConfig:
        if len(self.cameras) > 64:
            raise ValueError(f"give at most 64 cameras, got {len(self.cameras)}")
        has_sensors = self.sensors is not None and bool(self.sensors.sensors)
        if not self.cameras and not has_sensors:
            raise ValueError("give at least one camera (cameras:) or one field sensor (sensors: {sensors: [...]})")
        _require_unique((camera.id for camera in self.cameras), "camera id")
        if self.sensors is not None:
            clash = {camera.id for camera in self.cameras} & {sensor.id for sensor in self.sensors.sensors}
            if clash:
                raise ValueError(f"ids {sorted(clash)} name both a camera and a sensor; source ids must be unique")
        return self

    @model_validator(mode="after")
    def _traffic_needs(self) -> AgentConfig:
        fed = [camera.id for camera in self.cameras if camera.feed_signals]
        if fed and self.signal_feed is None:
            raise ValueError(
                f"cameras {fed} read signals from the controller feed (signals[].mqtt): set signal_feed: {{host: ...}}"
            )
        keyframes = any(camera.keeps_evidence for camera in self.cameras)
        if keyframes and self.evidence.upload != "never" and self.central.url is None:
            raise ValueError(
                "evidence.upload needs central transport http (keyframes are PUT to central.url): "
                "set evidence: {upload: never} with transport mqtt"
            )
        return self


def _require_unique(values: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is used twice")
        seen.add(value)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: nested mappings merge, everything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# -- loading with line numbers ---------------------------------------------------------------


def _camera_defaults(loc: Loc) -> Loc | None:
    """A camera setting that came from ``defaults`` is found there."""
    if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
        return ("defaults", *loc[2:])
    return None


def load_config(path: Path | str) -> AgentConfig:
    """Read and validate a YAML config; raises ``ConfigError`` that points at the offending lines."""
    return load_model(path, AgentConfig, fallback=_camera_defaults)


def parse_config(text: str, path: str = "<config>") -> AgentConfig:
    """Validate YAML text as an ``AgentConfig``; ``path`` is only used in messages."""
    return parse_model(text, AgentConfig, path, fallback=_camera_defaults)
