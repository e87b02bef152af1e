"""The clock camera (devstack/clock_source.py): its burned-in time survives the codecs of the live path
(H.264 from the camera, JPEG from the agent), a damaged stripe is refused rather than misread, and the real
RTSP server's clock mount serves frames made moments ago, as the latency benchmark needs."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.clock_source import (
    CELLS,
    DATA_BITS,
    ClockRenderer,
    ClockSpec,
    now_ms,
    read_clock_stripe,
    stripe_cells,
)
from devstack.rtsp import RtspServer

pytestmark = pytest.mark.integration

SPEC = ClockSpec()
START_MS = int(dt.datetime(2025, 6, 1, 8, 30, tzinfo=dt.UTC).timestamp() * 1000)


def frame_bgr(renderer: ClockRenderer, epoch_ms: int, index: int = 0) -> np.ndarray:
    grey = np.frombuffer(renderer.render(epoch_ms, index), dtype=np.uint8).reshape(SPEC.height, SPEC.width)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def h264_round_trip(frames: list[np.ndarray], path: Path) -> list[np.ndarray]:
    """Encodes ``frames`` as a 25 fps H.264 stream (libx264, zerolatency, 1 s GOP) and decodes it back."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=SPEC.fps)
        stream.width, stream.height, stream.pix_fmt = SPEC.width, SPEC.height, "yuv420p"
        stream.options = {"tune": "zerolatency", "preset": "ultrafast", "g": str(SPEC.fps), "b": "2500k"}
        stream.time_base = Fraction(1, SPEC.fps)
        for index, bgr in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    with av.open(str(path)) as source:
        return [frame.to_ndarray(format="bgr24") for frame in source.decode(video=0)]


def jpeg_round_trip(bgr: np.ndarray, quality: int = 70) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def test_stripe_survives_h264_then_the_agents_jpeg(tmp_path: Path) -> None:
    renderer = ClockRenderer(SPEC)
    stamps = [START_MS + round(index * SPEC.frame_period_ms) for index in range(2 * SPEC.fps)]
    decoded = h264_round_trip([frame_bgr(renderer, stamp, i) for i, stamp in enumerate(stamps)], tmp_path / "c.mp4")
    assert len(decoded) == len(stamps)
    read_back = [read_clock_stripe(jpeg_round_trip(picture)) for picture in decoded]
    assert read_back == stamps
    half = cv2.resize(decoded[7], (SPEC.width // 2, SPEC.height // 2), interpolation=cv2.INTER_AREA)
    assert read_clock_stripe(jpeg_round_trip(half)) == stamps[7], "a page scaling the canvas down still reads it"


@settings(max_examples=60, deadline=None)
@given(epoch_ms=st.integers(min_value=0, max_value=(1 << DATA_BITS) - 1))
def test_any_48_bit_time_reads_back(epoch_ms: int) -> None:
    assert read_clock_stripe(frame_bgr(ClockRenderer(SPEC), epoch_ms)) == epoch_ms


@pytest.mark.parametrize("cell", [0, 1, 2, 30, DATA_BITS + 2, CELLS - 2, CELLS - 1])
def test_a_flipped_cell_is_refused_not_misread(cell: int) -> None:
    """Guards and check bits catch one wrong cell on every sampled row: the reader answers None."""
    renderer = ClockRenderer(SPEC)
    picture = frame_bgr(renderer, START_MS)
    cells = stripe_cells(START_MS)
    step = (SPEC.width * (632 - 8) / 640) / CELLS
    x0, x1 = round(8 + cell * step), round(8 + (cell + 1) * step)
    picture[: round(SPEC.height * 40 / 360), x0:x1] = 0 if cells[cell] else 255
    assert read_clock_stripe(picture) is None


def test_pictures_without_a_stripe_read_as_none() -> None:
    assert read_clock_stripe(np.zeros((SPEC.height, SPEC.width, 3), dtype=np.uint8)) is None
    assert read_clock_stripe(np.full((SPEC.height, SPEC.width, 3), 255, dtype=np.uint8)) is None
    assert read_clock_stripe(np.zeros((40, 60, 3), dtype=np.uint8)) is None, "too small to hold a stripe"
    with pytest.raises(ValueError, match="48 bits"):
        stripe_cells(1 << DATA_BITS)


@pytest.fixture(scope="module")
def clock_server(devstack_state_dir: Path) -> Iterator[RtspServer]:
    server = RtspServer(devstack_state_dir, clocks=("clock",), name="rtsp-clock-test")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_rtsp_clock_mount_serves_frames_made_moments_ago(clock_server: RtspServer) -> None:
    """Through the real RTSP server (H.264 over RTP/TCP) and PyAV, every frame's stamp reads, stamps only grow,
    and once the stream runs a frame is read well within a second of being made (a live source, not a queue)."""
    options = {"rtsp_transport": "tcp", "fpsprobesize": "0", "allowed_media_types": "video"}
    stamps: list[int] = []
    ages: list[int] = []
    with av.open(clock_server.url("clock"), options=options, timeout=(10.0, 10.0)) as source:
        for frame in source.decode(video=0):
            stamp = read_clock_stripe(frame.to_ndarray(format="bgr24"))
            assert stamp is not None, f"frame {len(stamps)} has no readable stripe"
            stamps.append(stamp)
            ages.append(now_ms() - stamp)
            if len(stamps) == 2 * SPEC.fps:
                break
    assert all(later > earlier for earlier, later in itertools.pairwise(stamps))
    assert max(ages[-SPEC.fps :]) < 1000, ages
    assert clock_server.urls == {"clock": clock_server.url("clock")}
