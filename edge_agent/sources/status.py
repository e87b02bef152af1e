"""A source's state, counters and recent state changes: the single source of truth for its health.

The reader thread writes through ``SourceStatus``; any thread reads an immutable
``ReaderStats`` snapshot (``snapshot()``) or the state changes it has not seen yet
(``changes_since(number)``), so a health reporter that polls every quarter second
still reports a "stalled" that lasted only until the next reconnect attempt.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

ReaderState = Literal["starting", "connecting", "live", "stalled", "down", "stopped"]
"""The event contract's ``SourceState``, so health events carry it as is.

- starting: created, ``frames()`` not called yet;
- connecting: opening the source (first time or after a wait);
- live: frames arrive;
- stalled: the connection stayed open but no frame came for ``stall_timeout_s`` (or no data at all
  for the read timeout); torn down, it stays "stalled" until the next attempt to open;
- down: the source could not be opened, closed the connection or failed; waiting to reconnect;
- stopped: ``frames()`` has returned (stop requested, end of a file, or gave up).
"""

DecoderKind = Literal["cpu", "nvdec"]
TimestampSource = Literal["file", "arrival", "sender_report"]

CHANGE_LOG_SIZE = 64
"""State changes kept for pollers; an older one a poller missed is counted in ``missed``."""


@dataclass(frozen=True, slots=True)
class StateChange:
    number: int
    """1 for the first change of this source, then +1 for each."""
    state: ReaderState
    reason: str
    at: dt.datetime
    """Wall-clock time of the change."""


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """What a reader has done so far; every count is since the reader was created."""

    state: ReaderState
    frames_decoded: int
    """Pictures the decoder produced (with ``decode: keyframes``, only keyframes are decoded)."""
    decode_errors: int
    """Packets FFmpeg could not demux or decode; skipped, never fatal."""
    reconnects: int
    last_error: str
    """The most recent problem, kept after the source recovered (for operators)."""
    reason: str = ""
    """Why the source is in ``state`` (empty while live)."""
    state_since: dt.datetime | None = None
    """Wall-clock time of the last state change."""
    last_frame_at: dt.datetime | None = None
    """Wall-clock time the last frame was handed over (not its stream timestamp)."""
    frames_delivered: int = 0
    """Frames converted to BGR and handed to the caller."""
    frames_rate_limited: int = 0
    """Frames decoded but not handed over because of ``max_fps`` (never converted to BGR)."""
    corrupt_frames: int = 0
    """Frames FFmpeg decoded with errors concealed (``corrupt_frames: drop`` drops them)."""
    stalls: int = 0
    """Times the stall watchdog tore down a connection that stayed open without frames."""
    state_changes: int = 0
    decoder: DecoderKind | None = None
    """The decoder of the current (or last) connection; None before the first one opened."""
    decoder_reason: str = ""
    """Why that decoder: e.g. why NVDEC was not used."""
    codec: str = ""
    """Codec of the current (or last) connection, e.g. h264, hevc."""
    timestamp_source: TimestampSource | None = None
    """Where the frames' timestamps come from (see ``edge_agent.sources.timeline``)."""
    clock_offset_s: float | None = None
    """Camera clock (RTCP sender report) minus our arrival clock at the frame it was checked, seconds."""
    decode_seconds: float = 0.0
    """Wall time the reader thread spent in FFmpeg's decode calls. With frame threads (CPU decoding of
    H.264/H.265) the work partly overlaps other threads, so this is the reader's wait, not CPU time."""
    convert_seconds: float = 0.0
    """Wall time spent converting delivered frames to BGR (``to_ndarray``)."""
    fell_behind: int = 0
    """Times decoding lagged the live stream by more than ``max_decode_lag_s`` (keyframes only until caught up)."""
    frames_skipped_behind: int = 0
    """Non-key frames not decoded while catching up (see ``edge_agent.sources.catch_up``)."""


class SourceStatus:
    """Thread-safe holder of one source's state and counters; the reader writes, anyone reads."""

    def __init__(self, wall_clock: Callable[[], dt.datetime]) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._stats = ReaderStats(
            state="starting", frames_decoded=0, decode_errors=0, reconnects=0, last_error="", state_since=wall_clock()
        )
        self._changes: deque[StateChange] = deque(maxlen=CHANGE_LOG_SIZE)

    def snapshot(self) -> ReaderStats:
        with self._lock:
            return self._stats

    @property
    def state(self) -> ReaderState:
        with self._lock:
            return self._stats.state

    def set_state(self, state: ReaderState, reason: str = "") -> None:
        """Record a change of state; the same state with a new reason only updates the reason."""
        with self._lock:
            if state == self._stats.state:
                self._stats = replace(self._stats, reason=reason)
                return
            now = self._wall_clock()
            number = self._stats.state_changes + 1
            self._stats = replace(self._stats, state=state, reason=reason, state_since=now, state_changes=number)
            self._changes.append(StateChange(number=number, state=state, reason=reason, at=now))

    def changes_since(self, number: int) -> tuple[StateChange, ...]:
        """State changes after change ``number`` (0 = all still kept), oldest first."""
        with self._lock:
            if number >= self._stats.state_changes:
                return ()  # the common case, on every frame
            return tuple(change for change in self._changes if change.number > number)

    def error(self, message: str) -> None:
        with self._lock:
            self._stats = replace(self._stats, last_error=message)

    def decode_error(self, message: str) -> None:
        with self._lock:
            self._stats = replace(self._stats, decode_errors=self._stats.decode_errors + 1, last_error=message)

    def decoded(self, *, corrupt: bool) -> None:
        with self._lock:
            self._stats = replace(
                self._stats,
                frames_decoded=self._stats.frames_decoded + 1,
                corrupt_frames=self._stats.corrupt_frames + int(corrupt),
            )

    def rate_limited(self, decode_seconds: float) -> None:
        """Count a frame skipped by ``max_fps``, with the decode time spent since the last count."""
        with self._lock:
            self._stats = replace(
                self._stats,
                frames_rate_limited=self._stats.frames_rate_limited + 1,
                decode_seconds=self._stats.decode_seconds + decode_seconds,
            )

    def delivered(
        self,
        timestamp_source: TimestampSource,
        clock_offset_s: float | None,
        *,
        decode_seconds: float = 0.0,
        convert_seconds: float = 0.0,
    ) -> int:
        """Count a handed-over frame, how it was timed and what it cost; returns its 0-based sequence number."""
        with self._lock:
            sequence = self._stats.frames_delivered
            self._stats = replace(
                self._stats,
                frames_delivered=sequence + 1,
                decode_seconds=self._stats.decode_seconds + decode_seconds,
                convert_seconds=self._stats.convert_seconds + convert_seconds,
                last_frame_at=self._wall_clock(),
                timestamp_source=timestamp_source,
                clock_offset_s=clock_offset_s if clock_offset_s is not None else self._stats.clock_offset_s,
            )
            return sequence

    def fell_behind(self) -> None:
        with self._lock:
            self._stats = replace(self._stats, fell_behind=self._stats.fell_behind + 1)

    def skipped_behind(self) -> None:
        with self._lock:
            self._stats = replace(self._stats, frames_skipped_behind=self._stats.frames_skipped_behind + 1)

    def reconnecting(self) -> None:
        with self._lock:
            self._stats = replace(self._stats, reconnects=self._stats.reconnects + 1)

    def stalled(self) -> None:
        with self._lock:
            self._stats = replace(self._stats, stalls=self._stats.stalls + 1)

    def connection(self, *, decoder: DecoderKind, decoder_reason: str, codec: str) -> None:
        with self._lock:
            self._stats = replace(self._stats, decoder=decoder, decoder_reason=decoder_reason, codec=codec)


class StoppableSource:
    """What every reader offers other threads: stop it, ask whether it is stopping, read its state.

    A reader sets ``_stop`` and ``_status`` in its ``__init__``; ``stop()`` only sets the event: each reader's
    own loop decides how fast it ends (its docstring says).
    """

    _stop: threading.Event
    _status: SourceStatus

    def stop(self) -> None:
        """Ask ``frames()`` to end."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stats(self) -> ReaderStats:
        return self._status.snapshot()

    def state_changes(self, since: int = 0) -> tuple[StateChange, ...]:
        """State changes numbered after ``since`` (see ``StateChange.number``), oldest first."""
        return self._status.changes_since(since)
