"""Camera faults against a real GStreamer RTSP server process: restart, freeze (SIGSTOP), corrupt packets.

The deadlines are the issue's: first new frame within 5 s of the server's return (with the
product's default reconnect settings), a frozen stream reported as stalled within 20 s.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import av.bitstream
import pytest

from devstack.rtsp import RtspServer
from edge_agent.config import CameraConfig
from edge_agent.pipeline import CameraPipeline
from edge_agent.sources.pyav_reader import PyAVReader, ReaderConfig
from event_contract import Event, HealthEvent
from tests.integration.rtsp_clips import Collector, frame_index, write_counting_clip
from tests.unit.test_pipeline_step import NORTH, BrightBlobDetector

pytestmark = pytest.mark.integration

RETURN_DEADLINE_S = 5.0
STALL_DEADLINE_S = 20.0

StartServer = Callable[[Path, bool], RtspServer]


@pytest.fixture
def start_server(devstack_state_dir: Path) -> Iterator[StartServer]:
    servers: list[RtspServer] = []

    def start(video: Path, loop: bool) -> RtspServer:
        server = RtspServer(devstack_state_dir, {"cam": video}, loop=loop, name=f"faults-{uuid.uuid4().hex[:8]}")
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            if server.is_running():
                server.resume()  # a paused server would ignore SIGTERM until SIGKILL
            server.stop()


def test_server_killed_and_restarted_gives_a_new_frame_within_5_s_with_default_settings(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(write_counting_clip(tmp_path / "clip.mp4"), True)
    # The product's defaults for reconnecting and timeouts: nothing tuned for the test.
    collector = Collector(PyAVReader("cam-restart", ReaderConfig(url=server.url("cam"))))
    try:
        collector.wait_for(lambda: len(collector.arrivals) >= 10, 30, "first frames")
        server.kill()
        collector.wait_for(lambda: collector.reader.stats().state != "live", 15, "the loss to be noticed")
        time.sleep(4.0)  # the camera stays away a while: attempts fail and the backoff grows
        assert collector.reader.stats().reconnects >= 2
        spawned = time.monotonic()
        server.start()  # returns once the server answers DESCRIBE again
        returned = time.monotonic()
        first_new = collector.wait_for(lambda: bool(collector.arrived_after(returned)), 30, "a frame after the return")
    finally:
        collector.finish()

    new = collector.arrived_after(returned)
    delay_s = new[0].monotonic - returned
    since_spawn_s = new[0].monotonic - spawned
    print(f"\nfirst new frame {delay_s:.2f} s after the server answered again ({since_spawn_s:.2f} s after spawn)")
    assert delay_s <= RETURN_DEADLINE_S, f"first new frame {delay_s:.2f} s after the server's return"
    assert first_new >= new[0].monotonic
    assert frame_index(new[0].frame) < 5  # a new session starts at the clip's first frames
    stats = collector.reader.stats()
    assert stats.state == "stopped"
    states = [change.state for change in collector.reader.state_changes()]
    assert "down" in states
    assert states[-2:] == ["live", "stopped"]


def test_sigstopped_server_is_reported_stalled_and_recovers_after_sigcont(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(write_counting_clip(tmp_path / "clip.mp4"), True)
    camera = CameraConfig.model_validate(
        {
            "id": "cam-frozen",
            "url": server.url("cam"),
            "open_timeout_s": 2.0,
            "read_timeout_s": 2.0,
            "stall_timeout_s": 4.0,
            "lines": [NORTH],
        }
    )
    events: list[Event] = []
    pipeline = CameraPipeline("agent-faults", camera, BrightBlobDetector(), events.append, health_interval_s=3600)
    pipeline.start()
    try:
        deadline = time.monotonic() + 30
        while pipeline.stats().frames_processed < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pipeline.stats().frames_processed >= 10
        server.pause()
        paused = time.monotonic()
        while pipeline.stats().stalls == 0 and time.monotonic() - paused < STALL_DEADLINE_S + 5:
            time.sleep(0.05)
        detected_s = time.monotonic() - paused
        assert pipeline.stats().stalls >= 1, "the frozen stream was never reported as stalled"
        print(f"\nstall detected {detected_s:.2f} s after SIGSTOP")
        assert detected_s <= STALL_DEADLINE_S
        processed_at_resume = pipeline.stats().frames_processed
        server.resume()
        deadline = time.monotonic() + 30
        while pipeline.stats().frames_processed <= processed_at_resume + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = pipeline.stats()
    finally:
        pipeline.stop()
        assert pipeline.join(30)

    assert stats.frames_processed > processed_at_resume + 5, "no frames after SIGCONT"
    assert stats.state == "live"
    health = [(e.state, e.reason) for e in events if isinstance(e, HealthEvent)]
    stalled = [reason for state, reason in health if state == "stalled"]
    assert stalled == ["no data for 2 s while the connection stayed open"]
    after_stall = [state for state, _ in health[[s for s, _ in health].index("stalled") :]]
    assert "live" in after_stall  # recovery reported too
    assert not pipeline.stats().failed


def corrupt_copy(clean: Path, corrupt: Path, packets: range) -> Path:
    """``clean`` remuxed, with FFmpeg's ``noise`` bitstream filter damaging the packets in ``packets``."""
    with av.open(str(clean)) as source, av.open(str(corrupt), "w") as output:
        video = source.streams.video[0]
        stream = output.add_stream_from_template(video)
        noise = av.bitstream.BitStreamFilterContext("noise=amount=10", video)
        for index, packet in enumerate(p for p in source.demux(video) if p.size):
            for damaged in noise.filter(packet) if index in packets else [packet]:
                damaged.stream = stream
                output.mux(damaged)
    return corrupt


def test_corrupt_h264_packets_are_counted_and_frames_resume(start_server: StartServer, tmp_path: Path) -> None:
    # 64 frames at 16 fps, keyframe every 16: packets 20-39 damaged, 48 onwards clean after a keyframe.
    clean = write_counting_clip(tmp_path / "clean.mp4", frames=64, fps=16, gop=16)
    server = start_server(corrupt_copy(clean, tmp_path / "corrupt.mp4", range(20, 40)), False)
    config = ReaderConfig(url=server.url("cam"), on_end="stop", stall_timeout_s=5.0)
    collector = Collector(PyAVReader("cam-corrupt", config))
    try:
        collector.wait_for(lambda: collector.reader.stats().state == "stopped", 30, "the clip to play to its end")
    finally:
        collector.finish()

    stats = collector.reader.stats()
    assert stats.decode_errors + stats.corrupt_frames > 0, "the damage went unnoticed"
    assert stats.reason == "end of stream (on_end: stop)"
    assert (stats.stalls, stats.reconnects) == (0, 0)
    indices = [frame_index(arrival.frame) for arrival in collector.arrivals]  # modulo 32
    assert indices[:20] == list(range(20))  # clean before the damage
    # Frames resume: the last 16 delivered are the clip's frames 48-63, every one, in order, clean.
    assert indices[-16:] == [index % 32 for index in range(48, 64)]
    assert stats.frames_delivered == len(indices)
    assert stats.frames_decoded == len(indices) + stats.corrupt_frames


def _latencies_of_a_slow_consumer(server: RtspServer, max_decode_lag_s: float | None) -> tuple[list[float], PyAVReader]:
    """Read 8 s of a 10 fps stream while taking 0.25 s per frame (4 fps): decoding falls behind the camera."""
    reader = PyAVReader("cam-slow", ReaderConfig(url=server.url("cam"), max_decode_lag_s=max_decode_lag_s))
    latencies: list[float] = []
    started = time.monotonic()
    for frame in reader.frames():
        latencies.append((dt.datetime.now(dt.UTC) - frame.timestamp).total_seconds())
        if time.monotonic() - started > 8.0:
            break
        time.sleep(0.25)  # the box is too busy: decoding waits while this frame is analysed
    reader.stop()
    return latencies, reader


def test_decoding_slower_than_the_camera_skips_to_keyframes_and_latency_stays_bounded(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(write_counting_clip(tmp_path / "clip.mp4", frames=100, fps=10), True)
    behind, _ = _latencies_of_a_slow_consumer(server, None)
    latencies, reader = _latencies_of_a_slow_consumer(server, 0.5)
    stats = reader.stats()
    # Without catching up, each frame comes out later than the one before (the backlog waits in the socket).
    assert behind[-1] > 2.5, behind
    assert stats.fell_behind >= 1
    assert stats.frames_skipped_behind > 0
    # With it, latency stays within the lag limit plus a group of pictures (1 s) and one slow frame.
    assert max(latencies[len(latencies) // 2 :]) < 2.0, latencies
