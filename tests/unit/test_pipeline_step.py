"""Pipeline on arrays and on a small generated video, with a real (if simple) detector.

``BrightBlobDetector`` finds the one bright square in a dark picture: a detector
that really looks at pixels, so these tests exercise tracking, counting and
intervals without an ONNX model.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from devstack.video_files import write_video
from edge_agent.analytics.intervals import IntervalEvent
from edge_agent.analytics.lines import LineConfig
from edge_agent.analytics.zones import ZoneConfig
from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.tracker import ByteTracker, TrackerConfig
from edge_agent.perception.types import Detections, Frame
from edge_agent.pipeline import AnalyticsStep, CameraPipeline
from edge_agent.sources.pyav_reader import PyAVReader, ReaderState, ReaderStats
from event_contract import (
    VEHICLE_CLASSES,
    CountBucket,
    CountIntervalEvent,
    Event,
    HealthEvent,
    SourceState,
    ZoneIntervalEvent,
)

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


def count_events(events: tuple[IntervalEvent, ...]) -> list[CountIntervalEvent]:
    return [e for e in events if isinstance(e, CountIntervalEvent)]


def step(*lines: LineConfig, zones: tuple[ZoneConfig, ...] = (), intervals_s: tuple[int, ...] = (60,)) -> AnalyticsStep:
    return AnalyticsStep(
        "agent-1",
        "cam-1",
        BrightBlobDetector(),
        ByteTracker(TrackerConfig()),
        lines=lines,
        zones=zones,
        intervals_s=intervals_s,
        detector_backend="bright_blob",
    )


def test_a_square_driving_down_is_one_car_in_and_its_interval_closes_with_source_time() -> None:
    analytics = step(NORTH)
    results = [analytics.process(frame) for frame in frames_of(square_tops())]

    crossings = [c for r in results for c in r.crossings]
    assert [(c.line_id, c.vehicle_class, c.direction) for c in crossings] == [("north", "car", "in")]
    assert all(len(r.tracked) <= 1 for r in results)
    assert not any(r.events for r in results)  # 07:00 has not ended (plus grace) in source time yet

    later = Frame(square_image(-100), "cam-1", 99, dt.datetime(2025, 3, 1, 7, 1, 3, tzinfo=dt.UTC))
    closed = count_events(analytics.process(later).events)
    assert [(e.time, e.line_id, e.counts) for e in closed] == [
        (
            dt.datetime(2025, 3, 1, 7, 0, tzinfo=dt.UTC),
            "north",
            (CountBucket(vehicle_class="car", direction="in", count=1),),
        )
    ]
    assert {(e.agent_id, e.source_id, e.interval_s) for e in closed} == {("agent-1", "cam-1", 60)}
    flushed = count_events(analytics.flush())
    assert [(e.time.minute, e.counts) for e in flushed] == [(1, ())]


def test_line_drawn_the_other_way_counts_out_and_lines_are_independent() -> None:
    south = LineConfig(id="south", start=(1.0, 0.5), end=(0.0, 0.5))
    beside = LineConfig(id="beside", start=(0.0, 0.1), end=(0.3, 0.9))  # left of the square's path
    analytics = step(south, beside)
    crossings = [c for frame in frames_of(square_tops()) for c in analytics.process(frame).crossings]
    assert [(c.line_id, c.direction) for c in crossings] == [("south", "out")]
    events = count_events(analytics.flush())
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


def test_quality_zones_and_two_interval_lengths_through_the_step() -> None:
    box = ZoneConfig(id="box", polygon=((0.3, 0.6), (0.8, 0.6), (0.8, 0.95), (0.3, 0.95)), exit_grace_s=1.0)
    analytics = step(NORTH, zones=(box,), intervals_s=(60, 10))
    results = [analytics.process(frame, frames_dropped=2 * frame.sequence) for frame in frames_of(square_tops())]
    assert sum(len(r.crossings) for r in results) == 1
    assert [len(r.zones) for r in results] == [1] * len(results)
    assert sum(len(o.entries) for r in results for o in r.zones) == 1
    assert not any(r.events for r in results)  # 07:00:50 .. 07:00:52.3: no interval has ended yet
    events = analytics.tick(dt.datetime(2025, 3, 1, 7, 1, 5, tzinfo=dt.UTC), "live")
    assert sorted((type(e).__name__, e.interval_s, e.time.second) for e in events) == [
        ("CountIntervalEvent", 10, 50),
        ("CountIntervalEvent", 60, 0),
        ("ZoneIntervalEvent", 10, 50),
        ("ZoneIntervalEvent", 60, 0),
    ]
    counts = next(e for e in events if isinstance(e, CountIntervalEvent) and e.interval_s == 10)
    zone = next(e for e in events if isinstance(e, ZoneIntervalEvent) and e.interval_s == 10)
    assert counts.counts == (CountBucket(vehicle_class="car", direction="in", count=1),)
    assert counts.quality is not None
    assert (counts.quality.frames_analysed, counts.quality.frames_dropped) == (24, 2 * 23)
    assert counts.quality.analysed_s == pytest.approx(2.3)  # 23 gaps of 0.1 s after the first frame
    assert counts.quality.coverage == pytest.approx(0.23)
    assert counts.quality.detector_backend == "bright_blob"
    # The square left the zone at 07:00:52.2; the tick, after 1 s of grace, dated its exit there.
    assert (zone.entries, zone.exits, zone.occupancy_max) == (1, 1, 1)
    assert zone.dwell_max_s is not None
    assert 0.5 < zone.dwell_max_s < 1.5
    assert zone.quality == counts.quality
    flushed = analytics.flush()
    assert sorted({(e.interval_s, e.time.minute, e.time.second) for e in flushed}) == [(10, 1, 0), (60, 1, 0)]


def test_ticks_without_frames_close_intervals_with_zero_coverage_and_downtime() -> None:
    analytics = step(NORTH)
    for frame in frames_of(square_tops()):  # 07:00:50.0 .. 07:00:52.3
        analytics.process(frame)
    start = dt.datetime(2025, 3, 1, 7, 0, 52, 300000, tzinfo=dt.UTC)
    events: list[CountIntervalEvent] = []
    for k in range(1, 4 * 200):  # 200 s of ticks every 0.25 s while the reader reconnects
        state: SourceState = "live" if k < 20 else "connecting"  # the reader notices the loss after 5 s
        for event in analytics.tick(start + dt.timedelta(seconds=0.25 * k), state):
            assert isinstance(event, CountIntervalEvent)
            events.append(event)
    assert [e.time.minute for e in events] == [0, 1, 2, 3]  # 07:03 closed at 07:04:02, after 2 s of grace
    assert events[0].counts == (CountBucket(vehicle_class="car", direction="in", count=1),)
    qualities = [e.quality for e in events]
    assert all(q is not None for q in qualities)
    first, *dead = (q for q in qualities if q is not None)
    assert first.analysed_s == pytest.approx(2.3)
    assert (first.downtime_s, first.frames_analysed) == (7.7, 24)
    assert [(q.coverage, q.downtime_s, q.frames_analysed) for q in dead] == [(0.0, 60.0, 0)] * 3


# -- the threaded pipeline on a real H.264 file -------------------------------------------------


def write_square_video(path: Path, tops: list[int]) -> Path:
    return write_video(path, (square_image(top) for top in tops), fps=10)


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
    events: list[Event] = []
    pipeline = CameraPipeline("agent-1", camera(video), BrightBlobDetector(), events.append, intervals_s=(60,))
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
    events: list[Event] = []
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


class SpeedUpClock:
    """Real monotonic time until ``speed_up()``, then ``factor`` times faster (a dead camera's minutes in seconds)."""

    def __init__(self, factor: float) -> None:
        self._factor = factor
        self._switched_at: float | None = None

    def speed_up(self) -> None:
        self._switched_at = time.monotonic()

    def __call__(self) -> float:
        now = time.monotonic()
        if self._switched_at is None:
            return now
        return self._switched_at + (now - self._switched_at) * self._factor


class DyingReader(PyAVReader):
    """Delivers the square clip's frames, then behaves like a camera that went away: state down, no frames."""

    def __init__(self, config: CameraConfig, tops: list[int], clock: SpeedUpClock) -> None:
        super().__init__(config.id, config)
        self._tops = tops
        self._clock = clock
        self._state_now: ReaderState = "connecting"

    def frames(self) -> Generator[Frame, None, None]:
        self._state_now = "live"
        yield from frames_of(self._tops)
        self._state_now = "down"
        self._clock.speed_up()
        while not self.stopping:
            time.sleep(0.05)

    def stats(self) -> ReaderStats:
        return ReaderStats(state=self._state_now, frames_decoded=0, decode_errors=0, reconnects=0, last_error="")


def test_pipeline_ticks_a_dead_camera_into_zero_coverage_intervals(tmp_path: Path) -> None:
    config = camera(tmp_path / "unused.mp4")
    events: list[Event] = []
    clock = SpeedUpClock(40.0)  # once the camera is dead, the 0.25 s polls are 10 s of source time apart
    pipeline = CameraPipeline(
        "agent-1",
        config,
        BrightBlobDetector(),
        events.append,
        intervals_s=(10,),
        reader=DyingReader(config, square_tops(), clock),
        monotonic=clock,
    )
    pipeline.start()
    deadline = time.monotonic() + 30
    while sum(isinstance(e, CountIntervalEvent) for e in events) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    pipeline.stop()
    assert pipeline.join(timeout=30)
    counts = [e for e in events if isinstance(e, CountIntervalEvent)]
    assert len(counts) >= 6
    first = counts[0].quality
    assert first is not None
    # 07:00:50.0 .. 07:00:52.3 analysed (the first frame credits nothing), then down to the interval's end.
    assert (counts[0].time.second, first.frames_analysed) == (50, 24)
    assert first.analysed_s == pytest.approx(2.3)
    assert first.downtime_s == pytest.approx(7.7)
    assert counts[0].counts == (CountBucket(vehicle_class="car", direction="in", count=1),)
    for later in counts[1:-1]:  # the last one is flushed at stop, part of its length
        assert later.quality is not None
        assert (later.quality.coverage, later.quality.downtime_s, later.quality.frames_analysed) == (0.0, 10.0, 0)
