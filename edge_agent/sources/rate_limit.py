"""``max_fps``: which decoded frames are handed to analytics, decided by stream time (PTS), not arrival."""

from __future__ import annotations

JITTER_TOLERANCE = 0.25
"""Fraction of the source's frame interval a frame may come early and still be due (PTS rounding)."""


class FrameRateLimiter:
    """Keeps frames spaced at least ``1 / max_fps`` apart in stream time, on a steady grid.

    With a 25 fps source and ``max_fps: 10`` it keeps frames at 0, 120, 200, 320, 400 ms, ...
    (10 a second on average), rather than every third frame (8.3 a second).
    """

    def __init__(self, max_fps: float | None, source_interval_s: float) -> None:
        self._interval_s = 1.0 / max_fps if max_fps else 0.0
        self._tolerance_s = JITTER_TOLERANCE * source_interval_s
        self._next_due_s: float | None = None

    def restart(self) -> None:
        """A new connection: its stream time starts again."""
        self._next_due_s = None

    def due(self, offset_s: float) -> bool:
        """Whether the frame at ``offset_s`` seconds of stream time is to be handed over."""
        if self._interval_s == 0.0:
            return True
        due_s = self._next_due_s
        if due_s is None or offset_s - due_s >= self._interval_s or offset_s < due_s - self._interval_s:
            # First frame, a gap in the stream, or time going back before the last kept frame: new grid here.
            due_s = offset_s
        elif offset_s < due_s - self._tolerance_s:
            return False
        self._next_due_s = due_s + self._interval_s
        return True
