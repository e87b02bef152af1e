"""Connect-grab-disconnect reader (``sampling: grab``): one keyframe per ``grab_every_s``, no connection between.

A site camera analysed once a minute costs a persistent connection about 25 CPU-s per camera-hour
just to receive and demux its stream (1080p, 4 Mbit/s), before anything is decoded; opening the
camera, waiting for its first keyframe, decoding only that one and closing costs about 60 ms, 3.6
CPU-s per camera-hour: about 1000 cameras per core instead of 120 (``benchmarks/site_sampling.md``).

Each grab: open (the persistent reader's options and PyAV open/read timeouts) -> demux the video,
non-key packets read and dropped (never decoded) -> decode the first keyframe on the CPU, single
threaded (NVDEC set-up would cost more than the one picture) -> ``stall_timeout_s`` bounds the wait for
a clean picture -> close -> BGR ``Frame`` stamped with the keyframe's arrival (or the camera's
clock when the packet carries it, RTCP PRFT, and it agrees with ours).

Grabs follow a fixed grid (``GrabSchedule``): a slow or failed grab never makes the next ones bunch
up. A failed grab is retried on the first slot after the reconnect backoff (``ReconnectPolicy``, so
``max_reconnects`` gives up as the persistent reader does). The state is the persistent reader's:
live while grabs succeed (between grabs too), down (cannot open, closed), stalled (open but no
keyframe), connecting (opening again after a problem); ``stats()`` is the same ``ReaderStats``.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import av
import av.container
import av.error
import av.packet
import numpy as np
import numpy.typing as npt

from edge_agent.perception.types import Frame
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.pyav_reader import (
    SourceGaveUpError,
    open_options,
    open_timeouts,
    producer_wallclock_us,
    utc_now,
)
from edge_agent.sources.reconnect import ReconnectLimitError, ReconnectPolicy
from edge_agent.sources.sampler import GrabSchedule
from edge_agent.sources.status import (
    ReaderState,
    SourceStatus,
    StoppableSource,
    TimestampSource,
)
from edge_agent.sources.urls import describe_error, redact_url
from edge_agent.sources.watchdog import StreamStalledError

__all__ = ["GRAB_DECODER_REASON", "GrabCounts", "GrabReader", "Opener", "open_container"]

log = logging.getLogger(__name__)

GRAB_DECODER_REASON = "grab: one keyframe per connection decodes on the CPU (NVDEC set-up costs more than it saves)"
MAX_DEMUX_ERRORS_PER_GRAB = 50
"""Packets the demuxer refuses in one grab before the grab counts as failed (a stream of garbage)."""

Opener = Callable[[str, dict[str, str], tuple[float, float]], av.container.InputContainer]
"""Opens ``url`` with FFmpeg ``options`` and PyAV ``(open, read)`` timeouts; tests swap it for a file."""


def open_container(url: str, options: dict[str, str], timeouts: tuple[float, float]) -> av.container.InputContainer:
    container: Any = av.open(url, mode="r", options=options, timeout=timeouts)
    if not container.streams.video:
        container.close()
        raise av.error.InvalidDataError(0, f"no video stream in {redact_url(url)}")
    return cast(av.container.InputContainer, container)


@dataclass(frozen=True, slots=True)
class GrabCounts:
    """What the grabs did; counts since the reader was created."""

    attempts: int
    succeeded: int
    failed: int
    slots_missed: int
    """Grid slots that passed without a grab (a grab overran, a slow consumer, backoff after failures)."""
    packets_not_decoded: int
    """Packets read and dropped while waiting for a keyframe."""


@dataclass(frozen=True, slots=True)
class _Picture:
    image: npt.NDArray[np.uint8]
    arrived: dt.datetime
    camera_us: int | None
    decode_seconds: float
    convert_seconds: float


class _StoppedError(Exception):
    """``stop()`` was called during a grab."""


class GrabReader(StoppableSource):
    """Reads one live source by grabs; call ``frames()`` from one thread, ``stop()``/``stats()`` from any.

    ``stop()`` ends a wait between grabs at once, and a grab within its open/read timeout."""

    def __init__(
        self,
        source_id: str,
        config: ReaderConfig,
        *,
        wall_clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        opener: Opener = open_container,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        if not config.is_live:
            raise ValueError(f"source {source_id}: grabs need a live source, not {redact_url(config.url)}")
        self.source_id = source_id
        self.config = config
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._opener = opener
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        """Sleeps between grabs; returns early once ``stop()`` is called (tests pass a virtual clock's)."""
        self._status = SourceStatus(wall_clock)
        self._reconnect = ReconnectPolicy(config, rng or random.Random())  # noqa: S311 - jitter, not crypto
        self._schedule = GrabSchedule(config.grab_every_s)
        self._last_logged_problem = ""
        self._last_timestamp: dt.datetime | None = None
        self._attempts = 0
        self._succeeded = 0
        self._packets_not_decoded = 0

    def grab_counts(self) -> GrabCounts:
        return GrabCounts(
            attempts=self._attempts,
            succeeded=self._succeeded,
            failed=self._attempts - self._succeeded,
            slots_missed=self._schedule.missed,
            packets_not_decoded=self._packets_not_decoded,
        )

    def frames(self) -> Generator[Frame, None, None]:
        """One frame per successful grab until ``stop()``; raises ``SourceGaveUpError`` past ``max_reconnects``."""
        end_reason = ""
        try:
            due = self._schedule.start(self._monotonic())
            while not self._stop.is_set():
                self._sleep_until(due)
                if self._stop.is_set():
                    return
                frame = self._grab()
                if frame is not None:
                    yield frame
                    due = self._schedule.next(self._monotonic())
                elif not self._stop.is_set():
                    due = self._schedule.next(self._monotonic() + self._retry_delay())
        finally:
            end_reason = "stop requested" if self._stop.is_set() else self._status.snapshot().reason
            self._status.set_state("stopped", end_reason)

    # -- one grab -------------------------------------------------------------------------------------

    def _grab(self) -> Frame | None:
        """One connection: the frame it gave, or None with the failure recorded as the reader's state."""
        previous = self._status.snapshot()
        if previous.state != "live":  # a camera whose grabs succeed stays live between and during them
            reason = "opening" if previous.state == "starting" else f"reconnecting after: {previous.reason}"
            self._status.set_state("connecting", reason)
        self._attempts += 1
        opened = False
        try:
            container = self._opener(self.config.url, open_options(self.config), open_timeouts(self.config))
            opened = True
            with container:
                picture = self._first_keyframe(container)
        except _StoppedError:
            return None
        except StreamStalledError as stall:
            self._status.stalled()
            self._problem("stalled", str(stall))
            return None
        except av.error.ExitError:
            if opened:
                self._status.stalled()
                self._problem("stalled", f"no data for {self.config.read_timeout_s:g} s while waiting for a keyframe")
            else:
                self._problem("down", f"no answer within open_timeout_s ({self.config.open_timeout_s:g} s)")
            return None
        except (av.error.FFmpegError, OSError) as error:
            self._problem("down", describe_error(error, self.config.url))
            return None
        return self._deliver(picture)

    def _first_keyframe(self, container: av.container.InputContainer) -> _Picture:
        """The first clean keyframe's picture, within ``stall_timeout_s`` of the open."""
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one picture per packet: frame threads would hold the lone keyframe back
        codec = stream.codec_context
        codec.skip_frame = "NONKEY"
        self._status.connection(decoder="cpu", decoder_reason=GRAB_DECODER_REASON, codec=codec.name)
        deadline = self._monotonic() + self.config.stall_timeout_s
        for packet in self._video_packets(container, stream):
            if self._monotonic() >= deadline:
                raise StreamStalledError(
                    f"no clean keyframe within stall_timeout_s ({self.config.stall_timeout_s:g} s) of the open"
                )
            if not packet.is_keyframe or packet.size == 0:
                self._packets_not_decoded += packet.size > 0  # an empty one is the end-of-stream flush
                continue
            arrived = self._wall_clock()
            decoding = time.perf_counter()
            try:
                pictures = packet.decode()
            except av.error.InvalidDataError as error:
                self._status.decode_error(f"decode: {describe_error(error, self.config.url)}")
                continue
            decode_seconds = time.perf_counter() - decoding
            for picture in pictures:
                corrupt = bool(picture.is_corrupt)
                self._status.decoded(corrupt=corrupt)
                if corrupt and self.config.corrupt_frames == "drop":
                    continue
                converting = time.perf_counter()
                image = cast(npt.NDArray[np.uint8], picture.to_ndarray(format="bgr24"))
                convert_seconds = time.perf_counter() - converting
                return _Picture(image, arrived, producer_wallclock_us(packet), decode_seconds, convert_seconds)
        raise av.error.EOFError(0, "the stream ended before a keyframe")

    def _video_packets(self, container: av.container.InputContainer, stream: Any) -> Iterator[av.packet.Packet[Any]]:
        """The stream's packets; a packet the demuxer refuses is counted and skipped, too many fail the grab."""
        errors = 0
        packets = container.demux(stream)
        while True:
            if self._stop.is_set():
                raise _StoppedError
            try:
                yield next(packets)
            except StopIteration:
                return
            except av.error.InvalidDataError as error:
                errors += 1
                self._status.decode_error(f"demux: {describe_error(error, self.config.url)}")
                if errors > MAX_DEMUX_ERRORS_PER_GRAB:
                    raise
                packets = container.demux(stream)  # a fresh iterator resumes at the next packet

    def _deliver(self, picture: _Picture) -> Frame:
        timestamp, source, clock_offset_s = self._timestamp(picture)
        sequence = self._status.delivered(
            source,
            clock_offset_s,
            decode_seconds=picture.decode_seconds,
            convert_seconds=picture.convert_seconds,
        )
        if self._status.state != "live":
            self._status.set_state("live", "")
            self._last_logged_problem = ""
            height, width = picture.image.shape[:2]
            log.info("source %s live: grabbing a %dx%d keyframe every %g s", self.source_id, width, height,
                     self.config.grab_every_s)  # fmt: skip
        self._succeeded += 1
        self._reconnect.frame_arrived(self._monotonic())
        return Frame(image=picture.image, source_id=self.source_id, sequence=sequence, timestamp=timestamp)

    def _timestamp(self, picture: _Picture) -> tuple[dt.datetime, TimestampSource, float | None]:
        """Arrival of the keyframe, or the camera's time of it when the packet carries one that agrees with ours.

        Each grab is a new RTP session whose first RTCP sender report usually comes after its first keyframe,
        so waiting for one would cost seconds of connection per grab: only the packet's own PRFT is used.
        Stamps never go back (our clock stepping back, or a camera clock that jitters).
        """
        stamp, clock_offset_s = picture.arrived, None
        source: TimestampSource = "arrival"
        if self.config.timestamps == "sender_report" and picture.camera_us is not None:
            camera_time = dt.datetime.fromtimestamp(picture.camera_us / 1e6, dt.UTC)
            clock_offset_s = (camera_time - picture.arrived).total_seconds()
            if abs(clock_offset_s) <= self.config.max_clock_offset_s:
                stamp, source = camera_time, "sender_report"
        if self._last_timestamp is not None and stamp <= self._last_timestamp:
            stamp = self._last_timestamp + dt.timedelta(microseconds=1)
        self._last_timestamp = stamp
        return stamp, source, clock_offset_s

    # -- waiting and failures ---------------------------------------------------------------------------

    def _sleep_until(self, due: float) -> None:
        delay = due - self._monotonic()
        if delay > 0:
            self._wait(delay)

    def _retry_delay(self) -> float:
        """Backoff before the next attempt (the grab grid then waits for the first slot after it)."""
        try:
            delay = self._reconnect.next_delay(self._monotonic())
        except ReconnectLimitError as error:
            raise SourceGaveUpError(
                f"source {self.source_id}: {error}: {self._status.snapshot().last_error or 'no frames'}"
            ) from None
        self._status.reconnecting()
        return delay

    def _problem(self, state: ReaderState, reason: str) -> None:
        self._status.error(reason)
        self._status.set_state(state, reason)
        if reason != self._last_logged_problem:  # a dead camera retried every minute must not flood the log
            log.warning("source %s %s: %s", self.source_id, state, reason)
            self._last_logged_problem = reason
        else:
            log.debug("source %s %s: %s", self.source_id, state, reason)
