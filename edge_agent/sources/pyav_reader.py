"""Camera and file reader on PyAV (FFmpeg): RTSP (TCP or UDP), HTTP, local files; H.264/H.265.

``PyAVReader.frames()`` yields immutable ``Frame`` values (BGR) until the source
ends for good or ``stop()`` is called. It never raises for a camera that is down,
stalled or sending garbage: it reconnects (``reconnect``), tears down a stalled
connection (``watchdog``), skips and counts corrupt packets, and falls back from
NVDEC to the CPU (``decoders``), recording state, reason and counters in a
``SourceStatus`` that ``stats()`` and ``state_changes()`` read from any thread.

Per connection: open (with PyAV's open/read timeouts) -> pick the video stream ->
demux every packet (so the watchdog runs even when only non-video data arrives) ->
decode (all frames, or keyframes only) -> drop corrupt frames (``corrupt_frames``) ->
``max_fps`` by PTS (frames not due are never converted to BGR) -> timestamp
(``timeline``) -> BGR ``Frame``.

With ``decode: keyframes`` and ``max_fps`` (a site camera sampled once a minute) the reader is *lean*:
a ``KeyframeGate`` hands the decoder only the packets of a sample that is due (the first keyframe at
or after each due time, and the non-key packets before it, which the decoder drops at once), and the
decoder runs single-threaded so that keyframe's picture comes out of its own packet. Every other
packet is read and dropped (``packets_not_decoded``): 68 -> 29 CPU-s per camera-hour for a 1080p
4 Mbit/s camera (``benchmarks/site_sampling.md``). A camera needing nothing but that sample is
cheaper still read connect-grab-disconnect (``sampling: grab``, ``grab_reader``).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import av
import av.container
import av.error
import av.packet
import av.video
import numpy as np
import numpy.typing as npt

from edge_agent.perception.types import Frame
from edge_agent.sources.catch_up import CatchUp
from edge_agent.sources.config import LIVE_SCHEMES, ReaderConfig
from edge_agent.sources.decoders import (
    DecoderChoice,
    NvdecProbe,
    choose_decoder,
    confirm_for_stream,
    hwaccel_for,
    is_source_failure,
    nvdec_failed,
    probe_nvdec,
)
from edge_agent.sources.rate_limit import JITTER_TOLERANCE, FrameRateLimiter
from edge_agent.sources.reconnect import ReconnectLimitError, ReconnectPolicy
from edge_agent.sources.sampler import KeyframeGate
from edge_agent.sources.status import (
    ReaderState,
    ReaderStats,
    SourceStatus,
    StateChange,
    StoppableSource,
    TimestampSource,
)
from edge_agent.sources.timeline import ClockSteering, ConnectionClocks, Timeline
from edge_agent.sources.urls import describe_error, redact_url
from edge_agent.sources.watchdog import StallWatchdog, StreamStalledError

__all__ = [
    "LIVE_SCHEMES",
    "PyAVReader",
    "ReaderConfig",
    "ReaderState",
    "ReaderStats",
    "SourceGaveUpError",
    "StateChange",
    "open_options",
    "open_timeouts",
    "utc_now",
]

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_DEMUX_ERRORS = 50
"""Corrupt packets in a row before the connection is treated as broken and reopened."""

RTSP_READ_TIMEOUT_SHARE = 0.5
"""For RTSP, PyAV's read timeout is this share of ``read_timeout_s``: FFmpeg's RTSP demuxer needs
two expiries to give up (the first hands over the access unit it holds; see ``watchdog``)."""

DEFAULT_FRAME_INTERVAL_S = 0.04


class SourceGaveUpError(RuntimeError):
    """The source failed ``max_reconnects`` times in a row."""


class _NvdecFailedError(Exception):
    """NVDEC raised while decoding: the reader moves to the CPU decoder."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Outcome:
    """How one connection ended."""

    opened: bool = False
    got_frame: bool = False
    ended_cleanly: bool = False


def open_options(config: ReaderConfig) -> dict[str, str]:
    """FFmpeg options every opening of ``config``'s source uses (the persistent reader's and each grab's)."""
    options: dict[str, str] = {}
    if config.is_rtsp:
        options["rtsp_transport"] = config.rtsp_transport
        # Only video is read: no audio bandwidth, and FFmpeg keeps PTS on the RTP clock (see timeline).
        options["allowed_media_types"] = "video"
    if config.is_live:
        # Stream probing would otherwise wait for 20 frames to estimate the frame rate (2 s at 10 fps,
        # measured) before the first frame; timestamps come from PTS, so that estimate buys nothing.
        options["fpsprobesize"] = "0"
    return options


def open_timeouts(config: ReaderConfig) -> tuple[float, float]:
    """PyAV's (open, read) timeouts for ``config``: see ``RTSP_READ_TIMEOUT_SHARE`` and ``watchdog``."""
    read_share = RTSP_READ_TIMEOUT_SHARE if config.is_rtsp else 1.0
    return config.open_timeout_s, config.read_timeout_s * read_share


def producer_wallclock_us(packet: av.packet.Packet[Any]) -> int | None:
    """The packet's capture time by the camera's clock (RTCP PRFT side data, FFmpeg >= 8), or None."""
    has_sidedata = getattr(packet, "has_sidedata", None)  # PyAV < 18 has no packet side data API
    if has_sidedata is None or not has_sidedata("prft"):
        return None
    data = bytes(packet.get_sidedata("prft"))
    # AVProducerReferenceTime starts with int64_t wallclock (microseconds since the Unix epoch).
    return int.from_bytes(data[:8], sys.byteorder, signed=True) if len(data) >= 8 else None


class PyAVReader(StoppableSource):
    """Reads one source; call ``frames()`` from one thread, ``stop()``/``stats()`` from any.

    ``stop()`` ends a wait to reconnect at once, a read within ``read_timeout_s``, an open within
    ``open_timeout_s`` (FFmpeg's blocking calls end only by timeout)."""

    def __init__(
        self,
        source_id: str,
        config: ReaderConfig,
        *,
        wall_clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        nvdec_probe: NvdecProbe = probe_nvdec,
        lean_keyframes: bool = True,
    ) -> None:
        """``lean_keyframes=False`` decodes every keyframe even with ``max_fps`` (the mode before the gate; the
        site sampling benchmark measures it as the baseline)."""
        self.source_id = source_id
        self.config = config
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._status = SourceStatus(wall_clock)
        self._reconnect = ReconnectPolicy(config, rng or random.Random())  # noqa: S311 - jitter, not crypto
        self._nvdec_probe = nvdec_probe
        self._decoder: DecoderChoice | None = None
        self._file_origin = config.start_time or wall_clock()
        self._steering = ClockSteering(config.max_clock_offset_s)
        self._last_logged_problem = ""
        self._decode_seconds = 0.0
        """Decode time not yet attributed to a frame (a packet may give no picture, or several)."""
        self._catch_up = CatchUp(config.max_decode_lag_s if config.is_live else None)
        lean = lean_keyframes and config.decode == "keyframes" and config.max_fps is not None
        self._gate = KeyframeGate(1.0 / config.max_fps) if lean and config.max_fps else None
        """Lean keyframe sampling (see the module's docstring); None when every keyframe (or frame) is decoded."""
        self._packets_not_decoded = 0
        self._last_gate_time = 0.0

    @property
    def lean(self) -> bool:
        """Only the due keyframes reach the decoder (``decode: keyframes`` with ``max_fps``)."""
        return self._gate is not None

    @property
    def packets_not_decoded(self) -> int:
        """Video packets read and dropped without reaching the decoder (lean mode: no sample was due)."""
        return self._packets_not_decoded

    def frames(self) -> Generator[Frame, None, None]:
        """Yield frames until the source ends (``on_end: stop``), gives up, or ``stop()`` is called.

        Raises ``SourceGaveUpError`` when ``max_reconnects`` failures happen in a row.
        """
        timeline = Timeline(self._file_origin)
        pace_anchor = self._monotonic()
        end_reason = ""
        try:
            while not self._stop.is_set():
                previous = self._status.snapshot()
                if previous.state != "live":  # a looping file starting its next pass stays live
                    reason = "opening" if previous.state == "starting" else f"reconnecting after: {previous.reason}"
                    self._set_state("connecting", reason)
                outcome = _Outcome()
                yield from self._connection(timeline, pace_anchor, outcome)
                if self._stop.is_set():
                    return
                if outcome.ended_cleanly:
                    if not self.config.is_live and self.config.loop and outcome.got_frame:
                        continue
                    if self.config.on_end == "stop":
                        log.info("source %s ended (on_end: stop)", self.source_id)
                        end_reason = "end of stream (on_end: stop)"
                        return
                    self._down("end of stream (the source closed it)")
                self._wait_before_reconnect()
        finally:
            if self._stop.is_set():
                end_reason = "stop requested"
            self._set_state("stopped", end_reason or self._status.snapshot().reason)

    # -- one connection ----------------------------------------------------------------------------

    def _connection(self, timeline: Timeline, pace_anchor: float, outcome: _Outcome) -> Iterator[Frame]:
        """Frames of one connection; how it failed is recorded as the reader's state, never raised."""
        try:
            yield from self._read_connection(timeline, pace_anchor, outcome)
        except StreamStalledError as stall:
            self._stalled(str(stall))
        except av.error.ExitError:
            # PyAV's timeout interrupted a blocked open or read.
            if outcome.opened:
                self._stalled(f"no data for {self.config.read_timeout_s:g} s while the connection stayed open")
            else:
                self._down(f"no answer within open_timeout_s ({self.config.open_timeout_s:g} s)")
        except _NvdecFailedError as failure:
            self._decoder = nvdec_failed(failure.__cause__ or failure, "decoding")
            self._down(self._decoder.reason)
        except (av.error.FFmpegError, OSError) as error:
            self._down(describe_error(error, self.config.url))

    def _read_connection(self, timeline: Timeline, pace_anchor: float, outcome: _Outcome) -> Iterator[Frame]:
        """Frames of one opening of the source, until EOF (``outcome.ended_cleanly``) or an error."""
        container, choice = self._open_with_fallback(self._decoder_for_connection())
        with container:
            outcome.opened = True
            stream = container.streams.video[0]
            codec = stream.codec_context
            choice = confirm_for_stream(choice, codec.name, codec.is_hwaccel)
            if choice.kind == "cpu":
                # Frame and slice threads; hwaccel decodes on the GPU instead. Lean sampling decodes one
                # keyframe at a time: frame threads would hold its picture back until more packets came.
                stream.thread_type = "NONE" if self._gate is not None else "AUTO"
            if self.config.decode == "keyframes":
                codec.skip_frame = "NONKEY"
            self._catch_up.restart()
            self._status.connection(decoder=choice.kind, decoder_reason=choice.reason, codec=codec.name)
            frame_interval_s = 1.0 / float(stream.average_rate) if stream.average_rate else DEFAULT_FRAME_INTERVAL_S
            timeline.new_connection()
            self._steering.new_connection()
            if self._gate is not None:
                self._gate.reset(JITTER_TOLERANCE * frame_interval_s)
            # In lean mode the gate already keeps the cadence; a second limiter could only disagree with it.
            limiter = FrameRateLimiter(None if self._gate is not None else self.config.max_fps, frame_interval_s)
            clocks = ConnectionClocks()
            for picture, arrival in self._decoded(container, stream, choice, clocks):
                offset = timeline.offset_s(picture.pts, picture.time_base, frame_interval_s)
                if not outcome.got_frame:
                    outcome.got_frame = True
                    if self.config.is_live:
                        timeline.anchor_arrival(arrival)
                    self._set_state("live", "")
                    self._last_logged_problem = ""
                    size = f"{picture.width}x{picture.height}"
                    log.info("source %s live: %s %s on %s", self.source_id, codec.name, size, choice.kind)
                self._reconnect.frame_arrived(self._monotonic())
                origin = clocks.arrival.observe(arrival, offset)
                if self.config.is_live:
                    self._keep_up(codec, (self._wall_clock() - origin).total_seconds() - offset, picture.key_frame)
                source_offset = offset if self.config.is_live else timeline.loop_base_s + offset
                if not limiter.due(source_offset):
                    self._status.rate_limited(self._take_decode_seconds())
                    continue
                if not self.config.is_live and self.config.realtime:
                    self._pace(pace_anchor + source_offset)
                if self._stop.is_set():
                    return
                timestamp, timestamp_source, clock_offset_s = self._timestamp(
                    timeline, clocks, container, picture, source_offset
                )
                converting = time.perf_counter()
                image = cast(npt.NDArray[np.uint8], picture.to_ndarray(format="bgr24"))
                if self._gate is not None:
                    self._gate.taken(self._gate_time(picture.pts, picture.time_base))
                sequence = self._status.delivered(
                    timestamp_source,
                    clock_offset_s,
                    decode_seconds=self._take_decode_seconds(),
                    convert_seconds=time.perf_counter() - converting,
                )
                yield Frame(image=image, source_id=self.source_id, sequence=sequence, timestamp=timestamp)
            outcome.ended_cleanly = not self._stop.is_set()
            if not self.config.is_live:
                # The next pass over the file continues the timeline one frame after this one's end.
                timeline.loop_base_s += timeline.last_offset_s + frame_interval_s

    def _gate_time(self, pts: int | None, time_base: Any) -> float:
        """Stream seconds of a packet or picture for the gate; a missing PTS reuses the last one seen."""
        if pts is not None and time_base:
            self._last_gate_time = pts * float(time_base)
        return self._last_gate_time

    def _keep_up(self, codec: Any, lag_s: float, keyframe: bool) -> None:
        """Skip non-key frames while decoding lags the stream by more than max_decode_lag_s (see catch_up)."""
        was_skipping = self._catch_up.skipping
        if self._catch_up.observe(lag_s, keyframe) == was_skipping:
            return
        if self._catch_up.skipping:
            self._status.fell_behind()
            log.warning(
                "source %s: decoding is %.1f s behind the stream: keyframes only until caught up", self.source_id, lag_s
            )
            codec.skip_frame = "NONKEY"
        else:
            log.info("source %s: caught up (%.2f s behind): decoding every frame again", self.source_id, lag_s)
            codec.skip_frame = "NONKEY" if self.config.decode == "keyframes" else "DEFAULT"

    def _take_decode_seconds(self) -> float:
        """Decode time spent since the last frame was counted (delivered or rate-limited)."""
        spent, self._decode_seconds = self._decode_seconds, 0.0
        return spent

    def _decoder_for_connection(self) -> DecoderChoice:
        if self._decoder is None:
            self._decoder = choose_decoder(self.config.decoder, self._nvdec_probe)
            level = logging.WARNING if self.config.decoder == "nvdec" and self._decoder.kind == "cpu" else logging.INFO
            log.log(level, "source %s: %s decoder: %s", self.source_id, self._decoder.kind, self._decoder.reason)
        return self._decoder

    def _open_with_fallback(self, choice: DecoderChoice) -> tuple[av.container.InputContainer, DecoderChoice]:
        try:
            return self._open(choice), choice
        except (av.error.FFmpegError, OSError, RuntimeError) as error:
            if choice.kind != "nvdec" or is_source_failure(error):
                raise
            fallback = nvdec_failed(error, "opening")
        container = self._open(fallback)  # raises when the source itself is the problem: NVDEC stays chosen
        self._decoder = fallback
        log.warning("source %s: %s", self.source_id, fallback.reason)
        return container, fallback

    def _open(self, choice: DecoderChoice) -> av.container.InputContainer:
        url = self.config.url
        if url.startswith("file://"):
            url = url.removeprefix("file://")
        if not self.config.is_live and not Path(url).is_file():
            raise FileNotFoundError(f"video file not found: {url}")
        container: Any = av.open(
            url,
            mode="r",
            options=open_options(self.config),
            timeout=open_timeouts(self.config),
            hwaccel=hwaccel_for(choice),
        )
        if not container.streams.video:
            container.close()
            raise av.error.InvalidDataError(0, f"no video stream in {redact_url(url)}")
        result: av.container.InputContainer = container
        return result

    def _decoded(
        self,
        container: av.container.InputContainer,
        stream: av.video.VideoStream,
        choice: DecoderChoice,
        clocks: ConnectionClocks,
    ) -> Iterator[tuple[av.VideoFrame, dt.datetime]]:
        """Decoded pictures of ``stream`` with the wall-clock time their packet left the demuxer.

        Corrupt packets are skipped and counted; a stall raises ``StreamStalledError``.
        """
        keyframes_only = self.config.decode == "keyframes"
        gate = self._gate
        watchdog = StallWatchdog(self.config.stall_timeout_s, self._monotonic())
        consecutive_errors = 0
        # Every stream's packets, so the watchdog also runs when only non-video data arrives.
        packets = container.demux()
        while not self._stop.is_set():
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.InvalidDataError as error:
                # The demuxer gave up on this packet; a fresh iterator resumes at the next one.
                consecutive_errors += 1
                self._status.decode_error(f"demux: {describe_error(error, self.config.url)}")
                if consecutive_errors > MAX_CONSECUTIVE_DEMUX_ERRORS:
                    raise
                watchdog.check(self._monotonic())
                packets = container.demux()
                continue
            if packet.stream_index != stream.index:
                watchdog.packet()
                watchdog.check(self._monotonic())
                continue
            arrived = self._wall_clock()
            clocks.packet(packet.pts, producer_wallclock_us(packet), arrived)
            if gate is not None and not self._worth_decoding(gate, packet, watchdog):
                continue
            pictures = self._decode_packet(packet, choice, watchdog)
            if pictures is None:
                continue
            consecutive_errors = 0
            if self._catch_up.skipping and not packet.is_keyframe:
                self._status.skipped_behind()
            if (keyframes_only or self._catch_up.skipping) and packet.size > 0:
                # Non-key packets decode to nothing on purpose; an undamaged one still shows the stream lives.
                watchdog.progress(self._monotonic())
            for picture in pictures:
                if not isinstance(picture, av.VideoFrame):
                    continue
                corrupt = bool(picture.is_corrupt)
                self._status.decoded(corrupt=corrupt)
                if not (corrupt and self.config.corrupt_frames == "drop"):
                    yield picture, clocks.frame_arrival(picture.pts, arrived)
                # After the consumer returns: time spent analysing (or pacing) a frame is not a stall.
                watchdog.progress(self._monotonic())
            watchdog.check(self._monotonic())

    def _decode_packet(
        self, packet: av.packet.Packet[Any], choice: DecoderChoice, watchdog: StallWatchdog
    ) -> list[Any] | None:
        """The packet's pictures, timed; None when FFmpeg refused it (counted, the watchdog told)."""
        decoding = time.perf_counter()
        try:
            pictures: list[Any] = list(packet.decode())
        except av.error.FFmpegError as error:
            if choice.kind == "nvdec" and not isinstance(error, av.error.InvalidDataError):
                raise _NvdecFailedError(str(error)) from error
            self._status.decode_error(f"decode: {describe_error(error, self.config.url)}")
            watchdog.packet()
            watchdog.check(self._monotonic())
            return None
        self._decode_seconds += time.perf_counter() - decoding
        return pictures

    def _worth_decoding(self, gate: KeyframeGate, packet: av.packet.Packet[Any], watchdog: StallWatchdog) -> bool:
        """Lean mode: whether a video packet goes to the decoder (a sample is due); if not, it is counted.

        A packet not decoded still shows the stream lives when it carries data. While a sample is due the
        packets go to the decoder as in keyframes mode (non-key ones decode to nothing at once), so the
        watchdog judges a damaged stream as before.
        """
        stream_s = self._gate_time(packet.pts, packet.time_base)
        if gate.wants(stream_s, packet.is_keyframe) or gate.due(stream_s):
            return True
        if packet.size > 0:  # an empty one is the demuxer's end-of-stream flush, not data
            self._packets_not_decoded += 1
            watchdog.progress(self._monotonic())
        watchdog.check(self._monotonic())
        return False

    def _timestamp(
        self,
        timeline: Timeline,
        clocks: ConnectionClocks,
        container: av.container.InputContainer,
        picture: av.VideoFrame,
        source_offset: float,
    ) -> tuple[dt.datetime, TimestampSource, float | None]:
        """The frame's wall-clock time, where it came from, and the camera clock's offset from ours."""
        if not self.config.is_live or clocks.arrival.origin is None:
            return timeline.monotonic(timeline.at(source_offset)), "file", None
        camera_time = None
        if self.config.timestamps == "sender_report":
            # Older PyAV lacks start_time_realtime (and packet side data): timestamps then stay on arrival.
            start_time_realtime: int | None = getattr(container, "start_time_realtime", None)
            camera_time = clocks.sender.time_of(picture.pts, picture.time_base, start_time_realtime)
        stamp, source, clock_offset_s = self._steering.steer(
            timeline.at(source_offset),
            source_offset,
            clocks.arrival.origin + dt.timedelta(seconds=source_offset),
            camera_time,
        )
        return timeline.monotonic(stamp), source, clock_offset_s

    # -- state and reconnects ------------------------------------------------------------------------

    def _set_state(self, state: ReaderState, reason: str) -> None:
        self._status.set_state(state, reason)

    def _stalled(self, reason: str) -> None:
        self._status.stalled()
        self._problem("stalled", reason)

    def _down(self, reason: str) -> None:
        self._problem("down", reason)

    def _problem(self, state: ReaderState, reason: str) -> None:
        self._status.error(reason)
        self._set_state(state, reason)
        # Say it once per distinct problem: a dead camera retried every few seconds must not flood the log.
        if reason != self._last_logged_problem:
            log.warning("source %s %s: %s", self.source_id, state, reason)
            self._last_logged_problem = reason
        else:
            log.debug("source %s %s: %s", self.source_id, state, reason)

    def _pace(self, due_monotonic: float) -> None:
        delay = due_monotonic - self._monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _wait_before_reconnect(self) -> None:
        try:
            delay = self._reconnect.next_delay(self._monotonic())
        except ReconnectLimitError as error:
            raise SourceGaveUpError(
                f"source {self.source_id}: {error}: {self._status.snapshot().last_error or 'no frames'}"
            ) from None
        self._status.reconnecting()
        log.debug("source %s: reconnecting in %.1f s", self.source_id, delay)
        self._stop.wait(delay)
