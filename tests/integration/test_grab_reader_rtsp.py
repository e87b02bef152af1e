"""GrabReader against the real GStreamer RTSP server: one decoded keyframe per grab, no connection between grabs,
recovery after the server restarts.

The server gives every client its own media starting at the clip's first frame, and loops the clip at real
time: a reader that stayed connected would see later frames, a reader that reconnects sees frame 0 each time.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.rtsp import RtspServer
from edge_agent.perception.types import Frame
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.grab_reader import GrabReader
from ioc_common.backoff import BackoffConfig
from tests.integration.rtsp_clips import frame_index, write_counting_clip

pytestmark = pytest.mark.integration

TCP_ESTABLISHED = "01"


@pytest.fixture
def server(devstack_state_dir: Path, tmp_path: Path) -> Iterator[RtspServer]:
    clip = write_counting_clip(tmp_path / "site.mp4", frames=60, fps=10, gop=10)
    started = RtspServer(devstack_state_dir, {"site": clip}, loop=True, name=f"grab-{uuid.uuid4().hex[:8]}")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def grab_reader(server: RtspServer) -> GrabReader:
    config = ReaderConfig(
        url=server.url("site"),
        sampling="grab",
        grab_every_s=1.0,
        open_timeout_s=3.0,
        read_timeout_s=3.0,
        stall_timeout_s=5.0,
        reconnect=BackoffConfig(base_s=0.5, ceiling_s=1.0),
    )
    return GrabReader("cam-grab", config)


def connections_to(port: int) -> int:
    """Established TCP connections from this machine to ``port`` (the client side: remote port = port)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == TCP_ESTABLISHED:
                count += 1
    return count


def test_each_grab_is_its_own_session_giving_one_decoded_keyframe_and_no_connection_is_held(
    server: RtspServer,
) -> None:
    reader = grab_reader(server)
    frames = reader.frames()
    held_between: list[int] = []
    grabbed: list[Frame] = []
    try:
        for frame in frames:
            # The generator is suspended here: this is the time between two grabs.
            held_between.append(connections_to(server.port))
            grabbed.append(frame)
            if len(grabbed) == 3:
                break
    finally:
        frames.close()

    assert held_between == [0, 0, 0]
    assert [frame_index(frame) for frame in grabbed] == [0, 0, 0]  # a new session each time: the clip's first frame
    assert {(frame.width, frame.height) for frame in grabbed} == {(160, 120)}
    assert [frame.timestamp for frame in grabbed] == sorted(frame.timestamp for frame in grabbed)
    stats = reader.stats()
    assert (stats.frames_decoded, stats.frames_delivered, stats.decode_errors) == (3, 3, 0)
    counts = reader.grab_counts()
    assert (counts.attempts, counts.succeeded) == (3, 3)
    assert [change.state for change in reader.state_changes()] == ["connecting", "live", "stopped"]


def test_grabs_resume_after_the_server_restarts(server: RtspServer) -> None:
    reader = grab_reader(server)
    arrivals: queue.Queue[Frame] = queue.Queue(maxsize=64)
    failures: list[BaseException] = []

    def collect() -> None:
        try:
            for frame in reader.frames():
                arrivals.put_nowait(frame)
        except Exception as error:  # reported by the test below
            failures.append(error)

    worker = threading.Thread(target=collect, name="grabs", daemon=True)
    worker.start()
    try:
        arrivals.get(timeout=20)
        server.kill()
        deadline = time.monotonic() + 20
        while reader.stats().state not in ("down", "stalled") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.stats().state in ("down", "stalled"), reader.stats()
        while reader.stats().reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the camera stays away over a few slots
        while not arrivals.empty():
            arrivals.get_nowait()  # a grab that finished as the server went away
        server.start()
        after = arrivals.get(timeout=20)
    finally:
        reader.stop()
        worker.join(20)
    assert not worker.is_alive(), "the reader did not stop"
    assert failures == []
    assert frame_index(after) == 0
    stats = reader.stats()
    assert stats.reconnects >= 2
    assert stats.last_error
    states = [change.state for change in reader.state_changes()]
    assert states[:2] == ["connecting", "live"]
    assert {"down", "stalled"} & set(states)
    assert states[-2:] == ["live", "stopped"]
