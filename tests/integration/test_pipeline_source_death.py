"""A camera that dies: real RTSP server process, real SSD ONNX detector, rendered clip, the real pipeline.

While the server streams, every interval the pipeline watched end to end reports full coverage;
after the server is killed, the analytics thread's ticks keep closing intervals, and those
reports say coverage 0 with the whole interval as downtime, so central receives "dead camera",
not silence and not a quiet road.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.errors import DevstackError
from devstack.rtsp import RtspServer
from devstack.scene import SceneParams, render_scene
from edge_agent.analytics.lines import LineConfig
from edge_agent.analytics.zones import ZoneConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig, build_detector, resolve_model_path
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.pipeline import CameraPipeline
from event_contract import CountIntervalEvent, Event, ZoneIntervalEvent
from ioc_common.backoff import BackoffConfig

pytestmark = pytest.mark.integration

INTERVAL_S = 2
LIVE_S = 8.0
DEAD_S = 11.0
READ_TIMEOUT_S = 2.0


def test_intervals_after_the_camera_dies_carry_zero_coverage_and_downtime(
    tmp_path: Path, devstack_state_dir: Path
) -> None:
    detector_config = DetectorConfig()
    try:
        resolve_model_path(detector_config)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    video, _ = render_scene(SceneParams(duration_s=10.0, width=640, height=360), tmp_path / "scene")
    server = RtspServer(devstack_state_dir, {"scene": video}, loop=True, name="rtsp-dies")
    try:
        server.start()
    except DevstackError as error:
        pytest.fail(f"could not start the RTSP server: {error}", pytrace=False)

    events: list[Event] = []
    lock = threading.Lock()

    def collect(event: Event) -> None:
        with lock:
            events.append(event)

    camera = CameraConfig(
        id="cam-dies",
        url=server.url("scene"),
        read_timeout_s=READ_TIMEOUT_S,
        open_timeout_s=2.0,
        reconnect=BackoffConfig(base_s=0.5, ceiling_s=1.0),
        detector=detector_config,
        tracker=TrackerConfig(),
        lines=(LineConfig(id="main", start=(0.0, 0.5), end=(1.0, 0.5)),),
        zones=(ZoneConfig(id="road", polygon=((0.2, 0.3), (0.8, 0.3), (0.8, 0.9), (0.2, 0.9))),),
    )
    pipeline = CameraPipeline("agent-dies", camera, build_detector(detector_config), collect, intervals_s=(INTERVAL_S,))
    try:
        pipeline.start()
        assert _wait(lambda: pipeline.stats().frames_processed > 0, 30.0), pipeline.stats()
        time.sleep(LIVE_S)
        server.kill()
        time.sleep(1.0)  # a frame already handed over is still analysed
        processed_after_death = pipeline.stats().frames_processed
        time.sleep(DEAD_S - 1.0)
        assert pipeline.stats().state in ("connecting", "down"), pipeline.stats()
        stopped_at = dt.datetime.now(dt.UTC)
    finally:
        pipeline.stop()
        pipeline.join(timeout=30)
        server.stop()
    assert pipeline.stats().frames_processed == processed_after_death  # nothing came after the kill

    with lock:
        counts = [e for e in events if isinstance(e, CountIntervalEvent)]
        zones = [e for e in events if isinstance(e, ZoneIntervalEvent)]
    starts = [e.time for e in counts]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    assert [e.time for e in zones] == starts  # one zone report per interval too
    assert all(e.quality is not None and e.quality.detector_backend == "ssd_mobilenet_oidv4" for e in counts)

    analysed = [e for e in counts if e.quality is not None and e.quality.frames_analysed > 0]
    first_frame_interval, last_frame_interval = analysed[0].time, analysed[-1].time
    watched = [e for e in counts if first_frame_interval < e.time < last_frame_interval]
    death = last_frame_interval + dt.timedelta(seconds=INTERVAL_S)
    # Dead: started once the reader must have noticed, ended before the stop (the stop flushes a partial one).
    dead = [
        e
        for e in counts
        if e.time >= death + dt.timedelta(seconds=READ_TIMEOUT_S)
        and e.time + dt.timedelta(seconds=INTERVAL_S + 0.5) <= stopped_at
    ]
    assert len(watched) >= 2, [(e.time, e.quality) for e in counts]
    assert len(dead) >= 2, [(e.time, e.quality) for e in counts]
    for event in watched:
        assert event.quality is not None
        assert event.quality.coverage >= 0.99, event.quality
        assert event.quality.downtime_s == 0.0, event.quality
        assert event.quality.frames_analysed >= 0.5 * 12 * INTERVAL_S, event.quality  # the clip is 12 frames/s
    for event in dead:
        assert event.quality is not None
        assert (event.quality.coverage, event.quality.frames_analysed) == (0.0, 0), event.quality
        assert event.quality.downtime_s == INTERVAL_S, event.quality
        assert event.counts == ()
    dead_zones = [z for z in zones if z.time >= dead[0].time]
    assert all(z.occupancy_mean is None and z.quality.coverage == 0.0 for z in dead_zones)
    assert any(z.occupancy_max is not None for z in zones if first_frame_interval < z.time < last_frame_interval)


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
