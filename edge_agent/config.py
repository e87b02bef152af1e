"""Site configuration of one edge agent: pydantic models, YAML loading, errors that point at lines.

A config file names the agent, where central is, and its cameras. Anything set
under ``defaults`` applies to every camera unless the camera sets it itself
(mappings are merged key by key, lists are replaced), in the manner of Frigate.

``load_config(path)`` returns a validated ``AgentConfig`` or raises ``ConfigError``
whose issues each carry ``FILE:LINE:COL`` of the offending YAML node, so
``edge-agent validate-config FILE`` can show a technician the exact line.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge_agent.analytics.coverage import DEFAULT_MAX_FRAME_GAP_S
from edge_agent.analytics.lines import LineConfig
from edge_agent.analytics.zones import ZoneConfig
from edge_agent.delivery.http_uplink import UplinkConfig
from edge_agent.delivery.queues import QueuePolicy
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.motion_gate import MotionGateConfig
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.preview.config import PreviewConfig
from edge_agent.sources.pyav_reader import ReaderConfig
from event_contract.models import Identifier

Loc = tuple[int | str, ...]


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
        if too_many or not (self.lines or self.zones):
            raise ValueError(
                f"camera {self.id!r}: give 1 to 64 counting lines and/or 1 to 64 zones, "
                f"got {len(self.lines)} lines and {len(self.zones)} zones"
            )
        _require_unique((line.id for line in self.lines), f"camera {self.id!r}: line id")
        _require_unique((zone.id for zone in self.zones), f"camera {self.id!r}: zone id")
        return self

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
        default=30.0, gt=0, le=3600, description="Seconds between health events of each camera."
    )
    shutdown_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Seconds the uplink gets at shutdown to deliver queued events."
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Camera settings applied to every camera that does not set them itself.",
    )
    cameras: tuple[CameraConfig, ...] = Field(description="Cameras of this agent (1 to 64).")
    preview: PreviewConfig = Field(
        default_factory=PreviewConfig,
        description="Local HTTP server: live annotated preview, detections as SSE, /metrics, /healthz.",
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
        if not 1 <= len(self.cameras) <= 64:
            raise ValueError(f"give 1 to 64 cameras, got {len(self.cameras)}")
        _require_unique((camera.id for camera in self.cameras), "camera id")
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


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    loc: str
    message: str

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{self.path}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(ValueError):
    """The config file is unreadable or invalid; ``issues`` say where and why."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def load_config(path: Path | str) -> AgentConfig:
    """Read and validate a YAML config; raises ``ConfigError`` that points at the offending lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigIssue(str(path), 1, 1, "", f"cannot read config: {error}")]) from error
    return parse_config(text, str(path))


def parse_config(text: str, path: str = "<config>") -> AgentConfig:
    """Validate YAML text as an ``AgentConfig``; ``path`` is only used in messages."""
    root, data = _compose(text, path)
    duplicates = list(_duplicate_keys(root, path))
    if duplicates:
        raise ConfigError(duplicates)
    if not isinstance(data, dict):
        mark = root.start_mark
        raise ConfigError(
            [ConfigIssue(path, mark.line + 1, mark.column + 1, "", "config must be a mapping (key: value) at the top")]
        )
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_issues_from(error, root, path)) from None


def _compose(text: str, path: str) -> tuple[yaml.Node, Any]:
    """The YAML node tree (with line marks) and the Python data built from it."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError([ConfigIssue(path, 1, 1, "", "config is empty")])
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(p for p in (error.context, error.problem) if p)
        raise ConfigError([ConfigIssue(path, line, column, "", f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as error:
        raise ConfigError([ConfigIssue(path, 1, 1, "", f"YAML: {error}")]) from None
    finally:
        loader.dispose()
    return root, data


def _duplicate_keys(node: yaml.Node, path: str, loc: Loc = ()) -> Iterable[ConfigIssue]:
    """PyYAML silently keeps the last of two equal keys; a config with one is almost always a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                mark = key_node.start_mark
                yield ConfigIssue(path, mark.line + 1, mark.column + 1, _dotted((*loc, key)), "duplicate key")
            seen.add(key)
            yield from _duplicate_keys(value_node, path, (*loc, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, path, (*loc, index))


def _issues_from(error: ValidationError, root: yaml.Node, path: str) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: set[tuple[int, int, str]] = set()
    for detail in error.errors(include_url=False):
        loc: Loc = tuple(detail["loc"])
        node = locate(root, loc, point_at_key=detail["type"] == "extra_forbidden")
        mark = node.start_mark
        key = (mark.line, mark.column, detail["msg"])
        if key in seen:
            # A bad value under ``defaults`` fails in every camera; say it once.
            continue
        seen.add(key)
        issues.append(ConfigIssue(path, mark.line + 1, mark.column + 1, _dotted(loc), detail["msg"]))
    return sorted(issues, key=lambda issue: (issue.line, issue.column))


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def locate(root: yaml.Node, loc: Loc, *, point_at_key: bool = False) -> yaml.Node:
    """The YAML node a pydantic error ``loc`` refers to, or the nearest enclosing one.

    A camera setting that came from ``defaults`` is found there. ``point_at_key``
    returns the key node (for unknown keys) instead of its value.
    """
    node, resolved = _walk(root, loc, point_at_key)
    if not resolved and len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
        from_defaults, found = _walk(root, ("defaults", *loc[2:]), point_at_key)
        if found:
            return from_defaults
    return node


def _walk(root: yaml.Node, loc: Loc, point_at_key: bool) -> tuple[yaml.Node, bool]:
    """Follow ``loc`` as far as the tree goes; parts that name no node (union tags) are skipped."""
    node = root
    resolved = True
    for position, part in enumerate(loc):
        is_last = position == len(loc) - 1
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    child = key_node if (is_last and point_at_key) else value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            resolved = False
            continue
        node = child
        resolved = True
    return node, resolved
