"""One camera's latest analysed frame, handed from the analytics thread to HTTP client threads.

``CameraFeed.observe`` is the pipeline's ``FrameObserver``: it stores the newest frame with its
overlay in a latest-value slot (older ones are simply replaced, nothing queues up), adds the
frame's crossings to the running counts and notes the time, all in O(1) and without waiting on
any client. Clients call ``wait_newer`` to sleep until a newer frame than the one they sent.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_agent.analytics.lines import LineConfig
from edge_agent.overlay import Overlay, RunningCounts
from edge_agent.perception.types import Frame
from edge_agent.pipeline import StepResult

FPS_WINDOW = 32
"""Frames over which the analysed frame rate is measured."""

FPS_STALE_S = 5.0
"""With no frame for this long the measured rate reads 0, not the rate of long ago."""


@dataclass(frozen=True, slots=True)
class PreviewSample:
    """The latest analysed frame of a camera with what to draw over it."""

    sequence: int
    """1 for the first frame this feed saw, then +1 per frame (survives reconnects, unlike Frame.sequence)."""
    frame: Frame
    overlay: Overlay


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
        self, camera_id: str, lines: Sequence[LineConfig], *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.camera_id = camera_id
        self.lines = tuple(lines)
        self._monotonic = monotonic
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
        with self._changed:
            sequence = 1 if self._latest is None else self._latest.sequence + 1
            self._latest = PreviewSample(sequence, frame, overlay)
            self._counts = counts
            self._stages = stages
            self._observed_at.append(now)
            self._changed.notify_all()

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
