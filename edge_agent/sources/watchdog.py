"""Stall watchdog: a connection that stays open but stops giving frames is torn down, not waited on.

Two things stop frames while the socket stays open, and each has its own guard:

- no data at all (a frozen camera, a server stopped with SIGSTOP): FFmpeg's read blocks.
  Measured against the real GStreamer RTSP server: PyAV's ``timeout=(open, read)``
  (an FFmpeg interrupt callback, checked about every 100 ms inside the blocked
  socket read) and the RTSP demuxer's own ``timeout`` option (socket I/O timeout,
  in microseconds) both unblock it, over TCP and UDP, after about twice the set
  time: the first expiry makes the RTP depacketiser hand over the access unit it
  was holding, the second ends the read (``ExitError``, or ``TimeoutError`` for the
  socket option). The reader uses PyAV's timeout, set to half of ``read_timeout_s``
  for RTSP so the stall is declared after ``read_timeout_s``: it also bounds the open
  (DESCRIBE/SETUP/PLAY and stream probing), works for every protocol, and cannot be
  mistaken for seconds where FFmpeg wants microseconds. Measured: a SIGSTOPped server
  with ``read_timeout_s: 2`` was declared stalled 2.0-2.1 s after SIGSTOP (TCP and UDP). Nothing else interrupts a
  blocked read: PyAV offers no external interrupt and closing the container from
  another thread is unsafe.
- data without frames (packets that do not decode, audio or RTCP only): reads
  return, so ``StallWatchdog`` is checked after every packet, of any stream.
"""

from __future__ import annotations


class StreamStalledError(Exception):
    """No frame for the stall timeout although the connection is open; the message says what was seen."""


class StallWatchdog:
    """Raises ``StreamStalledError`` from ``check`` once ``timeout_s`` passed since the last progress."""

    def __init__(self, timeout_s: float, now: float) -> None:
        self._timeout_s = timeout_s
        self._last_progress = now
        self._packets_since = 0

    def progress(self, now: float) -> None:
        """A frame (or, in keyframe mode, an undamaged video packet) arrived."""
        self._last_progress = now
        self._packets_since = 0

    def packet(self) -> None:
        """Data arrived that did not count as progress."""
        self._packets_since += 1

    def check(self, now: float) -> None:
        silent_s = now - self._last_progress
        if silent_s >= self._timeout_s:
            raise StreamStalledError(
                f"no frame for {silent_s:.1f} s while the connection stayed open "
                f"({self._packets_since} packets arrived meanwhile)"
            )
