"""PyAVReader against a real RTSP server (GStreamer, started by the test session)."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import cv2
import pytest

from edge_agent.cli import main
from edge_agent.sources.pyav_reader import PyAVReader, ReaderConfig
from tests.conftest import RtspServe
from tests.integration.rtsp_clips import Collector, frame_index, write_counting_clip

pytestmark = pytest.mark.integration

FRAMES, FPS = 30, 10


def test_reader_gets_the_stream_from_its_first_frame_with_wall_clock_pts_times(
    rtsp_server_factory: RtspServe, tmp_path: Path
) -> None:
    url = rtsp_server_factory(write_counting_clip(tmp_path / "counting.mp4", frames=FRAMES, fps=FPS))
    config = ReaderConfig(url=url, read_timeout_s=5, max_reconnects=0, timestamps="arrival")
    reader = PyAVReader("cam-rtsp", config)
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
    # Times: our wall clock when the first frame's packet arrived, then the stream's own PTS spacing (100 ms),
    # slewed by at most 10 % towards the earliest arrival (the first packets come in a burst after probing).
    assert before <= frames[0].timestamp <= after
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(frames)]
    step = dt.timedelta(milliseconds=100)
    assert all(0.9 * step - dt.timedelta(milliseconds=1) <= gap <= step + dt.timedelta(milliseconds=1) for gap in gaps)
    assert reader.stats().timestamp_source == "arrival"
    stats = reader.stats()
    assert (stats.frames_decoded, stats.reconnects, stats.state) == (len(frames), 0, "stopped")


def test_h265_clip_is_served_and_decoded_in_order(rtsp_server_factory: RtspServe, tmp_path: Path) -> None:
    url = rtsp_server_factory(write_counting_clip(tmp_path / "counting_h265.mp4", frames=20, codec="libx265"))
    reader = PyAVReader("cam-h265", ReaderConfig(url=url, on_end="stop", max_reconnects=0))
    frames = list(reader.frames())

    assert [frame_index(f) for f in frames] == list(range(20))
    stats = reader.stats()
    assert stats.codec == "hevc"
    assert (stats.decode_errors, stats.corrupt_frames, stats.reason) == (0, 0, "end of stream (on_end: stop)")


def test_timestamps_steer_to_the_cameras_clock_once_an_rtcp_sender_report_arrived(
    rtsp_server_factory: RtspServe, tmp_path: Path
) -> None:
    url = rtsp_server_factory(write_counting_clip(tmp_path / "counting.mp4"), loop=True)
    collector = Collector(PyAVReader("cam-rtcp", ReaderConfig(url=url)))
    frame_step = dt.timedelta(milliseconds=100)

    def converged() -> bool:
        # On the camera's clock, and the slew towards it is over: the last gaps are the stream's own again.
        last = [arrival.frame.timestamp for arrival in collector.arrivals[-11:]]
        exact = all(abs(b - a - frame_step) <= dt.timedelta(milliseconds=1) for a, b in itertools.pairwise(last))
        return collector.reader.stats().timestamp_source == "sender_report" and len(last) == 11 and exact

    try:
        # A sender report comes within seconds; the slew then takes 10 s of stream per second of offset.
        collector.wait_for(converged, 25, "timestamps steered onto the camera's clock")
    finally:
        collector.finish()

    stats = collector.reader.stats()
    # The server's clock is this machine's: the camera clock is behind our earliest arrival by the stream's delay.
    assert stats.clock_offset_s is not None
    assert -1.0 < stats.clock_offset_s <= 0.0
    arrivals = collector.arrivals
    gaps = [b.frame.timestamp - a.frame.timestamp for a, b in itertools.pairwise(arrivals)]
    assert all(abs(gap - frame_step) <= 0.1 * frame_step + dt.timedelta(milliseconds=1) for gap in gaps)  # no jumps
    for arrival in arrivals[-10:]:
        # Captured (camera clock) before it reached us, and not long before.
        assert 0.0 < (arrival.wall - arrival.frame.timestamp).total_seconds() < 1.0


def test_snapshot_of_an_rtsp_camera(
    rtsp_server_factory: RtspServe, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = rtsp_server_factory(write_counting_clip(tmp_path / "counting.mp4"), loop=True)
    output = tmp_path / "camera.png"
    assert main(["snapshot", url, "-o", str(output), "--timeout", "10"]) == 0

    assert capsys.readouterr().out == f"{output} 160x120\n"
    saved = cv2.imread(str(output))
    assert saved is not None
    assert saved.shape == (120, 160, 3)
    assert float(saved.mean()) < 8  # frame 0 of the clip: a new session starts at the beginning
