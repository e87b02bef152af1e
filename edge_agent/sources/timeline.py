"""Frame timestamps from the stream: PTS mapped to wall-clock time.

What a timestamp means depends on where it could be anchored (``ReaderStats.timestamp_source``):

- ``file``: ``start_time`` (default: when the reader was created) plus the frame's PTS
  offset from the first frame; a looping file keeps counting forward, so time never repeats.
- ``arrival`` (live sources until a sender report, or ``timestamps: arrival``): OUR wall
  clock when the first frame of the connection was decoded, plus the PTS offset from that
  frame. Spacing between frames is the camera's own (its RTP clock), so jitter in the
  network or in our scheduling does not move timestamps; the absolute time is late by the
  camera-to-decoder delay of that first frame (encode, network, jitter, decode: typically
  0.1-0.5 s on a LAN), and the RTP clock drifts from ours by its crystal's error (tens of
  ppm: seconds a day) until the next reconnect re-anchors it.
- ``sender_report``: the CAMERA's wall clock. An RTSP camera sends RTCP sender reports
  (every few seconds) pairing an RTP timestamp with its NTP time. FFmpeg 8's RTP demuxer
  attaches to every packet after a report a producer reference time (``AV_PKT_DATA_PRFT``
  side data: the packet's capture time by the camera's clock, from the LATEST report), and
  its RTSP demuxer turns the FIRST report into ``AVFormatContext.start_time_realtime``
  (microseconds since the Unix epoch of PTS 0), which PyAV exposes as
  ``container.start_time_realtime``. Both are None for the first seconds of a connection,
  until a report arrives. From then on a frame's time is the reference time of the latest
  packet that carried one plus the frame's PTS distance from that packet (PRFT, so the
  camera's clock keeps correcting its RTP clock's drift), or ``start_time_realtime + pts *
  time_base`` where the FFmpeg build attaches no PRFT. That is the capture time by the
  camera's clock, free of network delay, provided the camera keeps its clock with NTP: it is
  adopted only when it agrees with the arrival time within ``max_clock_offset_s`` (a camera
  whose clock is off keeps arrival times, and the offset is reported in the stats).

Only a single video stream is read (RTSP ``allowed_media_types=video``): with several,
FFmpeg re-bases PTS on the first report mid-stream, which would make this mapping jump.
Timestamps never go backwards: one that would (a switch to the camera's clock, a PTS jump
back) is placed one microsecond after the previous frame.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

_ONE_TICK = dt.timedelta(microseconds=1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SenderClock:
    """The camera's clock for one connection, from RTCP sender reports (see the module docstring)."""

    def __init__(self) -> None:
        self._reference: tuple[int, int] | None = None
        """(pts, wall-clock microseconds) of the latest packet that carried a producer reference time."""

    def observe(self, packet_pts: int | None, wallclock_us: int | None) -> None:
        if packet_pts is not None and wallclock_us is not None:
            self._reference = (packet_pts, wallclock_us)

    def time_of(
        self, pts: int | None, time_base: Fraction | None, start_time_realtime_us: int | None
    ) -> dt.datetime | None:
        """Capture time of the frame with ``pts`` by the camera's clock; None while no report is known."""
        if pts is None or time_base is None:
            return None
        if self._reference is not None:
            reference_pts, reference_us = self._reference
            return _EPOCH + dt.timedelta(microseconds=reference_us, seconds=float((pts - reference_pts) * time_base))
        if start_time_realtime_us is not None:
            return _EPOCH + dt.timedelta(microseconds=start_time_realtime_us, seconds=float(pts * time_base))
        return None


class Timeline:
    """Maps the PTS of each opening of a stream onto wall-clock time, across loops and reconnects."""

    def __init__(self, origin: dt.datetime) -> None:
        self.origin = origin
        """Wall-clock time of offset 0: the file's start, or (live) the arrival-anchored first frame."""
        self.first_pts: int | None = None
        self.last_offset_s = 0.0
        self.loop_base_s = 0.0
        """Files: where the current pass over the file starts, seconds after ``origin``."""
        self.last_timestamp: dt.datetime | None = None

    def new_connection(self) -> None:
        self.first_pts = None

    def offset_s(self, pts: int | None, time_base: Fraction | None, frame_interval_s: float) -> float:
        """Seconds since the first frame of this opening of the stream."""
        if self.first_pts is None:
            self.first_pts = pts if pts is not None else 0
            offset = 0.0
        elif pts is None or time_base is None:
            # A frame without PTS: assume a steady rate from the previous frame.
            offset = self.last_offset_s + frame_interval_s
        else:
            offset = float((pts - self.first_pts) * time_base)
        self.last_offset_s = offset
        return offset

    def anchor_arrival(self, now: dt.datetime) -> None:
        """Live: the first frame of this connection (offset 0) arrived ``now``."""
        self.origin = now

    def at(self, offset_s: float) -> dt.datetime:
        """``origin + offset_s``, as it is (not yet made monotonic)."""
        return self.origin + dt.timedelta(seconds=offset_s)

    def monotonic(self, stamp: dt.datetime) -> dt.datetime:
        """``stamp``, or one microsecond after the previous timestamp when it would go back."""
        if self.last_timestamp is not None and stamp <= self.last_timestamp:
            stamp = self.last_timestamp + _ONE_TICK
        self.last_timestamp = stamp
        return stamp
