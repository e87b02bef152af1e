"""Camera and file reader on PyAV (FFmpeg): RTSP (TCP or UDP), HTTP, local files; H.264/H.265.

``PyAVReader.frames()`` yields immutable ``Frame`` values (BGR) until the source
ends for good or ``stop()`` is called. It never raises for a camera that is down:
it reconnects with exponential backoff, full jitter and a ceiling, and counts.

Timestamps come from the stream, not from when Python got around to a frame:

- live sources (rtsp, http, ...): the wall-clock time of the first frame after
  each (re)connect, plus ``(pts - first_pts) * time_base``;
- files: ``start_time`` (default: the moment the reader was created) plus the
  same PTS offset; a looping file keeps counting forward, so time never repeats.

Timestamps never go backwards: a PTS jump back is clamped just after the previous frame.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.container
import av.error
import av.video
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from edge_agent.delivery.backoff import Backoff, BackoffConfig
from edge_agent.perception.types import Frame

log = logging.getLogger(__name__)

ReaderState = Literal["starting", "connecting", "live", "down", "stopped"]
"""A subset of the contract's ``SourceState``, so health events can carry it as is."""

LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")

MAX_CONSECUTIVE_DEMUX_ERRORS = 50
"""Corrupt packets in a row before the connection is treated as broken and reopened."""

_ONE_TICK = dt.timedelta(microseconds=1)


class ReaderConfig(BaseModel):
    """How to read one camera or file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        min_length=1,
        description="rtsp://, rtsps://, http(s):// or a local file path (file:// allowed).",
    )
    rtsp_transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="RTSP transport: tcp survives lossy links and NAT; udp has less latency."
    )
    realtime: bool = Field(
        default=True,
        description="Files only: pace frames at their own rate so a file behaves like a camera. "
        "Turn off for offline analysis (as fast as decoding allows).",
    )
    loop: bool = Field(default=False, description="Files only: start again from the beginning at the end.")
    on_end: Literal["reconnect", "stop"] = Field(
        default="reconnect",
        description="When the stream ends (EOF, server closed): reopen it after a backoff, or stop the source. "
        "Failures (cannot open, read timeout) always reconnect unless max_reconnects is reached.",
    )
    open_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Seconds to wait for the source to open.")
    read_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Seconds without data before the connection counts as lost."
    )
    reconnect: BackoffConfig = Field(
        default_factory=lambda: BackoffConfig(base_s=1.0, ceiling_s=30.0),
        description="Backoff between reconnect attempts.",
    )
    max_reconnects: int | None = Field(
        default=None, ge=0, description="Give up after this many reconnects in a row without a frame; null = never."
    )
    start_time: AwareDatetime | None = Field(
        default=None, description="Files only: wall-clock time of the first frame; null = when reading started."
    )

    @property
    def is_live(self) -> bool:
        return self.url.lower().startswith(LIVE_SCHEMES)


@dataclass(frozen=True, slots=True)
class ReaderStats:
    state: ReaderState
    frames_decoded: int
    decode_errors: int
    """Packets or frames FFmpeg could not decode; skipped, never fatal."""
    reconnects: int
    last_error: str


class SourceGaveUpError(RuntimeError):
    """The source failed ``max_reconnects`` times in a row."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Outcome:
    """How one connection ended."""

    got_frame: bool = False
    ended_cleanly: bool = False


class _Timeline:
    """Maps PTS of one opened stream onto wall-clock time, across loops and reconnects."""

    def __init__(self, origin: dt.datetime) -> None:
        self.origin = origin
        self.first_pts: int | None = None
        self.last_offset_s = 0.0
        self.loop_base_s = 0.0
        """Files: where the current pass over the file starts, seconds after ``origin``."""
        self.last_timestamp: dt.datetime | None = None

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

    def timestamp(self, offset_s: float) -> dt.datetime:
        stamp = self.origin + dt.timedelta(seconds=offset_s)
        if self.last_timestamp is not None and stamp <= self.last_timestamp:
            stamp = self.last_timestamp + _ONE_TICK
        self.last_timestamp = stamp
        return stamp


class PyAVReader:
    """Reads one source; call ``frames()`` from one thread, ``stop()``/``stats()`` from any."""

    def __init__(
        self,
        source_id: str,
        config: ReaderConfig,
        *,
        wall_clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.source_id = source_id
        self.config = config
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._backoff = Backoff(config.reconnect, rng or random.Random())  # noqa: S311 - jitter, not crypto
        self._state: ReaderState = "starting"
        self._frames_decoded = 0
        self._decode_errors = 0
        self._reconnects = 0
        self._last_error = ""
        self._file_origin = config.start_time or wall_clock()

    def stop(self) -> None:
        """Ask ``frames()`` to end; it returns within about ``read_timeout_s``."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stats(self) -> ReaderStats:
        return ReaderStats(
            state=self._state,
            frames_decoded=self._frames_decoded,
            decode_errors=self._decode_errors,
            reconnects=self._reconnects,
            last_error=self._last_error,
        )

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (``on_end: stop``), gives up, or ``stop()`` is called.

        Raises ``SourceGaveUpError`` when ``max_reconnects`` failures happen in a row.
        """
        timeline = _Timeline(self._file_origin)
        pace_anchor = self._monotonic()
        try:
            while not self._stop.is_set():
                self._state = "connecting"
                outcome = _Outcome()
                try:
                    yield from self._read_connection(timeline, pace_anchor, outcome)
                except (av.error.FFmpegError, OSError) as error:
                    self._last_error = f"{type(error).__name__}: {error}"
                    log.warning("source %s: %s", self.source_id, self._last_error)
                if self._stop.is_set():
                    return
                if outcome.ended_cleanly:
                    if not self.config.is_live and self.config.loop and outcome.got_frame:
                        continue
                    if self.config.on_end == "stop":
                        log.info("source %s ended (on_end: stop)", self.source_id)
                        return
                    self._last_error = "end of stream"
                self._state = "down"
                self._wait_before_reconnect()
        finally:
            self._state = "stopped"

    def _read_connection(self, timeline: _Timeline, pace_anchor: float, outcome: _Outcome) -> Iterator[Frame]:
        """Frames of one opening of the source, until EOF (``outcome.ended_cleanly``) or an error."""
        with self._open() as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frame_interval_s = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
            timeline.first_pts = None
            for image, pts, time_base in self._decode(container, stream):
                offset = timeline.offset_s(pts, time_base, frame_interval_s)
                if self.config.is_live and not outcome.got_frame:
                    # Anchor on the wall clock when the first frame actually arrived.
                    timeline.origin = self._wall_clock()
                outcome.got_frame = True
                self._state = "live"
                self._backoff.reset()
                source_offset = offset if self.config.is_live else timeline.loop_base_s + offset
                if not self.config.is_live and self.config.realtime:
                    self._pace(pace_anchor + source_offset)
                if self._stop.is_set():
                    return
                frame = Frame(
                    image=image,
                    source_id=self.source_id,
                    sequence=self._frames_decoded,
                    timestamp=timeline.timestamp(source_offset),
                )
                self._frames_decoded += 1
                yield frame
            outcome.ended_cleanly = not self._stop.is_set()
            if not self.config.is_live:
                # The next pass over the file continues the timeline one frame after this one's end.
                timeline.loop_base_s += timeline.last_offset_s + frame_interval_s

    def _open(self) -> av.container.InputContainer:
        options: dict[str, str] = {}
        url = self.config.url
        if url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = self.config.rtsp_transport
        if url.startswith("file://"):
            url = url.removeprefix("file://")
        if not self.config.is_live and not Path(url).is_file():
            raise FileNotFoundError(f"video file not found: {url}")
        container: Any = av.open(
            url, mode="r", options=options, timeout=(self.config.open_timeout_s, self.config.read_timeout_s)
        )
        if not container.streams.video:
            container.close()
            raise av.error.InvalidDataError(0, f"no video stream in {url}")
        result: av.container.InputContainer = container
        return result

    def _decode(
        self, container: av.container.InputContainer, stream: av.video.VideoStream
    ) -> Iterator[tuple[Any, int | None, Fraction | None]]:
        """Decoded BGR images with their PTS; corrupt packets are skipped and counted."""
        consecutive_errors = 0
        packets = container.demux(stream)
        while not self._stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.InvalidDataError as error:
                # The demuxer gave up on this packet; a fresh iterator resumes at the next one.
                consecutive_errors += 1
                self._decode_errors += 1
                self._last_error = f"demux: {error}"
                if consecutive_errors > MAX_CONSECUTIVE_DEMUX_ERRORS:
                    raise
                packets = container.demux(stream)
                continue
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError as error:
                self._decode_errors += 1
                self._last_error = f"decode: {error}"
                continue
            consecutive_errors = 0
            for frame in decoded:
                if not isinstance(frame, av.VideoFrame):
                    continue
                yield frame.to_ndarray(format="bgr24"), frame.pts, frame.time_base

    def _pace(self, due_monotonic: float) -> None:
        delay = due_monotonic - self._monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _wait_before_reconnect(self) -> None:
        limit = self.config.max_reconnects
        if limit is not None and self._backoff.attempt >= limit:
            raise SourceGaveUpError(
                f"source {self.source_id}: gave up after {limit} reconnects: {self._last_error or 'no frames'}"
            )
        delay = self._backoff.next_delay()
        self._reconnects += 1
        log.info("source %s: reconnecting in %.1f s (%s)", self.source_id, delay, self._last_error)
        self._stop.wait(delay)
