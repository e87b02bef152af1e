"""When to try a lost camera again: exponential backoff with full jitter, faster for a camera seen lately.

A camera that was live a moment ago usually comes back soon (a network blip, a
reboot, a server restart), and the product promises its first frame within about
5 s of its return; a camera that has been dead for hours should not be probed
every second. So the delay's ceiling is ``fast_reconnect_ceiling_s`` while the last
frame is less than ``fast_reconnect_window_s`` old, ``reconnect.ceiling_s`` otherwise.
"""

from __future__ import annotations

import random

from edge_agent.sources.config import ReaderConfig
from ioc_common.backoff import Backoff, BackoffConfig


class ReconnectLimitError(Exception):
    """``max_reconnects`` failures in a row: the caller ends the source."""


class ReconnectPolicy:
    def __init__(self, config: ReaderConfig, rng: random.Random) -> None:
        self._max_failures = config.max_reconnects
        self._window_s = config.fast_reconnect_window_s
        self._slow = Backoff(config.reconnect, rng)
        fast_ceiling = min(config.fast_reconnect_ceiling_s, config.reconnect.ceiling_s)
        self._fast = Backoff(
            BackoffConfig(base_s=min(config.reconnect.base_s, fast_ceiling), ceiling_s=fast_ceiling), rng
        )
        self._failures = 0
        self._last_frame_monotonic: float | None = None

    @property
    def failures(self) -> int:
        """Reconnects since the last frame."""
        return self._failures

    def frame_arrived(self, now: float) -> None:
        self._last_frame_monotonic = now
        self._failures = 0
        self._slow.reset()
        self._fast.reset()

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next attempt; raises ``ReconnectLimitError`` past ``max_reconnects``."""
        if self._max_failures is not None and self._failures >= self._max_failures:
            raise ReconnectLimitError(f"gave up after {self._max_failures} reconnects")
        self._failures += 1
        recently_live = self._last_frame_monotonic is not None and now - self._last_frame_monotonic <= self._window_s
        # Both advance together, so leaving the window continues the slow schedule where it would be.
        slow, fast = self._slow.next_delay(), self._fast.next_delay()
        return fast if recently_live else slow
