"""One camera's latest analysed frame, handed from the analytics thread to HTTP client threads.

``CameraFeed.observe`` is the pipeline's ``FrameObserver``: it stores the newest frame with its
overlay in a latest-value slot (older ones are simply replaced, nothing queues up), adds the
frame's crossings to the running counts and notes the time, all in O(1) and without waiting on
any client. Clients call ``wait_newer`` to sleep until a newer frame than the one they sent.
The violations judged over the last ``FLASH_WINDOW_S`` (source time) ride along with each sample,
so the live stream can flash them on the picture.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_agent.analytics.lines import LineConfig
from edge_agent.overlay import Overlay, RunningCounts
from edge_agent.perception.types import Frame
from edge_agent.pipeline import StepResult
from edge_agent.violations.findings import Finding

FPS_WINDOW = 32
"""Frames over which the analysed frame rate is measured."""

FPS_STALE_S = 5.0
"""With no frame for this long the measured rate reads 0, not the rate of long ago."""

FLASH_WINDOW_S = 3.0
"""Violations judged this long before a frame (source time) are shown with it (the live view's flash)."""

MAX_RECENT_FINDINGS = 64
"""Bound on violations held for the flash; a burst beyond it drops the oldest (``CameraFeed.findings_dropped``)."""


@dataclass(frozen=True, slots=True)
class PreviewSample:
    """The latest analysed frame of a camera with what to draw over it."""

    sequence: int
    """1 for the first frame this feed saw, then +1 per frame (survives reconnects, unlike Frame.sequence)."""
    frame: Frame
    overlay: Overlay
    analysed_at_ms: int = 0
    """The agent's wall clock (epoch ms) when the analytics thread handed this frame over."""
    findings: tuple[Finding, ...] = ()
    """Violations and incidents judged within ``FLASH_WINDOW_S`` before this frame, oldest first."""


@dataclass(frozen=True, slots=True)
class StageTotals:
    """Seconds spent per analytics stage since start, and how often the detector really ran."""

    gate_s: float = 0.0
    detect_s: float = 0.0
    track_s: float = 0.0
    count_s: float = 0.0
    detector_runs: int = 0


class CameraFeed:
    """Latest-value slot of one camera plus its running counts; written by one thread, read by many."""

    def __init__(
        self,
        camera_id: str,
        lines: Sequence[LineConfig],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.camera_id = camera_id
        self.lines = tuple(lines)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._recent: deque[Finding] = deque()
        self.findings_dropped = 0
        """Violations dropped from the flash window because more than ``MAX_RECENT_FINDINGS`` were recent."""
        self._changed = threading.Condition()
        self._latest: PreviewSample | None = None
        self._counts = RunningCounts.zero(self.lines)
        self._stages = StageTotals()
        self._observed_at: deque[float] = deque(maxlen=FPS_WINDOW)

    def observe(self, frame: Frame, result: StepResult) -> None:
        """The pipeline's FrameObserver: keep this frame as the latest; never blocks on a client."""
        counts = self._counts.plus(result.crossings)
        overlay = Overlay(frame.width, frame.height, result.tracked, self.lines, counts)
        timings = result.timings
        stages = StageTotals(
            gate_s=self._stages.gate_s + timings.gate_s,
            detect_s=self._stages.detect_s + timings.detect_s,
            track_s=self._stages.track_s + timings.track_s,
            count_s=self._stages.count_s + timings.count_s,
            detector_runs=self._stages.detector_runs + int(timings.detector_ran),
        )
        now = self._monotonic()
        analysed_at_ms = round(self._wall_clock() * 1000)
        findings = self._recent_findings(frame.timestamp, result.findings)
        with self._changed:
            sequence = 1 if self._latest is None else self._latest.sequence + 1
            self._latest = PreviewSample(sequence, frame, overlay, analysed_at_ms, findings)
            self._counts = counts
            self._stages = stages
            self._observed_at.append(now)
            self._changed.notify_all()

    def _recent_findings(self, at: dt.datetime, new: Sequence[Finding]) -> tuple[Finding, ...]:
        """The flash window as of ``at`` with ``new`` added (called by the one analytics thread only)."""
        recent = self._recent
        for finding in new:
            if len(recent) >= MAX_RECENT_FINDINGS:
                recent.popleft()  # drop policy: oldest first; the newest violation is the one to show
                self.findings_dropped += 1
            recent.append(finding)
        since = at - dt.timedelta(seconds=FLASH_WINDOW_S)
        while recent and recent[0].time < since:
            recent.popleft()
        return tuple(finding for finding in recent if finding.time >= since)  # rules may judge out of order

    def latest(self) -> PreviewSample | None:
        with self._changed:
            return self._latest

    def wait_newer(self, after: int, timeout_s: float) -> PreviewSample | None:
        """The latest sample if its sequence is above ``after``, waiting up to ``timeout_s`` for one."""
        with self._changed:
            self._changed.wait_for(lambda: self._latest is not None and self._latest.sequence > after, timeout_s)
            latest = self._latest
        return latest if latest is not None and latest.sequence > after else None

    def counts(self) -> RunningCounts:
        with self._changed:
            return self._counts

    def stage_totals(self) -> StageTotals:
        with self._changed:
            return self._stages

    def fps(self) -> float:
        """Analysed frames per second over the last ``FPS_WINDOW`` frames; 0 when none came lately."""
        now = self._monotonic()
        with self._changed:
            times = tuple(self._observed_at)
        if len(times) < 2 or now - times[-1] > FPS_STALE_S or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])
