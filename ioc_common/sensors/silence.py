"""Which sensors stopped reporting: a pure state machine, time passed in.

A water-level station that dies silently looks exactly like a calm river, so silence is an
event of its own. Each sensor has a threshold (``silent_after_s``, from its config): with no
reading for that long it turns "silent"; its next reading turns it "live" again. Every
transition is reported once, by the ``check`` that first sees it; a sensor never heard from
counts from the monitor's start, so a station that is dead when the agent boots is reported too.

No clock and no threads here: the caller passes the receive times and ``now`` (the subscriber
holds the lock), so tests are exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

SilenceState = Literal["silent", "live"]


@dataclass(frozen=True, slots=True)
class SilenceChange:
    """One sensor went silent or came back."""

    sensor_id: str
    state: SilenceState
    since: dt.datetime
    """silent: the last reading (or the monitor's start when none came); live: the reading that ended it."""
    reason: str
    """``no reading for 900 s`` / ``no reading since start, 900 s ago`` / ``reading again after 1200 s``."""


@dataclass
class _Track:
    threshold_s: float
    last_seen: dt.datetime | None = None
    silent: bool = False
    silent_since: dt.datetime | None = None


class SilenceMonitor:
    """Per-sensor silence with thresholds ``sensors`` (sensor id -> silent_after_s), counted from ``started_at``."""

    def __init__(self, sensors: Mapping[str, float], *, started_at: dt.datetime) -> None:
        for sensor_id, threshold in sensors.items():
            if not threshold > 0:
                raise ValueError(f"silent_after_s of sensor {sensor_id!r} must be > 0, got {threshold}")
        _require_aware(started_at, "started_at")
        self._started_at = started_at
        self._tracks = {sensor_id: _Track(float(threshold)) for sensor_id, threshold in sensors.items()}

    @property
    def sensor_ids(self) -> frozenset[str]:
        return frozenset(self._tracks)

    def observe(self, sensor_id: str, at: dt.datetime) -> None:
        """A reading of ``sensor_id`` arrived at ``at``; unknown ids are ignored (the normaliser refuses them)."""
        track = self._tracks.get(sensor_id)
        if track is None:
            return
        _require_aware(at, "at")
        if track.last_seen is None or at > track.last_seen:
            track.last_seen = at

    def check(self, now: dt.datetime) -> list[SilenceChange]:
        """Transitions since the last check, in sensor id order; each one is reported exactly once."""
        _require_aware(now, "now")
        changes: list[SilenceChange] = []
        for sensor_id in sorted(self._tracks):
            change = self._check_one(sensor_id, self._tracks[sensor_id], now)
            if change is not None:
                changes.append(change)
        return changes

    def _check_one(self, sensor_id: str, track: _Track, now: dt.datetime) -> SilenceChange | None:
        if track.silent:
            if track.last_seen is None or track.silent_since is None or track.last_seen <= track.silent_since:
                return None
            gap_s = (track.last_seen - track.silent_since).total_seconds()
            track.silent = False
            return SilenceChange(sensor_id, "live", track.last_seen, f"reading again after {gap_s:.0f} s")
        reference = track.last_seen if track.last_seen is not None else self._started_at
        quiet_s = (now - reference).total_seconds()
        if quiet_s < track.threshold_s:
            return None
        track.silent = True
        track.silent_since = reference
        if track.last_seen is None:
            reason = f"no reading since start, {quiet_s:.0f} s ago (limit {track.threshold_s:.0f} s)"
        else:
            reason = f"no reading for {quiet_s:.0f} s (limit {track.threshold_s:.0f} s)"
        return SilenceChange(sensor_id, "silent", reference, reason)


def _require_aware(value: dt.datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {value.isoformat()}")
