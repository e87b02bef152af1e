"""Frame timestamps from the stream: PTS mapped to wall-clock time.

What a timestamp means depends on where it could be anchored (``ReaderStats.timestamp_source``):

- ``file``: ``start_time`` (default: when the reader was created) plus the frame's PTS
  offset from the first frame; a looping file keeps counting forward, so time never repeats.
- ``arrival`` (live sources until a sender report, or ``timestamps: arrival``): OUR wall
  clock. Each video packet is stamped when the demuxer hands it over; a frame's packet
  arrival minus its PTS offset is a latest-possible time for offset 0, and the earliest such
  value of the connection (``ArrivalClock``) is the origin; a frame's time is that origin
  plus its PTS offset. Spacing between frames is the camera's own (its RTP clock), so network
  and scheduling jitter do not move timestamps, and neither do the decoder's delay (frame
  threads hold a few frames) nor the burst of packets FFmpeg buffered while probing the
  stream at open (0.5 s measured against the GStreamer server: anchoring on the first
  decoded frame was that late). What remains is the camera-to-demuxer delay of the fastest
  packet (encoding and network, tens of milliseconds on a LAN), and the RTP clock's drift
  from ours (its crystal's error, tens of ppm: seconds a day) until the next reconnect.
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

Timestamps never jump within a connection: the first frame fixes an anchor, and
``ClockSteering`` slews from it towards the better estimate (an earlier arrival origin, the
camera's clock) by at most ``SLEW_FRACTION`` of each frame's PTS step (0.1 s of offset is
absorbed in 1 s of stream), so the tracker never sees a frame gap change by more than 10 %;
later reports (the camera correcting its RTP clock's drift) are followed the same way. A new
connection starts a new anchor.

Only a single video stream is read (RTSP ``allowed_media_types=video``): with several,
FFmpeg re-bases PTS on the first report mid-stream, which would make this mapping jump.
Timestamps never go backwards: one that would (a PTS jump back, a reconnect to a camera
whose clock is behind) is placed one microsecond after the previous frame.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from edge_agent.sources.status import TimestampSource

_ONE_TICK = dt.timedelta(microseconds=1)

SLEW_FRACTION = 0.1
"""Most a timestamp correction may change per second of stream time (see the module docstring)."""
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

    def anchor_arrival(self, arrival: dt.datetime) -> None:
        """Live: the first frame of this connection (offset 0) arrived at ``arrival``."""
        self.origin = arrival

    def at(self, offset_s: float) -> dt.datetime:
        """``origin + offset_s``, as it is (not yet made monotonic)."""
        return self.origin + dt.timedelta(seconds=offset_s)

    def monotonic(self, stamp: dt.datetime) -> dt.datetime:
        """``stamp``, or one microsecond after the previous timestamp when it would go back."""
        if self.last_timestamp is not None and stamp <= self.last_timestamp:
            stamp = self.last_timestamp + _ONE_TICK
        self.last_timestamp = stamp
        return stamp


class ArrivalClock:
    """Our earliest-arrival estimate of when offset 0 of this connection was captured."""

    def __init__(self) -> None:
        self.origin: dt.datetime | None = None

    def observe(self, arrival: dt.datetime, offset_s: float) -> dt.datetime:
        """Take a frame whose packet arrived at ``arrival``; returns the current origin."""
        candidate = arrival - dt.timedelta(seconds=offset_s)
        if self.origin is None or candidate < self.origin:
            self.origin = candidate
        return self.origin


MAX_PACKETS_IN_DECODER = 256
"""Packet arrival times kept until their frame leaves the decoder (frame threads hold a few)."""


class ConnectionClocks:
    """What one connection tells about time: its packets' arrivals, their earliest origin, the camera's clock."""

    def __init__(self) -> None:
        self.sender = SenderClock()
        self.arrival = ArrivalClock()
        self._packet_arrivals: dict[int, dt.datetime] = {}

    def packet(self, pts: int | None, wallclock_us: int | None, arrived: dt.datetime) -> None:
        """A video packet left the demuxer at ``arrived`` (with the camera's reference time, if any)."""
        self.sender.observe(pts, wallclock_us)
        if pts is not None:
            self._packet_arrivals[pts] = arrived
            if len(self._packet_arrivals) > MAX_PACKETS_IN_DECODER:
                del self._packet_arrivals[next(iter(self._packet_arrivals))]  # dicts keep insertion order

    def frame_arrival(self, pts: int | None, default: dt.datetime) -> dt.datetime:
        """When the packet of the frame with ``pts`` arrived (``default`` when unknown)."""
        return default if pts is None else self._packet_arrivals.pop(pts, default)


class ClockSteering:
    """Steers one connection's timestamps from their anchor towards the best clock, without jumps."""

    def __init__(self, max_clock_offset_s: float) -> None:
        self._max_offset_s = max_clock_offset_s
        self.correction_s = 0.0
        """Seconds added to the anchored time; moves towards the target clock."""
        self._last_offset_s: float | None = None

    def new_connection(self) -> None:
        self.correction_s = 0.0
        self._last_offset_s = None

    def steer(
        self, anchored: dt.datetime, offset_s: float, arrival: dt.datetime, camera_time: dt.datetime | None
    ) -> tuple[dt.datetime, TimestampSource, float | None]:
        """The frame's time, the clock it is steered to, and the camera clock minus our arrival estimate.

        ``anchored``: anchor + PTS offset; ``arrival``: the arrival origin + PTS offset;
        ``camera_time``: the frame's capture time by the camera's clock, when a report is known.
        """
        elapsed_s = 0.0 if self._last_offset_s is None else max(0.0, offset_s - self._last_offset_s)
        self._last_offset_s = offset_s
        target = arrival
        source: TimestampSource = "arrival"
        clock_offset_s: float | None = None
        if camera_time is not None:
            clock_offset_s = (camera_time - arrival).total_seconds()
            if abs(clock_offset_s) <= self._max_offset_s:
                target, source = camera_time, "sender_report"
        step_s = SLEW_FRACTION * elapsed_s
        wanted_s = (target - anchored).total_seconds() - self.correction_s
        self.correction_s += min(step_s, max(-step_s, wanted_s))
        return anchored + dt.timedelta(seconds=self.correction_s), source, clock_offset_s
