"""Small clips and a threaded frame collector for the RTSP reader tests (real server, real decoder)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devstack.video_files import write_video
from edge_agent.perception.types import Frame
from edge_agent.sources.pyav_reader import PyAVReader, SourceGaveUpError

WIDTH, HEIGHT = 160, 120


def write_counting_clip(
    path: Path,
    *,
    frames: int = 30,
    fps: int = 10,
    codec: str = "libx264",
    gop: int | None = None,
) -> Path:
    """Frame i is a flat grey of brightness 8*(i % 32), so a reader can tell which frame it got.

    Steps of 8 survive H.264 and colour conversion (they shift grey levels by about 3).
    """
    gop = gop or fps
    options = (
        {"x265-params": f"keyint={gop}:min-keyint={gop}:bframes=0:log-level=error"}
        if codec == "libx265"
        else {"g": str(gop), "bf": "0", "tune": "zerolatency"}
    )
    images = (np.full((HEIGHT, WIDTH, 3), 8 * (index % 32), dtype=np.uint8) for index in range(frames))
    return write_video(path, images, fps=fps, codec=codec, options=options)


def frame_index(frame: Frame) -> int:
    """The clip's frame index modulo 32."""
    return round(float(frame.image.mean()) / 8)


@dataclass(frozen=True)
class Arrival:
    monotonic: float
    wall: dt.datetime
    frame: Frame


class Collector:
    """Runs ``reader.frames()`` in a thread and keeps every frame with the moment it arrived."""

    def __init__(self, reader: PyAVReader) -> None:
        self.reader = reader
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.reader.frames():
                with self._lock:
                    self._arrivals.append(Arrival(time.monotonic(), dt.datetime.now(dt.UTC), frame))
        except (SourceGaveUpError, Exception) as error:  # kept for the test to report
            self.error = error

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def arrived_after(self, moment: float) -> list[Arrival]:
        return [arrival for arrival in self.arrivals if arrival.monotonic > moment]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Poll ``condition``; returns the monotonic time it became true, fails the test after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic()
            if not self._thread.is_alive():
                raise AssertionError(f"the reader ended while waiting for {what}: {self.error!r}")
            time.sleep(0.02)
        raise AssertionError(f"not within {timeout_s} s: {what}; reader stats: {self.reader.stats()}")

    def finish(self) -> None:
        self.reader.stop()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the reader did not stop"
        assert self.error is None, f"the reader failed: {self.error!r}"
