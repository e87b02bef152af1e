"""Data quality of a camera's analysis: which stretches of source time were analysed or down.

Intervals report how much of themselves was really watched (``event_contract.IntervalQuality``).
This module turns the two things the analytics thread sees into stretches of source time:

- an analysed FRAME at time ``t`` credits the time since the previous analysed frame, capped at
  ``max_frame_gap_s``: the stretch ``[max(t - max_frame_gap_s, covered), t]`` is ``analysed``,
  where ``covered`` is the end of the last stretch already credited. So ``analysed_s`` of an
  interval is the sum of the gaps between consecutive analysed frames, each gap capped, split at
  interval boundaries. The first frame the meter sees credits nothing (it has no predecessor).
  The cap (default 1 s, the tracker's default ``max_lost_s``) is the longest gap over which
  tracking, and so counting, still holds: a stream that delivers a frame every 5 s is not "watched".
- a TICK (the analytics thread waking without frames, every ``pipeline.MAILBOX_POLL_S``) at
  ``now`` with the reader's state: while the state is anything but ``live`` (starting,
  connecting, down, stalled, stopped), the stretch from ``covered`` (at the latest the last
  analysed frame) to ``now`` is ``down``. Ticks while the reader still says ``live`` credit
  nothing: those seconds stay unaccounted until the reader notices the loss, and are then
  counted as downtime back to the last analysed frame.

Stretches never overlap, so per interval ``analysed_s + downtime_s <= interval_s``. Each update
also carries the number of frames analysed (1 or 0) and the mailbox drops since the previous
update (``frames_dropped`` is the mailbox's cumulative counter; only its increase is reported).
Time comes in as arguments; nothing here reads a clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from edge_agent.analytics.epoch import US, epoch_us
from event_contract import SourceState

SpanKind = Literal["analysed", "down"]

DEFAULT_MAX_FRAME_GAP_S = 1.0


@dataclass(frozen=True, slots=True)
class CoverageSpan:
    """A stretch ``[start_us, end_us)`` of source time, in microseconds since the epoch."""

    start_us: int
    end_us: int
    kind: SpanKind


@dataclass(frozen=True, slots=True)
class CoverageUpdate:
    """What one frame or tick adds to the quality of the interval(s) it touches."""

    at: dt.datetime
    """Source time of the frame or tick; frames and drops are attributed to its interval."""
    spans: tuple[CoverageSpan, ...]
    frames_analysed: int
    frames_dropped: int


class CoverageMeter:
    """Turns analysed frames and ticks of one camera into analysed and down stretches. Not thread-safe."""

    def __init__(self, max_frame_gap_s: float = DEFAULT_MAX_FRAME_GAP_S) -> None:
        if max_frame_gap_s <= 0:
            raise ValueError(f"max_frame_gap_s must be positive, got {max_frame_gap_s}")
        self._cap_us = round(max_frame_gap_s * US)
        self._last_frame_us: int | None = None
        self._covered_us: int | None = None
        """End of the latest stretch credited (or where accounting began)."""
        self._dropped_total = 0

    def frame(self, timestamp: dt.datetime, frames_dropped_total: int = 0) -> CoverageUpdate:
        """An analysed frame at ``timestamp``; ``frames_dropped_total`` is the mailbox's cumulative drop count."""
        t_us = epoch_us(timestamp)
        spans: tuple[CoverageSpan, ...] = ()
        if self._last_frame_us is not None and self._covered_us is not None:
            start = max(t_us - self._cap_us, self._covered_us)
            if t_us > start:
                spans = (CoverageSpan(start, t_us, "analysed"),)
        self._last_frame_us = t_us if self._last_frame_us is None else max(self._last_frame_us, t_us)
        self._covered_us = t_us if self._covered_us is None else max(self._covered_us, t_us)
        return CoverageUpdate(timestamp, spans, 1, self._drops(frames_dropped_total))

    def tick(self, now: dt.datetime, state: SourceState, frames_dropped_total: int = 0) -> CoverageUpdate:
        """No frame came; ``now`` is the current SOURCE time, ``state`` the reader's."""
        now_us = epoch_us(now)
        spans: tuple[CoverageSpan, ...] = ()
        if state != "live":
            if self._covered_us is None:
                self._covered_us = now_us  # accounting starts at the first thing the meter sees
            elif now_us > self._covered_us:
                spans = (CoverageSpan(self._covered_us, now_us, "down"),)
                self._covered_us = now_us
        return CoverageUpdate(now, spans, 0, self._drops(frames_dropped_total))

    def _drops(self, total: int) -> int:
        # The mailbox counter only grows; a smaller value means a new mailbox, whose count is all new.
        delta = total - self._dropped_total if total >= self._dropped_total else total
        self._dropped_total = total
        return delta
