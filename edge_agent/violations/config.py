"""Per-camera configuration of the violation and incident rules, the signals they read and congestion zones.

Everything is data (pydantic, ``extra="forbid"``, frozen), drawn in normalised image coordinates like lines and
zones, so one file works at any resolution. Rules are a discriminated union on ``type``; every knob has a
default chosen on the generated scenes (``benchmarks/violation_accuracy.py``) and says what it does. Speeds and
distances are in BOX SIZES (the longer side of the vehicle's box) so that one setting fits a motorbike and a
bus, near the camera and far from it; ``docs/violations.md`` has the exact semantics of each rule.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import zoneinfo
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.violations.shapes import ArrowConfig, NormalisedPoint, SegmentConfig, check_polygon
from event_contract.models import IDENTIFIER_PATTERN
from event_contract.taxonomy import VehicleClass
from ioc_common.timezones import TimezoneName

RuleId = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Polygon = Annotated[tuple[NormalisedPoint, ...], AfterValidator(check_polygon)]
"""A drawn area, checked like a zone's polygon (``shapes.check_polygon``) wherever a rule uses one."""
MAX_ITEMS = 64
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MotionConfig(_Frozen):
    """How the engine follows each track: memory bounds, speed measurement, stopped/moving thresholds."""

    speed_window_s: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="Speed is the anchor's displacement over this many seconds (not frame to frame), so box "
        "jitter averages out.",
    )
    stopped_speed: float = Field(
        default=0.08,
        gt=0.0,
        description="At or below this speed (box sizes per second) a vehicle counts as stopped.",
    )
    moving_speed: float = Field(
        default=0.2,
        gt=0.0,
        description="A stopped vehicle counts as moving again only above this speed (hysteresis against jitter).",
    )
    max_tracks: int = Field(default=2048, ge=1, description="Bound on tracks remembered; oldest-seen dropped first.")
    forget_after_s: float = Field(
        default=10.0, gt=0.0, description="Seconds after a track was last seen that the engine forgets it."
    )
    history_s: float = Field(
        default=12.0, gt=0.0, le=120.0, description="Seconds of positions kept per track (speed, direction)."
    )
    relink_max_gap_s: float = Field(
        default=3.0,
        ge=0.0,
        description="A new track id that appears where a track vanished at most this long ago (its box "
        "overlapping the vanished one's, moved on at its last speed) continues it: a stopped vehicle the tracker "
        "lost and found again keeps its dwell. 0 turns this off.",
    )
    relink_min_iou: float = Field(
        default=0.3, gt=0.0, le=1.0, description="Least box overlap (IoU) for a new id to continue a vanished track."
    )

    @model_validator(mode="after")
    def _ordered(self) -> MotionConfig:
        if self.moving_speed < self.stopped_speed:
            raise ValueError("moving_speed must be at least stopped_speed")
        return self


class SignalConfig(_Frozen):
    """One signal head: classified from a region of the image, or read from a signal-controller feed over MQTT."""

    id: RuleId = Field(description="Stable id that rules name in signal_id.")
    region: tuple[NormalisedPoint, NormalisedPoint] | None = Field(
        default=None,
        description="Top-left and bottom-right corners (0..1) of the box around the signal head's lamps; its "
        "colour is classified every frame (SignalHead).",
    )
    mqtt: RuleId | None = Field(
        default=None,
        description="The controller's id for this signal in the MQTT feed (signal_id in the payload).",
    )
    stale_after_s: float = Field(
        default=10.0,
        gt=0.0,
        description="Feed: with no message for this long the state is 'unknown' (controllers must repeat their "
        "state at least this often).",
    )
    min_lit_fraction: float = Field(
        default=0.01,
        gt=0.0,
        le=1.0,
        description="Region: least share of the region's pixels lit in one colour for that lamp to count as on.",
    )
    min_value: int = Field(default=90, ge=0, le=255, description="Region: least HSV value (brightness) of a lit pixel.")
    min_saturation: int = Field(
        default=80, ge=0, le=255, description="Region: least HSV saturation of a lit pixel (white glare is not a lamp)."
    )
    confirm_frames: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Region: a new state is reported after this many consecutive frames agree (hysteresis).",
    )

    @field_validator("region")
    @classmethod
    def _region_box(
        cls, region: tuple[NormalisedPoint, NormalisedPoint] | None
    ) -> tuple[NormalisedPoint, NormalisedPoint] | None:
        if region is None:
            return None
        (x1, y1), (x2, y2) = region
        if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
            raise ValueError(f"region corners are normalised image coordinates in 0..1, got {region}")
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"region must be [top-left, bottom-right] with some area, got {region}")
        return region

    @model_validator(mode="after")
    def _one_source(self) -> SignalConfig:
        if (self.region is None) == (self.mqtt is None):
            raise ValueError(f"signal {self.id!r}: give exactly one of region (image) or mqtt (controller feed)")
        return self


class _RuleBase(_Frozen):
    id: RuleId = Field(description="Stable id of the rule, sent in events as rule_id.")
    name: str = Field(default="", max_length=200, description="Display name; empty shows the id.")


class _AreaRule(_RuleBase):
    exit_grace_s: float = Field(
        default=2.0,
        ge=0.0,
        le=60.0,
        description="Seconds a vehicle may go unseen or outside (tracker loss, box jitter at the edge) before its "
        "visit ends; a rule fires at most once per visit.",
    )


def _polygon_field(what: str) -> Any:
    return Field(description=f"{what}: 3 to 64 (x, y) points in 0..1, in drawing order; edges must not cross.")


class RedLightRuleConfig(_RuleBase):
    """Red-light running: the anchor crosses the stop-line SEGMENT into the junction while the signal is red."""

    type: Literal["red_light"]
    stop_line: SegmentConfig = Field(description="The stop line of the lane(s) this signal governs.")
    direction: Literal["in", "out"] = Field(
        default="in",
        description="Crossing direction that enters the junction, in the line convention (left of start->end to "
        "its right is 'in'); crossings the other way never fire.",
    )
    signal_id: RuleId = Field(description="The signal (signals[].id) that governs this stop line.")
    grace_s: float = Field(
        default=0.5,
        ge=0.0,
        le=10.0,
        description="Seconds after red onset during which a crossing does not fire (all-red clearance, a vehicle "
        "that could not stop on amber).",
    )
    commit_margin_boxes: float = Field(
        default=0.3,
        gt=0.0,
        le=5.0,
        description="The anchor must get this far past the line (box sizes) for the crossing to count, so a "
        "vehicle stopped on the line whose box jitters never fires.",
    )
    on_line_boxes: float = Field(
        default=0.08,
        ge=0.0,
        le=1.0,
        description="A vehicle standing still at most this far past the line (box sizes: jitter of a vehicle "
        "stopped at it) has not crossed yet: it is judged by the signal when it moves off.",
    )
    arm_margin_boxes: float = Field(
        default=0.05,
        ge=0.0,
        le=5.0,
        description="The anchor must have been seen at least this far before the line first: a vehicle first "
        "seen past it (or already past at red onset) never fires.",
    )


class WrongWayRuleConfig(_AreaRule):
    """Wrong-way driving: sustained net motion against the lane's flow arrow, inside the lane."""

    type: Literal["wrong_way"]
    lane: Polygon = _polygon_field("The lane")
    flow: ArrowConfig = Field(description="Arrow along the lane in the allowed direction of travel.")
    min_duration_s: float = Field(
        default=1.5, gt=0.0, le=60.0, description="The motion against the flow is measured over this long."
    )
    min_distance_boxes: float = Field(
        default=1.0,
        gt=0.0,
        le=50.0,
        description="Least net distance (box sizes) moved against the flow within min_duration_s.",
    )
    max_angle_deg: float = Field(
        default=45.0,
        gt=0.0,
        lt=90.0,
        description="The net motion must point within this angle of the reverse flow: a vehicle crossing or "
        "turning briefly does not fire.",
    )


class IllegalStoppingRuleConfig(_AreaRule):
    """Illegal stopping/parking: stopped (speed ~0) inside a no-stopping zone for longer than ``max_stop_s``."""

    type: Literal["illegal_stopping"]
    zone: Polygon = _polygon_field("The no-stopping zone")
    max_stop_s: float = Field(default=30.0, gt=0.0, le=86_400.0, description="Longest allowed stop, seconds.")


class HoursWindow(_Frozen):
    """Local hours in which a lane restriction applies; ``end`` before ``start`` runs over midnight."""

    start: str = Field(description="Local time HH:MM (24 h) the restriction starts.")
    end: str = Field(description="Local time HH:MM it ends (exclusive).")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"use HH:MM, 24-hour, e.g. 06:30, got {value!r}")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> HoursWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty (leave hours out for always)")
        return self

    def contains(self, local: dt.time) -> bool:
        start = dt.time.fromisoformat(self.start)
        end = dt.time.fromisoformat(self.end)
        if start < end:
            return start <= local < end
        return local >= start or local < end


class LaneViolationRuleConfig(_AreaRule):
    """Lane violation: a vehicle class not allowed in a lane (optionally only in given local hours)."""

    type: Literal["lane_violation"]
    lane: Polygon = _polygon_field("The lane")
    allowed_classes: tuple[VehicleClass, ...] = Field(
        default=(), description="Classes allowed in the lane; any other class fires. Give this or forbidden_classes."
    )
    forbidden_classes: tuple[VehicleClass, ...] = Field(
        default=(), description="Classes not allowed in the lane. Give this or allowed_classes."
    )
    hours: tuple[HoursWindow, ...] = Field(
        default=(), max_length=8, description="Local hours the restriction applies in; empty = always."
    )
    timezone: TimezoneName = Field(default="Asia/Ho_Chi_Minh", description="IANA time zone of the hours.")
    min_in_lane_s: float = Field(
        default=1.0, ge=0.0, le=600.0, description="The vehicle must have been in the lane this long (seconds)."
    )
    min_distance_boxes: float = Field(
        default=0.5,
        ge=0.0,
        le=50.0,
        description="... and have moved this far in it (box sizes), so a vehicle cutting a corner does not fire.",
    )
    class_stable_s: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="The tracker's class vote must have held this class for this long before it is judged.",
    )

    @model_validator(mode="after")
    def _one_list(self) -> LaneViolationRuleConfig:
        if bool(self.allowed_classes) == bool(self.forbidden_classes):
            raise ValueError(f"rule {self.id!r}: give exactly one of allowed_classes or forbidden_classes")
        return self

    def forbids(self, vehicle_class: str) -> bool:
        if self.allowed_classes:
            return vehicle_class not in self.allowed_classes
        return vehicle_class in self.forbidden_classes

    def active_at(self, when: dt.datetime) -> bool:
        if not self.hours:
            return True
        local = when.astimezone(zoneinfo.ZoneInfo(self.timezone)).time()
        return any(window.contains(local) for window in self.hours)


class StoppedInLaneRuleConfig(_AreaRule):
    """Incident: a vehicle stopped in a travel lane for longer than ``max_stop_s`` while not queued."""

    type: Literal["stopped_in_lane"]
    lane: Polygon = _polygon_field("The travel lane")
    flow: ArrowConfig = Field(description="Arrow along the lane in the direction of travel (to tell 'behind').")
    max_stop_s: float = Field(default=20.0, gt=0.0, le=86_400.0, description="Longest unexplained stop, seconds.")
    stop_line: SegmentConfig | None = Field(
        default=None,
        description="Stop line at the lane's end: the vehicle first in the queue there is excused while its "
        "signal is not green (or always, without signal_id).",
    )
    signal_id: RuleId | None = Field(default=None, description="Signal governing stop_line (signals[].id).")
    queue_gap_boxes: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="A vehicle whose front is at most this far (box sizes) behind a slow or stopped vehicle "
        "ahead in the lane is queued, not stopped in the lane.",
    )
    head_distance_boxes: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="A vehicle at most this far (box sizes) before stop_line is the head of a queue there.",
    )

    @model_validator(mode="after")
    def _signal_needs_line(self) -> StoppedInLaneRuleConfig:
        if self.signal_id is not None and self.stop_line is None:
            raise ValueError(f"rule {self.id!r}: signal_id needs a stop_line")
        return self


class QueueGrowthRuleConfig(_RuleBase):
    """Incident: a zone's queue length ratio grows by more than ``min_growth`` within ``within_s``."""

    type: Literal["queue_growth"]
    zone: Polygon = _polygon_field("The queuing zone")
    flow: ArrowConfig = Field(description="Arrow along the zone in the direction of travel (queues grow against it).")
    min_growth: float = Field(
        default=0.4, gt=0.0, le=1.0, description="Growth of the queue length ratio (share of the zone) that fires."
    )
    within_s: float = Field(default=30.0, gt=0.0, le=3600.0, description="... within this many seconds.")
    smooth_s: float = Field(
        default=1.0,
        ge=0.0,
        le=30.0,
        description="The ratio is the median over this many seconds, so one missed detection is not a change.",
    )
    queue_gap_boxes: float = Field(
        default=1.5,
        gt=0.0,
        le=10.0,
        description="Gaps up to this (box sizes) between queued vehicles count as queue (the space in a queue).",
    )


class PossibleAccidentRuleConfig(_RuleBase):
    """Incident: two boxes touch while one brakes far harder than driving does, and both then stay stopped."""

    type: Literal["possible_accident"]
    zone: Polygon | None = Field(
        default=None, description="Where to look (3 to 64 points in 0..1); none = the whole image."
    )
    contact_gap_boxes: float = Field(
        default=0.1,
        ge=0.0,
        le=2.0,
        description="Two boxes are in contact when they overlap or are at most this far apart (box sizes of the "
        "smaller one).",
    )
    min_decel: float = Field(
        default=2.5,
        gt=0.0,
        description="Least deceleration (box sizes per second squared) that counts as sharp; hard braking is "
        "about 1 for a car, a collision 5 or more.",
    )
    min_speed_before: float = Field(
        default=0.6, gt=0.0, description="The decelerating vehicle was moving at least this fast (box sizes/s)."
    )
    contact_window_s: float = Field(
        default=1.5,
        gt=0.0,
        le=10.0,
        description="The sharp deceleration must happen within this many seconds of the contact.",
    )
    stopped_for_s: float = Field(
        default=5.0, gt=0.0, le=600.0, description="Both vehicles must then stay stopped this long."
    )


RuleConfig = Annotated[
    RedLightRuleConfig
    | WrongWayRuleConfig
    | IllegalStoppingRuleConfig
    | LaneViolationRuleConfig
    | StoppedInLaneRuleConfig
    | QueueGrowthRuleConfig
    | PossibleAccidentRuleConfig,
    Field(discriminator="type"),
]


class LevelThresholds(_Frozen):
    """When a zone is at least at one level: ANY of the given measures crosses its threshold."""

    queue_length_ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="At or above this queue length ratio; None = not used."
    )
    occupancy: float | None = Field(default=None, ge=0.0, le=1.0, description="At or above this occupancy.")
    speed_ratio: float | None = Field(
        default=None, ge=0.0, le=10.0, description="At or below this speed ratio (only when something moved)."
    )


class CongestionLevelsConfig(_Frozen):
    """Thresholds per level above 'free'; each level must be at least as strict as the one below it."""

    light: LevelThresholds = Field(
        default=LevelThresholds(queue_length_ratio=0.15, occupancy=0.15, speed_ratio=0.7),
        description="Thresholds of 'light'.",
    )
    moderate: LevelThresholds = Field(
        default=LevelThresholds(queue_length_ratio=0.35, occupancy=0.3, speed_ratio=0.5),
        description="Thresholds of 'moderate'.",
    )
    heavy: LevelThresholds = Field(
        default=LevelThresholds(queue_length_ratio=0.6, occupancy=0.45, speed_ratio=0.3),
        description="Thresholds of 'heavy'.",
    )
    jammed: LevelThresholds = Field(
        default=LevelThresholds(queue_length_ratio=0.85, occupancy=0.6, speed_ratio=0.1),
        description="Thresholds of 'jammed'.",
    )

    @model_validator(mode="after")
    def _monotonic(self) -> CongestionLevelsConfig:
        order = (("light", self.light), ("moderate", self.moderate), ("heavy", self.heavy), ("jammed", self.jammed))
        for (low_name, low), (high_name, high) in itertools.pairwise(order):
            for measure in ("queue_length_ratio", "occupancy"):
                a, b = getattr(low, measure), getattr(high, measure)
                if a is not None and b is not None and b < a:
                    raise ValueError(f"{high_name}.{measure} ({b}) is below {low_name}.{measure} ({a})")
            a, b = low.speed_ratio, high.speed_ratio
            if a is not None and b is not None and b > a:
                raise ValueError(f"{high_name}.speed_ratio ({b}) is above {low_name}.speed_ratio ({a})")
        return self


class CongestionZoneConfig(_Frozen):
    """Congestion of one zone: queue length, occupancy and a speed proxy over a window, mapped to levels."""

    id: RuleId = Field(description="Stable id, sent in congestion events as zone_id.")
    name: str = Field(default="", max_length=200, description="Display name; empty shows the id.")
    zone: Polygon = _polygon_field("The zone")
    flow: ArrowConfig = Field(description="Arrow along the zone in the direction of travel.")
    window_s: float = Field(default=60.0, gt=0.0, le=3600.0, description="Measures are averaged over this window.")
    free_flow_speed: float = Field(
        default=1.5,
        gt=0.0,
        description="Median speed (box sizes per second) of free-flowing traffic here: speed_ratio's 1.0.",
    )
    queue_gap_boxes: float = Field(
        default=1.5, gt=0.0, le=10.0, description="Gaps up to this (box sizes) between queued vehicles count as queue."
    )
    levels: CongestionLevelsConfig = Field(default_factory=CongestionLevelsConfig, description="Level thresholds.")
    hold_s: float = Field(
        default=20.0,
        ge=0.0,
        le=3600.0,
        description="A new level is reported only after it has held this long, so levels do not flap.",
    )
    report_every_s: float = Field(
        default=300.0, gt=0.0, le=3600.0, description="Seconds between periodic reports (besides level changes)."
    )


class ViolationRulesConfig(_Frozen):
    """The ``violations:`` section of one camera."""

    anchor: Literal["center", "bottom_center"] = Field(
        default="bottom_center",
        description="Point of the box that is the vehicle's position: bottom_center (where it meets the road) "
        "for oblique cameras, center for top-down views.",
    )
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Track memory and speed measurement.")
    signals: tuple[SignalConfig, ...] = Field(
        default=(), max_length=MAX_ITEMS, description="Signal heads (image region or controller feed)."
    )
    rules: tuple[RuleConfig, ...] = Field(default=(), max_length=MAX_ITEMS, description="Violation/incident rules.")
    congestion: tuple[CongestionZoneConfig, ...] = Field(
        default=(), max_length=MAX_ITEMS, description="Congestion zones."
    )

    @model_validator(mode="after")
    def _references(self) -> ViolationRulesConfig:
        _unique((s.id for s in self.signals), "signal id")
        _unique((r.id for r in self.rules), "rule id")
        _unique((z.id for z in self.congestion), "congestion zone id")
        known = {s.id for s in self.signals}
        for rule in self.rules:
            wanted = getattr(rule, "signal_id", None)
            if wanted is not None and wanted not in known:
                raise ValueError(f"rule {rule.id!r}: signal_id {wanted!r} is not in signals ({sorted(known)})")
        return self


def _unique(ids: Iterable[str], what: str) -> None:
    repeated = sorted(k for k, n in Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"{what} used twice: {repeated}")
