"""Per-camera configuration of construction progress (``progress:`` under a camera).

Everything is data (pydantic, ``extra="forbid"``, frozen), drawn in normalised image coordinates like lines and
zones. Every knob has a documented default; ``docs/site_progress.md`` explains how they were chosen on the
generated site sequences (``benchmarks/progress_accuracy.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from edge_agent.violations.shapes import NormalisedPoint, check_polygon
from event_contract.models import IDENTIFIER_PATTERN
from ioc_common.timezones import TimezoneName

Id = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Polygon = Annotated[tuple[NormalisedPoint, ...], AfterValidator(check_polygon)]
VisualState = Literal["not_started", "in_progress", "done"]
"""The states a reference image shows a region in; their % complete are 0, ``in_progress_percent`` and 100."""
MAX_ITEMS = 64
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_hhmm(text: str) -> dt.time:
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a local time HH:MM (00:00 to 23:59)")
    return dt.time(int(match.group(1)), int(match.group(2)))


HHMM = Annotated[str, AfterValidator(lambda text: parse_hhmm(text) and text)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaylightConfig(_Frozen):
    """Which frames are day-time frames: inside the local window AND bright enough (the quality check)."""

    start: HHMM = Field(default="06:30", description="Local time from which frames are analysed.")
    end: HHMM = Field(default="17:30", description="Local time after which frames are skipped; the day then closes.")

    @model_validator(mode="after")
    def _ordered(self) -> DaylightConfig:
        if parse_hhmm(self.start) >= parse_hhmm(self.end):
            raise ValueError(f"daylight.start {self.start} must be before daylight.end {self.end}")
        return self


class QualityConfig(_Frozen):
    """Frame quality gates; a frame failing any of them is rejected with that reason (counted per reason)."""

    min_brightness: float = Field(
        default=0.20, ge=0, le=1, description="Mean luminance (0..1) below this: dark (night, dusk, camera fault)."
    )
    max_brightness: float = Field(
        default=0.92, ge=0, le=1, description="Mean luminance above this: washed out (sun in the lens, exposure)."
    )
    min_sharpness: float = Field(
        default=0.35,
        ge=0,
        le=10,
        description="Edge energy relative to the camera's reference images (1 = as sharp): below this the "
        "frame is blurred (rain on the lens, focus, motion).",
    )
    max_fog: float = Field(
        default=0.55,
        ge=0,
        le=1,
        description="Haze score (dark-channel prior, 0 clear .. 1 white-out) above which the frame is fogged.",
    )
    max_occlusion: float = Field(
        default=0.35,
        ge=0,
        le=1,
        description="Share of the work-package regions hidden (detected objects, or a blob unlike every "
        "reference) above which the frame is occluded.",
    )
    min_score: float = Field(
        default=0.5, ge=0, le=1, description="Combined quality score (0..1) a frame needs to be used."
    )


class SmoothingConfig(_Frozen):
    """How the day's frame estimates become the day's figure, and how days are tied together."""

    min_frames_per_day: int = Field(
        default=2,
        ge=1,
        le=10_000,
        description="Fewer good frames in a day: no estimate that day (the last figure is carried, reported).",
    )
    window_days: int = Field(
        default=3, ge=1, le=30, description="Days of daily medians the smoothed figure is the median of."
    )
    max_decrease_points: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="The published figure never falls more than this many points below its highest value so "
        "far (lighting and weather must not make progress go backwards; real demolition needs a PMU correction).",
    )
    max_increase_points_per_day: float = Field(
        default=25.0,
        gt=0,
        le=100,
        description="A day's figure rises at most this much over the previous one (one odd day is not a leap).",
    )
    carried_confidence_factor: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A day with too few good frames carries the last figure with the last confidence times this "
        "(compounding over consecutive such days), so central asks a PMU instead of trusting a stale figure.",
    )
    max_gap_days: int = Field(
        default=31,
        ge=0,
        le=366,
        description="Days without any frame (camera off) between two observed days are reported as carried "
        "figures, at most this many; a longer gap reports only its last days.",
    )


class AppearanceConfig(_Frozen):
    """How a region's cells are compared with the reference images (edge_agent/progress/appearance.py)."""

    working_width: int = Field(
        default=640,
        ge=160,
        le=1920,
        description="Frames and references are resized to this width before any measure, so thresholds and "
        "cost do not depend on the camera's resolution (1080p costs the same as 640x360).",
    )
    min_cell_inside: float = Field(
        default=0.5, gt=0, le=1, description="A grid cell is judged only when at least this share lies in the region."
    )
    change_k: float = Field(
        default=3.0,
        gt=0,
        le=100,
        description="A cell has changed from not_started when its feature distance exceeds change_k times the "
        "noise (90th percentile distance of the reference to photometric variations of itself, and between "
        "references of the same state).",
    )
    min_change_distance: float = Field(
        default=0.25, ge=0, le=100, description="Floor of that change threshold (feature distance units)."
    )
    anomaly_factor: float = Field(
        default=2.5,
        gt=1,
        le=100,
        description="A cell farther than anomaly_factor x the change threshold from every reference AND from its "
        "own last judged appearance is hidden (an undetected truck, a tarpaulin): not judged, counts as occluded.",
    )
    anomaly_adopt_samples: int = Field(
        default=3,
        ge=1,
        le=1_000,
        description="After this many consecutive samples a persistent anomaly is accepted as the cell's new look "
        "(real work that changed it a lot in one step).",
    )
    occluder_cover: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="A cell whose pixels are covered by detected objects' boxes at least this much is not judged.",
    )
    changed_percent: float = Field(
        default=100.0,
        ge=1,
        le=100,
        description="% complete of a cell that changed from not_started when its package has no in_progress or "
        "done reference to compare with.",
    )


class PackageRegion(_Frozen):
    """One work package as seen by this camera: the area of the picture where it is built."""

    id: Id = Field(description="Work package id, as in the approved plan (e.g. mong, cot-t1, km0-1-asphalt).")
    name: str = Field(default="", max_length=200, description="Display name; empty shows the id.")
    region: Polygon = Field(description="3 to 64 normalised (x, y) points around where the package is built.")
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1_000,
        description="Weight in this camera's project figure (normalised over the camera's packages); use the "
        "plan's weights so edge and central agree.",
    )
    fill: Literal["any", "bottom_up", "left_right", "right_left", "top_down"] = Field(
        default="any",
        description="How the work fills the region when known (a wall rises bottom_up; a road is laid along "
        "its length): the estimate then counts only a contiguous front of done cells, which ignores scattered "
        "false 'done' cells. any: every done cell counts.",
    )


class ReferenceImage(_Frozen):
    """A picture of this camera's view at a known state, captured by a technician (``edge-agent snapshot``)."""

    image: str = Field(min_length=1, description="Path of a JPEG/PNG (relative paths: from the agent's working dir).")
    state: VisualState = Field(description="The state the listed packages' regions show in this picture.")
    packages: tuple[Id, ...] | Literal["all"] = Field(
        default="all", description="Packages whose region shows ``state`` in this picture; all: every package."
    )


class ActivityZone(_Frozen):
    id: Id = Field(description="Zone id, sent in site_activity events.")
    polygon: Polygon = Field(description="3 to 64 normalised (x, y) points.")


ActivityGroupName = Literal["worker", "machine", "truck"]


def _default_groups() -> dict[ActivityGroupName, tuple[str, ...]]:
    return {"worker": ("person",), "machine": ("other_vehicle",), "truck": ("truck",)}


class ActivityConfig(_Frozen):
    """Workers, machines and trucks present per zone, from the camera's detector and tracker."""

    enabled: bool = Field(default=True, description="Emit hourly site_activity events.")
    zones: tuple[ActivityZone, ...] = Field(
        default=(), max_length=MAX_ITEMS, description="Zones; none: one zone 'site' covering the whole picture."
    )
    groups: dict[ActivityGroupName, tuple[str, ...]] = Field(
        default_factory=_default_groups,
        description="Detector class names counted in each group (the detector's label_map must keep them).",
    )
    window_s: int = Field(default=3600, ge=60, le=86_400, description="Length of one activity window (s).")
    min_frames: int = Field(
        default=3, ge=1, description="Windows with fewer analysed frames are still sent, with their frame count."
    )
    working_threshold: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Only for the status summary: a window with an activity index at or above this is a working hour.",
    )


class TimelapseConfig(_Frozen):
    """One keyframe per camera per day for the timelapse: the best-quality frame near ``at``."""

    enabled: bool = Field(default=True, description="Keep a daily timelapse keyframe (evidence store).")
    at: HHMM = Field(default="12:00", description="Local time the daily keyframe is taken nearest to.")
    within_minutes: int = Field(
        default=120,
        ge=0,
        le=720,
        description="The best-quality usable frame within this many minutes of ``at`` is kept; a day without one "
        "keeps its usable frame nearest to ``at``.",
    )


class ProgressCameraConfig(_Frozen):
    """Construction progress of one site camera: its project, package regions, references and cadence."""

    project_id: Id = Field(description="Project id, as in the approved plan.")
    timezone: TimezoneName = Field(
        default="Asia/Ho_Chi_Minh", description="IANA zone of the site's local days and hours."
    )
    sample_every_s: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="Source seconds between two frames analysed for visual state (activity uses every frame).",
    )
    daylight: DaylightConfig = Field(default_factory=DaylightConfig, description="Day-time window.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Frame quality gates.")
    appearance: AppearanceConfig = Field(
        default_factory=AppearanceConfig, description="Cell features and change thresholds."
    )
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig, description="Day figure and day-to-day rules.")
    grid: int = Field(
        default=10,
        ge=1,
        le=32,
        description="Each region is split into grid x grid cells judged one by one (finer cells follow the work "
        "front more closely; 10 kept every package within 10 points on the generated sequences, 6 did not).",
    )
    in_progress_percent: float = Field(
        default=50.0, ge=1, le=99, description="% complete a cell like an in_progress reference stands for."
    )
    min_confidence: float = Field(
        default=0.0, ge=0, le=1, description="Days with a lower confidence are still sent (central asks a PMU)."
    )
    packages: tuple[PackageRegion, ...] = Field(min_length=1, max_length=MAX_ITEMS, description="Package regions.")
    references: tuple[ReferenceImage, ...] = Field(
        min_length=1, max_length=MAX_ITEMS, description="Reference images at known states (at least not_started)."
    )
    activity: ActivityConfig = Field(default_factory=ActivityConfig, description="Site activity.")
    timelapse: TimelapseConfig = Field(default_factory=TimelapseConfig, description="Daily timelapse keyframe.")
    report_project: bool = Field(
        default=True,
        description="Also send the project figure (weighted over this camera's packages). Turn off when the "
        "project's packages are split over several cameras: central then weighs the packages itself.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ProgressCameraConfig:
        ids = [p.id for p in self.packages]
        if len(set(ids)) != len(ids):
            raise ValueError(f"package ids must be unique, got {ids}")
        zone_ids = [z.id for z in self.activity.zones]
        if len(set(zone_ids)) != len(zone_ids):
            raise ValueError(f"activity zone ids must be unique, got {zone_ids}")
        for ref in self.references:
            if ref.packages != "all":
                unknown = sorted(set(ref.packages) - set(ids))
                if unknown:
                    raise ValueError(f"reference {ref.image!r} names packages {unknown} that are not in {ids}")
        covered = {p for ref in self.references if ref.state == "not_started" for p in self._packages_of(ref)}
        missing = [p for p in ids if p not in covered]
        if missing:
            raise ValueError(f"packages {missing} have no not_started reference image (every package needs one)")
        return self

    def _packages_of(self, ref: ReferenceImage) -> tuple[str, ...]:
        return tuple(p.id for p in self.packages) if ref.packages == "all" else ref.packages
