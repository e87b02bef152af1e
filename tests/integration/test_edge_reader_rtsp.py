"""PyAVReader against a real RTSP server (GStreamer, started by the test session)."""

from __future__ import annotations

import datetime as dt
import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from edge_agent.sources.pyav_reader import PyAVReader, ReaderConfig
from tests.conftest import RtspServe

pytestmark = pytest.mark.integration

FRAMES, FPS = 30, 10


def write_counting_video(path: Path) -> Path:
    """H.264 MP4 whose frame i is a flat grey of brightness 8*i, so a reader can tell which frame it got."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {"g": str(FPS), "bf": "0", "tune": "zerolatency"}
        for index in range(FRAMES):
            image = np.full((120, 160, 3), 8 * index, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_reader_gets_the_stream_from_its_first_frame_with_wall_clock_pts_times(
    rtsp_server_factory: RtspServe, tmp_path: Path
) -> None:
    url = rtsp_server_factory(write_counting_video(tmp_path / "counting.mp4"))
    reader = PyAVReader("cam-rtsp", ReaderConfig(url=url, read_timeout_s=5, max_reconnects=0))
    assert reader.config.is_live

    before = dt.datetime.now(dt.UTC)
    frames = []
    for frame in reader.frames():
        frames.append(frame)
        if len(frames) == FRAMES - 5:
            reader.stop()
    after = dt.datetime.now(dt.UTC)

    brightness = [round(float(f.image.mean()) / 8) for f in frames]
    assert brightness[:5] == [0, 1, 2, 3, 4]  # from the very first frame, in order
    assert frames[0].image.shape == (120, 160, 3)
    assert [f.sequence for f in frames] == list(range(len(frames)))
    # Times: wall clock at the first frame, then the stream's own PTS spacing (100 ms).
    assert before <= frames[0].timestamp <= after
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(frames)]
    assert all(abs(gap - dt.timedelta(milliseconds=100)) <= dt.timedelta(milliseconds=1) for gap in gaps)
    stats = reader.stats()
    assert (stats.frames_decoded, stats.reconnects, stats.state) == (len(frames), 0, "stopped")
