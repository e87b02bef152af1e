"""Pipeline on arrays and on a small generated video, with a real (if simple) detector.

``BrightBlobDetector`` finds the one bright square in a dark picture: a detector
that really looks at pixels, so these tests exercise tracking, counting and
intervals without an ONNX model.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.analytics.lines import LineConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Detections, Frame
from edge_agent.pipeline import AnalyticsStep, CameraPipeline
from event_contract import VEHICLE_CLASSES, CountBucket, CountIntervalEvent, HealthEvent

START = dt.datetime(2025, 3, 1, 7, 0, 50, tzinfo=dt.UTC)
WIDTH, HEIGHT, SIDE = 160, 120, 20
NORTH = LineConfig(id="north", start=(0.0, 0.5), end=(1.0, 0.5))


class BrightBlobDetector:
    """Boxes the bright pixels of a dark image as one car (nothing when there are none)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls = 0
        self._gate = gate

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(VEHICLE_CLASSES)

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        if self._gate is not None:
            self._gate.wait(timeout=30)
        self.calls += 1
        ys, xs = np.nonzero(image.max(axis=2) > 128)
        if len(xs) == 0:
            return Detections.empty(self.class_names)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=np.float32)
        car = VEHICLE_CLASSES.index("car")
        return Detections(box, np.array([0.9], np.float32), np.array([car], np.int64), self.class_names)


def square_image(top: int) -> npt.NDArray[np.uint8]:
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[max(top, 0) : max(top + SIDE, 0), 70 : 70 + SIDE] = 255
    return image


def square_tops(step: int = 4) -> list[int]:
    """A square driving from the top to the bottom of the picture, crossing y = HEIGHT/2 once."""
    return list(range(5, HEIGHT - SIDE, step))


def frames_of(tops: list[int], source_id: str = "cam-1") -> Iterator[Frame]:
    for index, top in enumerate(tops):
        yield Frame(square_image(top), source_id, index, START + dt.timedelta(seconds=0.1 * index))


def step(*lines: LineConfig) -> AnalyticsStep:
    return AnalyticsStep(
        "agent-1", "cam-1", BrightBlobDetector(), ByteTracker(TrackerConfig()), lines=lines, interval_s=60
    )


def test_a_square_driving_down_is_one_car_in_and_its_interval_closes_with_source_time() -> None:
    analytics = step(NORTH)
    results = [analytics.process(frame) for frame in frames_of(square_tops())]

    crossings = [c for r in results for c in r.crossings]
    assert [(c.line_id, c.vehicle_class, c.direction) for c in crossings] == [("north", "car", "in")]
    assert all(len(r.tracked) <= 1 for r in results)
    assert not any(r.events for r in results)  # 07:00 has not ended (plus grace) in source time yet

    later = Frame(square_image(-100), "cam-1", 99, dt.datetime(2025, 3, 1, 7, 1, 3, tzinfo=dt.UTC))
    closed = analytics.process(later).events
    assert [(e.time, e.line_id, e.counts) for e in closed] == [
        (
            dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC),
            "north",
            (CountBucket(vehicle_class="car", direction="in", count=1),),
        )
    ]
    assert {(e.agent_id, e.source_id, e.interval_s) for e in closed} == {("agent-1", "cam-1", 60)}
    flushed = analytics.flush()
    assert [(e.time.minute, e.counts) for e in flushed] == [(1, ())]


def test_line_drawn_the_other_way_counts_out_and_lines_are_independent() -> None:
    south = LineConfig(id="south", start=(1.0, 0.5), end=(0.0, 0.5))
    beside = LineConfig(id="beside", start=(0.0, 0.1), end=(0.3, 0.9))  # left of the square's path
    analytics = step(south, beside)
    crossings = [c for frame in frames_of(square_tops()) for c in analytics.process(frame).crossings]
    assert [(c.line_id, c.direction) for c in crossings] == [("south", "out")]
    events = analytics.flush()
    assert {e.line_id: e.counts for e in events} == {
        "south": (CountBucket(vehicle_class="car", direction="out", count=1),),
        "beside": (),
    }


def test_lines_follow_the_frame_size() -> None:
    analytics = step(NORTH)
    small = [Frame(f.image[::2, ::2].copy(), f.source_id, f.sequence, f.timestamp) for f in frames_of(square_tops())]
    crossings = [c for frame in small for c in analytics.process(frame).crossings]
    assert len(crossings) == 1


def test_frame_of_another_camera_is_refused() -> None:
    analytics = step(NORTH)
    with pytest.raises(ValueError, match="cam-2"):
        analytics.process(next(frames_of([5], source_id="cam-2")))


# -- the threaded pipeline on a real H.264 file -------------------------------------------------


def write_square_video(path: Path, tops: list[int]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        for top in tops:
            for packet in stream.encode(av.VideoFrame.from_ndarray(square_image(top), format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def camera(video: Path, **overrides: object) -> CameraConfig:
    settings: dict[str, object] = {
        "id": "cam-1",
        "url": str(video),
        "realtime": False,
        "on_end": "stop",
        "start_time": START,
        "queue_policy": "block",
        "queue_capacity": 4,
        "detector": DetectorConfig(),
        "lines": [NORTH],
    }
    settings.update(overrides)
    return CameraConfig.model_validate(settings)


def test_pipeline_reads_counts_flushes_and_reports_health(tmp_path: Path) -> None:
    tops = square_tops() + [HEIGHT] * 5  # the square leaves the picture
    video = write_square_video(tmp_path / "square.mp4", tops)
    events: list[CountIntervalEvent | HealthEvent] = []
    pipeline = CameraPipeline("agent-1", camera(video), BrightBlobDetector(), events.append, interval_s=60)
    pipeline.start()
    assert pipeline.join(timeout=60)

    stats = pipeline.stats()
    assert stats.frames_decoded == stats.frames_processed == len(tops)
    assert (stats.frames_dropped, stats.crossings, stats.analytics_errors) == (0, 1, 0)
    assert stats.source_ended
    counts = [e for e in events if isinstance(e, CountIntervalEvent)]
    assert [(e.time, e.counts) for e in counts] == [
        (dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC), (CountBucket(vehicle_class="car", direction="in", count=1),))
    ]
    health = [e for e in events if isinstance(e, HealthEvent)]
    assert [h.state for h in (health[0], health[-1])] == ["starting", "stopped"]
    assert health[-1].frames_processed == len(tops)
    assert stats.events_emitted == len(events)


def test_latest_frame_mailbox_drops_what_analytics_cannot_take(tmp_path: Path) -> None:
    tops = square_tops()
    video = write_square_video(tmp_path / "square.mp4", tops)
    gate = threading.Event()
    detector = BrightBlobDetector(gate)
    events: list[CountIntervalEvent | HealthEvent] = []
    pipeline = CameraPipeline(
        "agent-1", camera(video, queue_policy="drop_oldest", queue_capacity=1), detector, events.append
    )
    pipeline.start()
    # Analytics is stuck on its first frame until the reader has read the whole file.
    while not pipeline.stats().source_ended:
        time.sleep(0.01)
    gate.set()
    assert pipeline.join(timeout=60)

    stats = pipeline.stats()
    assert stats.frames_decoded == len(tops)
    # Analytics saw the frame it was stuck on and then only the newest one; the rest were dropped.
    assert stats.frames_processed + stats.frames_dropped == len(tops)
    assert stats.frames_processed <= 2
