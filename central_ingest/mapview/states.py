"""Pure rules: what was last heard from a source -> live / stalled / down / unknown, and a reading -> its level.

No I/O and no clock: the caller passes ``now`` and the facts, so every rule is tested with values alone.

Camera thresholds (``CAMERA``), in the order they are applied:

1. nothing ever heard (no event, no health event): ``unknown``;
2. nothing at all (any event family, health included) for more than 10 min (``down_after``): ``down``;
3. a health event in those 10 min is the camera's own word and wins over other events (an agent keeps sending
   zero-coverage count intervals while its camera is dead): ``down``/``stopped`` -> ``down``;
   ``stalled``/``connecting``/``starting`` -> ``stalled``; ``live`` newer than 2 min (``live_within``) ->
   ``live``, unless its fps is 0 (``stalled``: no frames);
4. otherwise an event of any family within 2 min -> ``live``; heard within 10 min but not within 2 min ->
   ``stalled`` (no frames lately).

Sensors report far less often than cameras (a water-level station every few minutes), so ``SENSOR`` uses the
same rules with 15 min (live) and 60 min (down). Times are event times (the source's clock), like the
``source_silent`` alert rule; a time in the future (clock skew) counts as now.

Sensor level: the latest value of each metric against every enabled ``sensor_threshold`` rule that selects
the sensor (its levels, the station's own levels where the rule says so). The map shows the level the value
is at *now*; the alert, with its ``min_duration_s`` and hysteresis, is the alert engine's business. When
several rules apply the most severe level wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from central_ingest.alerts.evaluate import level_reached
from central_ingest.alerts.messages import level_labels
from central_ingest.alerts.rules import Level, SensorThresholdRule

MapState = Literal["live", "stalled", "down", "unknown"]
MAP_STATES: tuple[MapState, ...] = ("live", "stalled", "down", "unknown")
DOWN_HEALTH = frozenset({"down", "stopped"})
"""Health states (event contract ``SourceState``) that mean the source is down."""
STALLED_HEALTH = frozenset({"stalled", "connecting", "starting"})
"""Health states that mean the agent is trying but has no frames (reconnecting, starting up, stalled)."""
SEVERITY_RANK = {"notice": 1, "warning": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How recent a source's news must be to be live, and how old before it is down."""

    live_within: dt.timedelta
    down_after: dt.timedelta


CAMERA = Thresholds(live_within=dt.timedelta(minutes=2), down_after=dt.timedelta(minutes=10))
SENSOR = Thresholds(live_within=dt.timedelta(minutes=15), down_after=dt.timedelta(minutes=60))


@dataclass(frozen=True, slots=True)
class LastHeard:
    """What central last heard from one source."""

    event_time: dt.datetime | None = None
    """Newest event of any family other than health (``source_last_seen``)."""
    health_time: dt.datetime | None = None
    health_state: str | None = None
    """The contract's ``SourceState`` of the newest health event."""
    health_reason: str = ""
    fps: float | None = None


@dataclass(frozen=True, slots=True)
class StateVerdict:
    """A source's state, why (a stable code), and the same in words for the page (Vietnamese, English)."""

    state: MapState
    reason: str
    detail_vi: str
    detail_en: str


def _minutes(age: dt.timedelta) -> int:
    return max(0, int(age.total_seconds() // 60))


def _with_reason(text: str, reason: str) -> str:
    return f"{text}: {reason[:200]}" if reason else text


def _health_verdict(heard: LastHeard, health_age: dt.timedelta, thresholds: Thresholds) -> StateVerdict | None:
    """What a health event younger than ``down_after`` says, or None when it does not decide (old ``live``)."""
    state = heard.health_state or ""
    if state in DOWN_HEALTH:
        return StateVerdict(
            "down",
            "health_down",
            _with_reason("Agent báo nguồn ngừng hoạt động", heard.health_reason),
            _with_reason("The agent reports the source down", heard.health_reason),
        )
    if state in STALLED_HEALTH:
        return StateVerdict(
            "stalled",
            "health_stalled",
            _with_reason("Đang kết nối lại / không có khung hình", heard.health_reason),
            _with_reason("Reconnecting / no frames", heard.health_reason),
        )
    if state == "live" and health_age <= thresholds.live_within:
        if heard.fps is not None and heard.fps <= 0:
            return StateVerdict("stalled", "no_frames", "Không có khung hình (0 fps)", "No frames (0 fps)")
        return StateVerdict("live", "healthy", "Đang hoạt động", "Live")
    return None


def source_state(heard: LastHeard, now: dt.datetime, thresholds: Thresholds = CAMERA) -> StateVerdict:
    """The state of one source at ``now`` by the rules in this module's docstring."""
    times = [t for t in (heard.event_time, heard.health_time) if t is not None]
    if not times:
        return StateVerdict("unknown", "never_heard", "Chưa từng nhận dữ liệu", "Never heard from")
    newest_age = max(now - max(times), dt.timedelta(0))
    minutes = _minutes(newest_age)
    if newest_age > thresholds.down_after:
        return StateVerdict(
            "down", "silent", f"Không nhận được dữ liệu {minutes} phút", f"Nothing received for {minutes} min"
        )
    if heard.health_time is not None:
        health_age = max(now - heard.health_time, dt.timedelta(0))
        verdict = _health_verdict(heard, health_age, thresholds) if health_age <= thresholds.down_after else None
        if verdict is not None:
            return verdict
    if heard.event_time is not None and now - heard.event_time <= thresholds.live_within:
        return StateVerdict("live", "recent_event", "Đang hoạt động", "Live")
    return StateVerdict("stalled", "quiet", f"Không có dữ liệu mới {minutes} phút", f"No news for {minutes} min")


@dataclass(frozen=True, slots=True)
class LevelVerdict:
    """The alert level a sensor's latest reading is at: ``level`` is ``normal`` or the rule's level name."""

    level: str = "normal"
    label_vi: str = "Bình thường"
    label_en: str = "Normal"
    severity: str | None = None
    rule_id: str | None = None
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None

    @property
    def rank(self) -> tuple[int, float]:
        """Severity first, then how far up the rule's levels (for choosing among rules)."""
        return (SEVERITY_RANK.get(self.severity or "", 0), 0.0 if self.threshold is None else abs(self.threshold))


NORMAL = LevelVerdict()


def _reached(rule: SensorThresholdRule, value: float, levels: Sequence[Level]) -> int:
    """How many of ``levels`` (ordered least to most severe) ``value`` is at or past (0: none), as the engine sees."""
    hit = level_reached(levels, value, above=rule.direction == "above")
    return 0 if hit is None else list(levels).index(hit) + 1


def sensor_level(
    rules: Sequence[SensorThresholdRule],
    agent_id: str,
    source_id: str,
    sensor_kind: str | None,
    latest: Mapping[str, float],
    *,
    reported_levels: tuple[float, float, float] | None = None,
) -> LevelVerdict:
    """The most severe level any enabled rule puts the latest readings at; ``NORMAL`` when none does.

    ``latest``: metric -> latest value; ``reported_levels``: the station's own báo động 1/2/3 (sensor_stations).
    """
    best = NORMAL
    for rule in rules:
        if not rule.enabled or rule.metric not in latest or not rule.selects(agent_id, source_id, sensor_kind or ""):
            continue
        value = latest[rule.metric]
        levels = rule.levels_for(agent_id, source_id, reported_levels)
        reached = _reached(rule, value, levels)
        if reached == 0:
            continue
        level = levels[reached - 1]
        label_vi, label_en = level_labels(level.name, level.label_vi, level.label_en)
        verdict = LevelVerdict(
            level=level.name,
            label_vi=label_vi,
            label_en=label_en,
            severity=level.severity,
            rule_id=rule.id,
            metric=rule.metric,
            value=value,
            threshold=float(level.value),
        )
        if best is NORMAL or verdict.rank > best.rank:
            best = verdict
    return best
