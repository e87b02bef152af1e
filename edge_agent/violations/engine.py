"""The per-camera violation engine: tracked detections + signal states in, findings and congestion out.

One ``ViolationEngine`` per camera, built when the frame size is known (like ``CountingLine``). Each
``update`` records the frame in the shared ``TrackBook`` (positions, speed, stopped state), tells every rule
which track ids were renamed (a stopped vehicle found again under a new id) or forgotten, then runs the rules
and the congestion zones on the same ``FrameView``. Pure: no I/O, time is the frame's timestamp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from edge_agent.perception.types import Detections
from edge_agent.violations.accident import PossibleAccidentRule
from edge_agent.violations.base import Clock, Rule, SignalTimeline
from edge_agent.violations.config import (
    IllegalStoppingRuleConfig,
    LaneViolationRuleConfig,
    PossibleAccidentRuleConfig,
    QueueGrowthRuleConfig,
    RedLightRuleConfig,
    RuleConfig,
    StoppedInLaneRuleConfig,
    ViolationRulesConfig,
    WrongWayRuleConfig,
)
from edge_agent.violations.congestion import CongestionZone
from edge_agent.violations.findings import CongestionReport, Finding, ViolationStep
from edge_agent.violations.lane_use import LaneViolationRule
from edge_agent.violations.queue import QueueGrowthRule
from edge_agent.violations.red_light import RedLightRule
from edge_agent.violations.stopping import IllegalStoppingRule, StoppedInLaneRule
from edge_agent.violations.tracks import TrackBook
from edge_agent.violations.wrong_way import WrongWayRule
from event_contract.traffic import SignalState


def build_rule(config: RuleConfig, frame_width: int, frame_height: int, *, moving_speed: float) -> Rule:
    """The rule object for one rule config."""
    size = (frame_width, frame_height)
    builders: dict[type, Callable[[], Rule]] = {
        RedLightRuleConfig: lambda: RedLightRule(config, *size),  # type: ignore[arg-type]
        WrongWayRuleConfig: lambda: WrongWayRule(config, *size),  # type: ignore[arg-type]
        IllegalStoppingRuleConfig: lambda: IllegalStoppingRule(config, *size),  # type: ignore[arg-type]
        LaneViolationRuleConfig: lambda: LaneViolationRule(config, *size),  # type: ignore[arg-type]
        StoppedInLaneRuleConfig: lambda: StoppedInLaneRule(config, *size, moving_speed=moving_speed),  # type: ignore[arg-type]
        QueueGrowthRuleConfig: lambda: QueueGrowthRule(config, *size, moving_speed=moving_speed),  # type: ignore[arg-type]
        PossibleAccidentRuleConfig: lambda: PossibleAccidentRule(config, *size),  # type: ignore[arg-type]
    }
    return builders[type(config)]()


class ViolationEngine:
    """Violation, incident and congestion rules of one camera. Not thread-safe."""

    def __init__(self, config: ViolationRulesConfig, frame_width: int, frame_height: int) -> None:
        if frame_width <= 0 or frame_height <= 0:
            raise ValueError(f"frame size must be positive, got {frame_width}x{frame_height}")
        self._config = config
        moving = config.motion.moving_speed
        self._book = TrackBook(config.motion, config.anchor)
        self._rules: tuple[Rule, ...] = tuple(
            build_rule(rule, frame_width, frame_height, moving_speed=moving) for rule in config.rules
        )
        self._zones = tuple(
            CongestionZone(zone, frame_width, frame_height, moving_speed=moving) for zone in config.congestion
        )
        self._signals = SignalTimeline()
        self._clock: Clock | None = None
        self._last: dt.datetime | None = None
        self.frames_out_of_order = 0
        """Updates refused because their timestamp was older than the previous one."""

    @property
    def config(self) -> ViolationRulesConfig:
        return self._config

    @property
    def tracks_evicted(self) -> int:
        """Tracks forgotten early because motion.max_tracks were held."""
        return self._book.evicted

    @property
    def tracks_relinked(self) -> int:
        return self._book.relinked

    @property
    def remembered_tracks(self) -> int:
        return self._book.remembered

    def congestion_level(self, zone_id: str) -> str | None:
        for zone in self._zones:
            if zone.zone_id == zone_id:
                return zone.level
        raise KeyError(zone_id)

    def _seconds(self, timestamp: dt.datetime) -> float:
        if timestamp.tzinfo is None:
            raise ValueError("violation engine timestamps must be timezone-aware (UTC)")
        if self._clock is None:
            self._clock = Clock(timestamp)
        return self._clock.seconds(timestamp)

    def update(self, tracked: Detections, timestamp: dt.datetime, signals: Mapping[str, SignalState]) -> ViolationStep:
        """Findings and congestion reports decided by the frame at ``timestamp`` (rows with tracker_id -1 ignored).

        ``signals`` maps signal ids (signals[].id) to their state now; a missing id is 'unknown'. A frame older
        than the previous one is refused (empty step, counted in ``frames_out_of_order``).
        """
        t = self._seconds(timestamp)
        if self._last is not None and timestamp < self._last:
            self.frames_out_of_order += 1
            return ViolationStep()
        self._last = timestamp
        assert self._clock is not None
        self._signals.observe(signals, t)
        view, renames, forgotten = self._book.observe(tracked, t, timestamp)
        findings: list[Finding] = []
        for rule in self._rules:
            for old, new in renames.items():
                rule.renamed(old, new)
            if forgotten:
                rule.forget(forgotten)
            findings.extend(rule.update(view, self._signals, self._clock))
        reports: list[CongestionReport] = []
        for zone in self._zones:
            report = zone.update(view)
            if report is not None:
                reports.append(report)
        return ViolationStep(tuple(findings), tuple(reports))

    def expire(self, now: dt.datetime) -> ViolationStep:
        """No frame (a dead camera): forget what has aged out; nothing is judged without seeing it."""
        t = self._seconds(now)
        forgotten = self._book.expire(t)
        for rule in self._rules:
            if forgotten:
                rule.forget(forgotten)
        for zone in self._zones:
            zone.expire(t)
        return ViolationStep()
