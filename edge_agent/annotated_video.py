"""An annotated H.264 MP4 of an analysed clip (``edge-agent analyze --annotated OUT.mp4``).

``AnnotatedVideoWriter.observe`` is a ``FrameObserver``: for every analysed frame it draws the
tracked boxes, the lines and the counts so far (``annotate``) and encodes the picture with
libx264, timed by the frame's source timestamp, so the output has the input's frames and pace.
It runs in the analytics thread on purpose: offline analysis must not drop frames to keep up.
The file is written under a temporary name and renamed on ``close``, so a failed run leaves no
half-written video that looks complete.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from edge_agent.analytics.lines import LineConfig
from edge_agent.annotate import annotate
from edge_agent.overlay import Overlay, RunningCounts
from edge_agent.perception.types import Frame
from edge_agent.pipeline import StepResult

DEFAULT_FRAME_RATE = Fraction(25)
TIME_BASE = Fraction(1, 1000)
"""Presentation times in milliseconds of source time, so variable-rate clips keep their pace."""


def probe_frame_rate(url: str) -> Fraction:
    """The clip's average frame rate (a hint for the encoder), or 25 when the container does not say."""
    try:
        with av.open(url, timeout=10) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except (av.error.FFmpegError, OSError, IndexError):
        return DEFAULT_FRAME_RATE
    return Fraction(rate) if rate else DEFAULT_FRAME_RATE


class AnnotatedVideoWriter:
    """Encodes annotated frames into ``path``; ``close()`` finishes the file. Not thread-safe."""

    def __init__(self, path: Path, lines: tuple[LineConfig, ...], *, frame_rate: Fraction = DEFAULT_FRAME_RATE) -> None:
        self.path = path
        self.frames_written = 0
        self.error = ""
        """The first failure; after one, later frames are skipped and ``close`` leaves no file."""
        self._lines = lines
        self._frame_rate = frame_rate
        self._counts = RunningCounts.zero(lines)
        self._partial = path.with_name(path.stem + ".partial" + path.suffix)
        self._container: Any = None
        self._stream: Any = None
        self._first_time: dt.datetime | None = None
        self._last_pts = -1

    def observe(self, frame: Frame, result: StepResult) -> None:
        self._counts = self._counts.plus(result.crossings)
        if self.error:
            return
        try:
            self._write(frame, result)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            self.error = f"cannot write {self.path}: {type(error).__name__}: {error}"

    def close(self) -> None:
        """Flush the encoder and move the file into place (nothing is left behind after an error)."""
        if self._container is not None:
            try:
                if not self.error:
                    for packet in self._stream.encode():
                        self._container.mux(packet)
                self._container.close()
            except (av.error.FFmpegError, OSError) as error:
                self.error = self.error or f"cannot finish {self.path}: {error}"
            self._container = None
        if self.error or self.frames_written == 0:
            self.error = self.error or "no frame was analysed, so no video was written"
            self._partial.unlink(missing_ok=True)
            return
        self._partial.replace(self.path)

    def _write(self, frame: Frame, result: StepResult) -> None:
        # yuv420p needs even sides; an odd camera size loses its last row or column.
        height, width = frame.height - frame.height % 2, frame.width - frame.width % 2
        if self._first_time is None:
            self._open(width, height)
            self._first_time = frame.timestamp
        overlay = Overlay(frame.width, frame.height, result.tracked, self._lines, self._counts)
        picture = annotate(frame.image, overlay)[:height, :width]
        video_frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        elapsed_ms = round((frame.timestamp - self._first_time).total_seconds() * 1000)
        # Timestamps must rise strictly; two frames within a millisecond still get their own slot.
        pts = max(elapsed_ms, self._last_pts + 1)
        video_frame.pts, video_frame.time_base = pts, TIME_BASE
        self._last_pts = pts
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._partial), mode="w")
        stream = self._container.add_stream(
            "libx264", rate=self._frame_rate, options={"preset": "veryfast", "crf": "23"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        self._stream = stream
