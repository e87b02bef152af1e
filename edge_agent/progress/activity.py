"""Site activity: workers, machines and trucks present per zone, in windows aligned on the clock.

Every analysed frame (not only the sampled ones) counts. Windows are aligned on multiples of ``window_s`` since
the Unix epoch, so two cameras' hours line up. Per window and zone:

- frames: analysed frames in the window; activity_index: share of them with at least one object of any group
  in the zone (the bottom-centre of its box, where it stands, inside the polygon);
- covered_s: seconds the frames stand for: each frame holds until the next one, at most ``max_frame_gap_s``
  (a stalled stream does not count as watched), clipped to the window; active_s: the part of covered_s held by
  frames with an object in the zone;
- mean_present / peak_present: mean and highest count per group over the frames.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_agent.analytics.geometry import points_in_polygon
from edge_agent.perception.types import Detections
from edge_agent.progress.config import ActivityConfig

GROUPS = ("worker", "machine", "truck")
SITE_ZONE = "site"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class ActivityWindow:
    zone_id: str
    start: dt.datetime
    end: dt.datetime
    frames: int
    covered_s: float
    activity_index: float
    active_s: float
    mean_present: Mapping[str, float]
    peak_present: Mapping[str, int]


@dataclass(slots=True)
class _ZoneTally:
    active_frames: int = 0
    covered_s: float = 0.0
    active_s: float = 0.0
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    peaks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))


@dataclass(slots=True)
class _Window:
    start: dt.datetime
    end: dt.datetime
    frames: int
    zones: dict[str, _ZoneTally]


def window_start(t: dt.datetime, window_s: int) -> dt.datetime:
    """Start of the epoch-aligned window holding ``t``."""
    seconds = (t - _EPOCH) // dt.timedelta(seconds=1)
    return _EPOCH + dt.timedelta(seconds=seconds - seconds % window_s)


class ActivityMeter:
    """Feed every analysed frame's tracked objects; get the windows that closed."""

    def __init__(self, config: ActivityConfig, max_frame_gap_s: float = 60.0) -> None:
        if max_frame_gap_s <= 0:
            raise ValueError(f"max_frame_gap_s must be > 0, got {max_frame_gap_s}")
        self._config = config
        self._max_gap = dt.timedelta(seconds=max_frame_gap_s)
        self._zones: tuple[tuple[str, npt.NDArray[np.float64] | None], ...] = (
            tuple((z.id, np.asarray(z.polygon, dtype=np.float64)) for z in config.zones)
            if config.zones
            else ((SITE_ZONE, None),)
        )
        self._class_group = {name: group for group, names in config.groups.items() for name in names}
        self._window: _Window | None = None
        self._carry: tuple[dt.datetime, dict[str, bool]] | None = None  # spill of the last gap into the next window
        self._last: tuple[dt.datetime, dict[str, bool]] | None = None  # last frame's time and active zones
        self.frames_out_of_order = 0

    def update(self, tracked: Detections, t: dt.datetime, width: int, height: int) -> tuple[ActivityWindow, ...]:
        """Count one frame at ``t``; returns the windows that closed before it (a frame older than the last
        one is counted in ``frames_out_of_order`` and ignored)."""
        if t.tzinfo is None:
            raise ValueError("activity frame time must be timezone-aware (UTC)")
        if self._last is not None and t < self._last[0]:
            self.frames_out_of_order += 1
            return ()
        closed: list[ActivityWindow] = []
        if self._last is not None:
            self._credit(self._last[0], min(t, self._last[0] + self._max_gap), self._last[1])
        if self._window is not None and t >= self._window.end:
            closed.extend(self._close())
        if self._window is None:
            start = window_start(t, self._config.window_s)
            self._window = _Window(
                start, start + dt.timedelta(seconds=self._config.window_s), 0, {z: _ZoneTally() for z, _ in self._zones}
            )
            if self._carry is not None and self._carry[0] > start:
                self._credit(start, self._carry[0], self._carry[1])
        self._carry = None
        self._last = (t, self._count(tracked, width, height))
        return tuple(closed)

    def expire(self, now: dt.datetime) -> tuple[ActivityWindow, ...]:
        """No frame came: close the open window once ``now`` is past its end by more than the last frame can
        stand for, so a camera that went down still reports the hour it was seen in."""
        if self._window is None or now < self._window.end + self._max_gap:
            return ()
        return self.flush(now)

    def flush(self, now: dt.datetime) -> tuple[ActivityWindow, ...]:
        """Close the open window (the agent stops): the last frame holds until ``now`` (at most the gap)."""
        if self._window is None:
            return ()
        if self._last is not None and now > self._last[0]:
            self._credit(self._last[0], min(now, self._last[0] + self._max_gap), self._last[1])
        closed = self._close()
        self._carry = None
        return closed

    def _credit(self, start: dt.datetime, end: dt.datetime, active: dict[str, bool]) -> None:
        """Add [start, end) held by a frame with these active zones to the open window; keep any spill over."""
        window = self._window
        if window is None or end <= start:
            return
        inside = (min(end, window.end) - max(start, window.start)).total_seconds()
        if inside > 0:
            for zone, tally in window.zones.items():
                tally.covered_s += inside
                if active[zone]:
                    tally.active_s += inside
        if end > window.end:
            self._carry = (end, active)

    def _count(self, tracked: Detections, width: int, height: int) -> dict[str, bool]:
        assert self._window is not None
        window = self._window
        window.frames += 1
        groups = np.array([self._class_group.get(name, "") for name in tracked.names], dtype=object)
        anchors = tracked.anchor_points("bottom_center").astype(np.float64)
        if len(anchors):
            anchors /= (max(width, 1), max(height, 1))
        active: dict[str, bool] = {}
        for zone, polygon in self._zones:
            inside = (
                np.ones(len(anchors), dtype=bool)
                if polygon is None or len(anchors) == 0
                else points_in_polygon(anchors.astype(np.float32), polygon)
            )
            tally = window.zones[zone]
            any_present = False
            for group in GROUPS:
                count = int(np.count_nonzero(inside & (groups == group))) if len(anchors) else 0
                tally.sums[group] += count
                tally.peaks[group] = max(tally.peaks[group], count)
                any_present |= count > 0
            tally.active_frames += int(any_present)
            active[zone] = any_present
        return active

    def _close(self) -> tuple[ActivityWindow, ...]:
        window = self._window
        self._window = None
        if window is None or window.frames == 0:
            return ()
        return tuple(
            ActivityWindow(
                zone_id=zone,
                start=window.start,
                end=window.end,
                frames=window.frames,
                covered_s=tally.covered_s,
                activity_index=tally.active_frames / window.frames,
                active_s=tally.active_s,
                mean_present={g: tally.sums[g] / window.frames for g in GROUPS},
                peak_present=dict(tally.peaks),
            )
            for zone, tally in window.zones.items()
        )


def working_hours(windows: Iterable[ActivityWindow], threshold: float) -> float:
    """Hours of windows whose activity index is at or above ``threshold`` (the status summary's working hours)."""
    return sum((w.end - w.start).total_seconds() for w in windows if w.activity_index >= threshold) / 3600.0
