"""PyAVReader on small H.264 files made here with PyAV (no external media needed)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from devstack.video_files import write_video
from edge_agent.sources.pyav_reader import PyAVReader, ReaderConfig, SourceGaveUpError
from ioc_common.backoff import BackoffConfig

START = dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC)
WIDTH, HEIGHT = 64, 48


def write_h264(path: Path, pts_ms: list[int], *, noise: bool = False) -> Path:
    """An MP4 with one H.264 frame at each PTS (milliseconds); frame i has brightness 6*i unless ``noise``."""
    rng = np.random.default_rng(0)
    images = (
        rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        if noise
        else np.full((HEIGHT, WIDTH, 3), 6 * i, np.uint8)
        for i in range(len(pts_ms))
    )
    return write_video(path, images, fps=10, options={"g": "10", "bf": "0"}, pts=pts_ms, time_base=Fraction(1, 1000))


def offline(url: Path | str, **overrides: object) -> ReaderConfig:
    settings: dict[str, object] = {
        "url": str(url),
        "realtime": False,
        "on_end": "stop",
        "start_time": START,
        "reconnect": BackoffConfig(base_s=0.01, ceiling_s=0.02),
    }
    settings.update(overrides)
    return ReaderConfig.model_validate(settings)


def test_frames_carry_pts_timestamps_sequence_and_bgr_pixels(tmp_path: Path) -> None:
    # Irregular spacing: timestamps must follow the PTS, not a frame count times a rate.
    pts_ms = [0, 100, 250, 300, 700, 800]
    video = write_h264(tmp_path / "irregular.mp4", pts_ms)
    reader = PyAVReader("cam-1", offline(video))
    frames = list(reader.frames())

    assert [f.sequence for f in frames] == list(range(len(pts_ms)))
    assert [f.timestamp for f in frames] == [START + dt.timedelta(milliseconds=ms) for ms in pts_ms]
    assert {f.source_id for f in frames} == {"cam-1"}
    assert frames[0].image.shape == (HEIGHT, WIDTH, 3)
    brightness = [float(f.image.mean()) for f in frames]
    assert brightness == sorted(brightness)  # decoded in order, pixels from the right frames
    assert not frames[0].image.flags.writeable
    stats = reader.stats()
    assert (stats.frames_decoded, stats.decode_errors, stats.reconnects, stats.state) == (6, 0, 0, "stopped")


def test_on_end_stop_ends_the_source_and_loop_keeps_time_moving(tmp_path: Path) -> None:
    video = write_h264(tmp_path / "ten.mp4", [i * 100 for i in range(10)])
    reader = PyAVReader("cam-1", offline(video, loop=True))
    frames = []
    for frame in reader.frames():
        frames.append(frame)
        if len(frames) == 25:
            reader.stop()

    assert len(frames) == 25
    stamps = [f.timestamp for f in frames]
    # Second pass starts one frame after the first pass ended: 10 frames of 100 ms.
    assert stamps[10] == START + dt.timedelta(seconds=1.0)
    assert stamps[24] == START + dt.timedelta(seconds=2.4)
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert reader.stats().reconnects == 0


def test_corrupt_packets_are_skipped_and_counted(tmp_path: Path) -> None:
    video = write_h264(tmp_path / "clean.mp4", [i * 100 for i in range(40)], noise=True)
    data = bytearray(video.read_bytes())
    rng = random.Random(0)
    for offset in range(2000, len(data) - 2000, 1500):
        data[offset : offset + 40] = bytes(rng.randrange(256) for _ in range(40))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(bytes(data))

    reader = PyAVReader("cam-1", offline(corrupt, max_reconnects=0))
    frames = list(reader.frames())

    stats = reader.stats()
    assert stats.decode_errors > 0
    assert stats.corrupt_frames > 0  # concealed by FFmpeg, dropped by the default corrupt_frames: drop
    assert 0 < len(frames) < 40
    assert stats.frames_delivered == len(frames)
    assert stats.frames_decoded == len(frames) + stats.corrupt_frames
    assert stats.state == "stopped"


def test_missing_file_reconnects_with_backoff_then_gives_up(tmp_path: Path) -> None:
    reader = PyAVReader("cam-1", offline(tmp_path / "absent.mp4", max_reconnects=2), rng=random.Random(3))
    with pytest.raises(SourceGaveUpError, match="gave up after 2 reconnects"):
        list(reader.frames())
    stats = reader.stats()
    assert stats.reconnects == 2
    assert "absent.mp4" in stats.last_error
    assert stats.state == "stopped"


def test_stop_during_reconnect_wait_ends_the_source(tmp_path: Path) -> None:
    config = offline(tmp_path / "absent.mp4", reconnect=BackoffConfig(base_s=3600, ceiling_s=3600))
    reader = PyAVReader("cam-1", config, rng=random.Random(1))
    frames: list[object] = []
    thread = threading.Thread(target=lambda: frames.extend(reader.frames()))
    thread.start()
    while reader.stats().reconnects == 0:  # now waiting up to an hour before the next try
        time.sleep(0.01)
    reader.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert frames == []
    assert reader.stats().state == "stopped"


def test_live_urls_are_told_apart_from_files() -> None:
    assert ReaderConfig(url="rtsp://10.0.0.5:554/stream1").is_live
    assert ReaderConfig(url="https://cam.example.vn/live.flv").is_live
    assert not ReaderConfig(url="/data/video.mp4").is_live
    assert not ReaderConfig(url="file:///data/video.mp4").is_live


def keyframe_indices(video: Path) -> list[int]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        return [
            index for index, packet in enumerate(p for p in container.demux(stream) if p.size) if packet.is_keyframe
        ]


def test_keyframe_mode_decodes_only_keyframes(tmp_path: Path) -> None:
    video = write_h264(tmp_path / "gop10.mp4", [i * 100 for i in range(35)])
    reader = PyAVReader("cam-1", offline(video, decode="keyframes"))
    frames = list(reader.frames())

    keyframes = keyframe_indices(video)
    assert 0 < len(keyframes) < 35
    assert [round(float(f.image.mean()) / 6) for f in frames] == keyframes  # frame i has brightness 6*i
    assert [f.timestamp for f in frames] == [START + dt.timedelta(milliseconds=100 * i) for i in keyframes]
    stats = reader.stats()
    assert stats.frames_decoded == stats.frames_delivered == len(keyframes)


def test_max_fps_hands_over_frames_by_stream_time_and_counts_the_rest(tmp_path: Path) -> None:
    video = write_h264(tmp_path / "ten_fps.mp4", [i * 100 for i in range(40)])
    reader = PyAVReader("cam-1", offline(video, max_fps=2.5))
    frames = list(reader.frames())

    assert [f.timestamp for f in frames] == [START + dt.timedelta(milliseconds=400 * i) for i in range(10)]
    assert [f.sequence for f in frames] == list(range(10))
    stats = reader.stats()
    assert (stats.frames_decoded, stats.frames_delivered, stats.frames_rate_limited) == (40, 10, 30)
    # Every frame costs decode time; only the delivered ones cost a conversion.
    assert stats.decode_seconds > 0
    assert stats.convert_seconds > 0


def write_undecodable(path: Path, source: Path) -> Path:
    """``source`` remuxed with every video packet's payload replaced by random bytes: data flows, frames do not."""
    rng = np.random.default_rng(1)
    with av.open(str(source)) as original, av.open(str(path), "w") as output:
        video = original.streams.video[0]
        stream = output.add_stream_from_template(video)
        for packet in original.demux(video):
            if not packet.size:
                continue
            garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
            garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
            garbage.stream = stream
            output.mux(garbage)
    return path


def test_stall_watchdog_tears_down_a_connection_that_gives_data_but_no_frames(tmp_path: Path) -> None:
    clean = write_h264(tmp_path / "clean.mp4", [i * 100 for i in range(30)])
    video = write_undecodable(tmp_path / "garbage.mp4", clean)
    ticks = itertools.count(step=1.0)  # every look at the clock costs a second: the stall comes after a few packets
    reader = PyAVReader("cam-1", offline(video, stall_timeout_s=3.0, max_reconnects=1), monotonic=lambda: next(ticks))
    with pytest.raises(SourceGaveUpError, match="gave up after 1 reconnects: no frame for"):
        list(reader.frames())

    stats = reader.stats()
    assert stats.stalls == 2
    assert stats.frames_delivered == 0
    assert stats.decode_errors > 0
    states = [change.state for change in reader.state_changes()]
    assert states == ["connecting", "stalled", "connecting", "stalled", "stopped"]
    stalled = next(change for change in reader.state_changes() if change.state == "stalled")
    assert stalled.reason.startswith("no frame for ")
    assert "while the connection stayed open" in stalled.reason
