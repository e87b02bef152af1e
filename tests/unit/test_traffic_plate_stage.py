"""The plate stage with a fake reader and the real voter: bounded queue, drops counted, voting, passes at the line;
and the camera's traffic outputs: a violation waits for its plate, never longer than plate_wait_s."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.analytics.lines import CountingLine, LineConfig
from edge_agent.evidence.config import EvidenceConfig
from edge_agent.evidence.store import EvidenceStore
from edge_agent.perception.types import Detections, Frame
from edge_agent.plates.config import PlateVoteConfig
from edge_agent.plates.quality import crop_quality
from edge_agent.plates.reader import PlateRead
from edge_agent.plates.vote import PlateVoter
from edge_agent.traffic.camera import CameraTraffic
from edge_agent.traffic.config import PlateCameraConfig
from edge_agent.traffic.plate_stage import PlatePass, PlateStage
from edge_agent.traffic.plate_worker import PlateJob, PlateWorker
from edge_agent.violations.findings import Finding
from event_contract import VEHICLE_CLASSES, Event, PlatePassEvent, ViolationEvent

W, H = 320, 240
T0 = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
FPS = 10
CAR = VEHICLE_CLASSES.index("car")
PASS_LINE = LineConfig(id="pass", start=(0.0, 0.5), end=(1.0, 0.5))
# Each vehicle is painted in its own grey level; the fake reader knows which plate that grey carries.
PLATES = {60: "30A-123.45", 120: "51F-678.90", 180: "43C-111.22"}


class FakeReader:
    """Reads the plate of a vehicle from its grey level; every third read of a vehicle is a weaker misread."""

    def __init__(self, fail: bool = False) -> None:
        self.reads = 0
        self.fail = fail

    def read(self, vehicle_crop: npt.NDArray[np.uint8]) -> PlateRead | None:
        self.reads += 1
        if self.fail:
            raise RuntimeError("model exploded")
        grey = int(np.median(vehicle_crop[..., 0]))
        text = PLATES.get(grey)
        if text is None:
            return None
        if self.reads % 3 == 0:
            text, confidence = text[:-1] + "8", 0.6
        else:
            confidence = 0.95
        return PlateRead(text, confidence, "one_line", True, "white", (5, 5, 40, 20))


def frame_at(index: int, boxes: dict[int, tuple[int, int, int, int, int]]) -> tuple[Frame, Detections]:
    """A frame with each track's box painted in its grey; boxes: track -> (x1, y1, x2, y2, grey)."""
    image = np.zeros((H, W, 3), np.uint8)
    for x1, y1, x2, y2, grey in boxes.values():
        image[y1:y2, x1:x2] = grey
    timestamp = T0 + dt.timedelta(seconds=index / FPS)
    frame = Frame(image, "cam-j12", index, timestamp)
    ids = list(boxes)
    tracked = Detections(
        xyxy=np.array([boxes[t][:4] for t in ids], np.float32).reshape(-1, 4),
        confidence=np.full(len(ids), 0.9, np.float32),
        class_id=np.full(len(ids), CAR, np.int64),
        class_names=tuple(VEHICLE_CLASSES),
        tracker_id=np.array(ids, np.int64),
    )
    return frame, tracked


def driving(
    track_grey: int, start_y: int, frames: int, step: int = 6, x: int = 100
) -> Iterator[tuple[int, int, int, int, int]]:
    for i in range(frames):
        y = start_y + i * step
        yield (x, y, x + 100, y + 70, track_grey)


def make_stage(worker: PlateWorker, **plates: object) -> PlateStage:
    config = PlateCameraConfig.model_validate({"pass_line_id": "pass", "plate_wait_s": 1.0, **plates})
    return PlateStage(
        camera_id="cam-j12",
        reader_key="default",
        config=config,
        voter=PlateVoter(PlateVoteConfig(min_interval_s=0.2, max_reads_per_track=6)),
        submit=worker.submit,
        results=worker.register("cam-j12"),
        quality_of=crop_quality,
    )


def run(
    stage: PlateStage, worker: PlateWorker, tracks: dict[int, list[tuple[int, int, int, int, int]]]
) -> list[PlatePass]:
    """Drive every track's boxes through the stage (reading after each frame), then 3 s of empty frames."""
    line = CountingLine(PASS_LINE, W, H)
    length = max(len(boxes) for boxes in tracks.values())
    passes: list[PlatePass] = []
    for index in range(length + 3 * FPS):
        boxes = {t: b[index] for t, b in tracks.items() if index < len(b)}
        frame, tracked = frame_at(index, boxes)
        crossings = line.update(tracked, frame.timestamp)
        passes.extend(stage.update(frame, tracked, crossings))
        worker.run_pending()
    return passes


def test_a_vehicle_crossing_the_pass_line_gives_one_pass_with_the_voted_plate() -> None:
    worker = PlateWorker({"default": FakeReader()}, queue_capacity=8, result_capacity=8)
    stage = make_stage(worker)
    passes = run(stage, worker, {1: list(driving(60, 10, 28))})
    assert len(passes) == 1
    found = passes[0]
    assert (found.track_id, found.plate.text, found.direction, found.line_id) == (1, "30A-123.45", "in", "pass")
    assert found.plate.reads >= 3, "several reads voted"
    crossing_index = next(i for i, box in enumerate(driving(60, 10, 28)) if box[3] > H / 2)
    assert found.time == T0 + dt.timedelta(seconds=crossing_index / FPS)
    assert found.best is not None
    assert found.best.plate_box == (5, 5, 40, 20)
    stats = stage.stats()
    assert (stats.passes, stats.passes_without_plate, stats.tracks) == (1, 0, 0)


def test_only_vehicles_that_cross_the_line_pass_and_one_without_a_plate_is_counted_not_sent() -> None:
    worker = PlateWorker({"default": FakeReader()}, queue_capacity=8, result_capacity=8)
    stage = make_stage(worker)
    passes = run(
        stage,
        worker,
        {
            1: list(driving(120, 10, 28, x=110)),  # crosses
            2: [(5, 10, 105, 80, 180)] * 20,  # parked above the line: never passes
            3: list(driving(250, 10, 28, x=215)),  # crosses, but the reader finds no plate on it
        },
    )
    assert [(p.track_id, p.plate.text) for p in passes] == [(1, "51F-678.90")]
    assert stage.stats().passes_without_plate == 1
    assert stage.stats().tracks == 0, "ended tracks are forgotten"


def test_without_a_pass_line_a_vehicle_passes_when_its_track_ends() -> None:
    worker = PlateWorker({"default": FakeReader()}, queue_capacity=8, result_capacity=8)
    stage = make_stage(worker, pass_line_id=None)
    passes = run(stage, worker, {4: [(10, 10, 110, 80, 180)] * 10})
    assert [(p.track_id, p.plate.text, p.direction) for p in passes] == [(4, "43C-111.22", None)]


def test_the_read_queue_is_bounded_dropping_the_oldest_and_counting() -> None:
    reader = FakeReader()
    worker = PlateWorker({"default": reader}, queue_capacity=2, result_capacity=8)
    stage = make_stage(worker)
    boxes = {t: (10 + 30 * (t % 3), 10 + 70 * (t // 3), 110 + 30 * (t % 3), 80 + 70 * (t // 3), 60) for t in range(5)}
    frame, tracked = frame_at(0, boxes)
    stage.update(frame, tracked, ())
    stats = worker.stats()
    assert (stats.jobs, stats.jobs_dropped, stats.queued) == (5, 3, 2)
    assert worker.run_pending() == 2
    assert reader.reads == 2
    assert stage.stats().crops_refused == 3


def test_a_reader_that_raises_is_counted_and_reading_goes_on() -> None:
    worker = PlateWorker({"default": FakeReader(fail=True)}, queue_capacity=4, result_capacity=4)
    worker.register("cam-j12")
    crop = np.full((70, 100, 3), 60, np.uint8)
    for track in (1, 2):
        worker.submit(PlateJob("cam-j12", "default", track, crop, 0.5, 0.0))
    assert worker.run_pending() == 2
    stats = worker.stats()
    assert (stats.read_errors, stats.reads) == (2, 0)
    assert stats.last_error is not None
    assert "model exploded" in stats.last_error


def test_an_unknown_camera_or_reader_is_a_clear_error() -> None:
    worker = PlateWorker({"default": FakeReader()}, queue_capacity=4, result_capacity=4)
    with pytest.raises(ValueError, match="not registered"):
        worker.submit(PlateJob("cam-x", "default", 1, np.zeros((9, 9, 3), np.uint8), 0.1, 0.0))


def red_light(track_id: int, index: int) -> Finding:
    return Finding(
        rule_id="red-north",
        violation_type="red_light",
        category="violation",
        track_id=track_id,
        vehicle_class="car",
        time=T0 + dt.timedelta(seconds=index / FPS),
        started_at=None,
        line_id=None,
        zone_id=None,
        signal_state="red",
        duration_s=None,
        related_track_ids=(),
        box_xyxy=(100.0, 100.0, 200.0, 170.0),
    )


def test_a_violation_waits_for_its_plate_and_one_without_goes_at_the_deadline(tmp_path: Path) -> None:
    worker = PlateWorker({"default": FakeReader()}, queue_capacity=8, result_capacity=8)
    stage = make_stage(worker, plate_wait_s=1.0)
    store = EvidenceStore(EvidenceConfig(), tmp_path / "evidence")
    traffic = CameraTraffic(
        "agent-1",
        "cam-j12",
        violations=None,
        plates=stage.config,
        plate_stage=stage,
        evidence=store,
        evidence_config=EvidenceConfig(),
    )
    line = CountingLine(PASS_LINE, W, H)
    boxes = list(driving(60, 10, 28))
    events: list[Event] = []
    for index in range(40):
        frame, tracked = frame_at(index, {1: boxes[index]} if index < len(boxes) else {})
        crossings = line.update(tracked, frame.timestamp)
        # Track 1 runs the red at its first frame (before any read); track 99 was never seen by the plate stage.
        findings = [red_light(1, 0), red_light(99, 0)] if index == 0 else []
        events.extend(traffic.on_frame(frame, tracked, crossings, findings, ()))
        worker.run_pending()
    store.close()
    violations = [e for e in events if isinstance(e, ViolationEvent)]
    passes = [e for e in events if isinstance(e, PlatePassEvent)]
    by_track = {e.track_id: e for e in violations}
    assert set(by_track) == {1, 99}
    assert by_track[1].plate == "30A-123.45"
    assert len(by_track[1].evidence) == 2, "frame keyframe + plate keyframe"
    assert by_track[99].plate is None
    assert len(by_track[99].evidence) == 1
    assert [(p.plate, len(p.evidence)) for p in passes] == [("30A-123.45", 1)]
    for ref in (*by_track[1].evidence, *passes[0].evidence):
        assert ref.sha256 is not None
        assert (tmp_path / "evidence" / f"{ref.sha256}.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert traffic.stats().violations_with_plate == 1
