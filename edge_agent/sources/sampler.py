"""Which packets a keyframe sampler hands to the decoder: the first keyframe at or after each due time, no other.

A site camera analysed once a minute over a persistent connection pays, per hour, for three things:
receiving and demuxing the whole stream (the floor), every packet handed to the decoder (even
with ``skip_frame = NONKEY`` each one goes through the decoder's threads), and every keyframe decoded
(about 25 ms of CPU for a 1080p I-frame, 30 of them a minute at a 2 s GOP). ``decode: keyframes`` with
``max_fps`` cuts the BGR conversion but still decodes every keyframe. This gate cuts the other two:
packets that are not due never reach the decoder, so one keyframe is decoded per interval
(``benchmarks/site_sampling.md`` measures the difference). Pure logic: the caller demuxes and decodes.

``GrabSchedule`` is the other strategy's clock: when a connect-grab-disconnect reader (``grab_reader``)
opens the camera next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GateCounts:
    """What the gate let through: ``wanted`` packets went to the decoder, ``skipped`` did not."""

    wanted: int
    skipped: int
    samples: int
    restarts: int


class KeyframeGate:
    """One sample per ``interval_s`` of stream time, from the first keyframe at or after each due time.

    Use: ``if gate.wants(t, packet.is_keyframe): pictures = packet.decode()``; for the picture kept,
    ``gate.taken(t)``. Until a picture is taken the gate keeps wanting keyframes, so a decoder that
    holds its first picture back (reordering delay) costs one more keyframe, not a missed sample.
    The next due time keeps the cadence (previous due + interval) unless the stream fell behind it by
    a whole interval (a gap, a reconnect), when it restarts from the sample's time.
    """

    def __init__(self, interval_s: float, tolerance_s: float = 0.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        if not 0 <= tolerance_s < interval_s:
            raise ValueError(f"tolerance_s must be >= 0 and below interval_s, got {tolerance_s!r}")
        self.interval_s = interval_s
        self._tolerance_s = tolerance_s
        """How early (PTS rounding) a keyframe may come and still be due: without it a 2 s GOP sampled every
        2 s would lose every other keyframe whose PTS falls a tick before the due time."""
        self._due: float | None = None
        self._last_time: float | None = None
        self._wanted = 0
        self._skipped = 0
        self._samples = 0
        self._restarts = 0

    def wants(self, time_s: float, keyframe: bool) -> bool:
        """True when the packet at stream time ``time_s`` should be decoded."""
        if self._last_time is not None and time_s < self._last_time:
            # Stream time went back (a new connection, a camera restart): sample at once, then keep cadence.
            self._due = None
            self._restarts += 1
        self._last_time = time_s
        wanted = keyframe and (self._due is None or time_s >= self._due - self._tolerance_s)
        if wanted:
            self._wanted += 1
        else:
            self._skipped += 1
        return wanted

    def due(self, time_s: float) -> bool:
        """Whether a sample is due at stream time ``time_s`` (its keyframe not decoded into a picture yet).

        A reader hands non-key packets to the decoder only while a sample is due, so its stall watchdog
        judges the stream as before until the sample is taken, and no longer than one GOP per interval.
        """
        return self._due is None or time_s >= self._due - self._tolerance_s

    def taken(self, time_s: float) -> None:
        """A sample was taken at stream time ``time_s``: the next one is due one interval on."""
        self._samples += 1
        due = (self._due if self._due is not None else time_s) + self.interval_s
        self._due = due if due > time_s else time_s + self.interval_s

    def reset(self, tolerance_s: float | None = None) -> None:
        """A new connection whose stream time starts afresh: its first keyframe is due.

        ``tolerance_s``: the new connection's early allowance (a quarter of its frame interval, say), when known.
        """
        if tolerance_s is not None:
            self._tolerance_s = min(max(tolerance_s, 0.0), self.interval_s / 2)
        self._due = None
        self._last_time = None

    @property
    def due_s(self) -> float | None:
        """Stream time from which the next keyframe is wanted; None = the next keyframe."""
        return self._due

    def counts(self) -> GateCounts:
        return GateCounts(self._wanted, self._skipped, self._samples, self._restarts)


class GrabSchedule:
    """Slot times of a connect-grab-disconnect reader: a fixed grid ``anchor + k * every_s`` of its own clock.

    The grid is anchored at the first grab, so each source keeps its own phase (cameras started at different
    moments stay spread out). The next grab is the first slot after the previous one that is not earlier than
    ``not_before`` (now after a grab; now + the backoff delay after a failure): a grab that overran, a consumer
    that was slow or a backoff skips slots (counted in ``missed``) and never makes grabs bunch up to catch up.
    """

    def __init__(self, every_s: float) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0, got {every_s!r}")
        self.every_s = every_s
        self._anchor: float | None = None
        self._slot = 0
        self.missed = 0
        """Slots that passed without a grab (overrun, slow consumer, backoff after failures)."""

    def start(self, now: float) -> float:
        """The first grab's time (now); the grid is anchored on it."""
        self._anchor, self._slot, self.missed = now, 0, 0
        return now

    def next(self, not_before: float) -> float:
        """The time of the next grab: the first slot after the current one at or after ``not_before``."""
        if self._anchor is None:
            return self.start(not_before)
        # A slot a hair before not_before (float rounding of anchor + k * every) still counts as at it.
        wanted = math.ceil((not_before - self._anchor) / self.every_s - 1e-9)
        slot = max(self._slot + 1, wanted)
        self.missed += slot - self._slot - 1
        self._slot = slot
        return self._anchor + slot * self.every_s
