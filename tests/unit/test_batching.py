"""The shared batching detector: batches across camera threads, bounded queue policies, timeouts, close, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.agent import build_camera_detectors
from edge_agent.config import AgentConfig
from edge_agent.perception.detectors import DetectorConfig
from edge_agent.perception.detectors.batching import (
    BatchClient,
    BatchingConfig,
    BatchingDetector,
    DetectorClosedError,
    DetectorOverloadedError,
    DetectorTimeoutError,
    run_batch,
)
from edge_agent.perception.types import Detections
from event_contract import VEHICLE_CLASSES

Image = npt.NDArray[np.uint8]
WAIT_S = 10.0
"""Upper bound for waits that normally end at once (a deadlock fails the test instead of hanging it)."""


def image(value: int) -> Image:
    return np.full((4, 4, 3), value, np.uint8)


def marker(value: int) -> Detections:
    """A detection whose box says which image it came from."""
    box = np.array([[value, 0, value + 1, 1]], np.float32)
    return Detections(box, np.array([0.9], np.float32), np.array([2], np.int64), tuple(VEHICLE_CLASSES))


class RecordingBackend:
    """Batch backend that remembers batch sizes; optionally holds each batch until released, or fails."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_next = False
        if not hold:
            self.release.set()

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(VEHICLE_CLASSES)

    def detect(self, img: Image) -> Detections:
        return self.detect_batch([img])[0]

    def detect_batch(self, images: Sequence[Image]) -> list[Detections]:
        self.batches.append(len(images))
        self.started.set()
        assert self.release.wait(WAIT_S)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("GPU fell off the bus")
        return [marker(int(img[0, 0, 0])) for img in images]


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def in_thread(client: BatchClient, value: int, results: dict[int, object]) -> threading.Thread:
    def call() -> None:
        try:
            results[value] = client.detect(image(value))
        except Exception as error:
            results[value] = error

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def shared(
    backend: RecordingBackend, clock: Callable[[], float] = time.monotonic, **settings: object
) -> BatchingDetector:
    config = BatchingConfig.model_validate({"enabled": True, **settings})
    detector = BatchingDetector(backend, config, name="test", clock=clock)
    detector.start()
    return detector


def test_frames_from_several_cameras_run_as_one_batch_each_getting_its_own_answer() -> None:
    backend = RecordingBackend()
    # A clock that never advances: max_wait never expires, so the batch forms only when all three are there.
    detector = shared(backend, clock=lambda: 0.0, max_batch=3, max_wait_ms=1000)
    results: dict[int, object] = {}
    threads = [in_thread(detector.client(f"cam-{v}"), v, results) for v in (10, 20, 30)]
    for thread in threads:
        thread.join(WAIT_S)
    assert backend.batches == [3]
    for value in (10, 20, 30):
        got = results[value]
        assert isinstance(got, Detections)
        assert float(got.xyxy[0, 0]) == value
    stats = detector.stats()
    assert (stats.requests, stats.batches, stats.frames_run, stats.largest_batch, stats.mean_batch) == (3, 1, 3, 3, 3.0)
    detector.close()


def test_a_lone_frame_runs_after_max_wait_without_a_full_batch() -> None:
    backend = RecordingBackend()
    detector = shared(backend, max_batch=8, max_wait_ms=1)
    assert float(detector.client("cam").detect(image(7)).xyxy[0, 0]) == 7
    assert backend.batches == [1]
    detector.close()


@pytest.mark.parametrize("policy", ["drop_oldest", "reject_newest"])
def test_a_full_queue_drops_by_its_named_policy_and_counts_it(policy: str) -> None:
    backend = RecordingBackend(hold=True)
    detector = shared(backend, max_batch=1, max_wait_ms=0, queue_capacity=1, queue_policy=policy)
    results: dict[int, object] = {}
    running = in_thread(detector.client("a"), 1, results)
    assert backend.started.wait(WAIT_S)  # frame 1 is inside the backend
    waiting = in_thread(detector.client("b"), 2, results)
    wait_until(lambda: detector.stats().depth == 1)  # frame 2 fills the queue
    newest = in_thread(detector.client("c"), 3, results)
    if policy == "drop_oldest":
        waiting.join(WAIT_S)  # answered at once, while the backend is still busy
        assert isinstance(results[2], DetectorOverloadedError)
    else:
        newest.join(WAIT_S)
        assert isinstance(results[3], DetectorOverloadedError)
    backend.release.set()
    for thread in (running, waiting, newest):
        thread.join(WAIT_S)
    kept = 3 if policy == "drop_oldest" else 2
    assert isinstance(results[1], Detections)
    assert isinstance(results[kept], Detections)
    assert detector.stats().dropped == 1
    detector.close()


def test_a_camera_never_waits_longer_than_the_request_timeout() -> None:
    backend = RecordingBackend(hold=True)
    detector = shared(backend, max_batch=1, max_wait_ms=0, request_timeout_s=0.05)
    client = detector.client("cam")
    with pytest.raises(DetectorTimeoutError, match=r"within 0\.05 s"):
        client.detect(image(1))  # the backend is stuck on it
    with pytest.raises(DetectorTimeoutError):
        client.detect(image(2))  # still stuck: this one times out in the queue and is taken back
    assert detector.stats().timeouts == 2
    assert detector.stats().depth == 0
    backend.release.set()
    assert float(client.detect(image(3)).xyxy[0, 0]) == 3  # recovered: the worker skipped nothing it owed
    detector.close()


def test_close_answers_waiting_frames_and_refuses_new_ones() -> None:
    backend = RecordingBackend(hold=True)
    detector = shared(backend, max_batch=1, max_wait_ms=0)
    results: dict[int, object] = {}
    running = in_thread(detector.client("a"), 1, results)
    assert backend.started.wait(WAIT_S)
    waiting = in_thread(detector.client("b"), 2, results)
    wait_until(lambda: detector.stats().depth == 1)
    closer = threading.Thread(target=detector.close)
    closer.start()
    waiting.join(WAIT_S)
    assert isinstance(results[2], DetectorClosedError)
    backend.release.set()
    for thread in (running, closer):
        thread.join(WAIT_S)
    assert isinstance(results[1], Detections)  # the batch already running still gets its answer
    with pytest.raises(DetectorClosedError):
        detector.client("a").detect(image(3))


def test_a_failing_batch_fails_its_frames_only_and_is_counted() -> None:
    backend = RecordingBackend()
    detector = shared(backend, max_batch=4, max_wait_ms=1)
    backend.fail_next = True
    with pytest.raises(RuntimeError, match="fell off the bus"):
        detector.client("cam").detect(image(1))
    assert float(detector.client("cam").detect(image(2)).xyxy[0, 0]) == 2
    assert detector.stats().errors == 1
    detector.close()


def test_unstarted_detectors_refuse_and_plain_detectors_run_one_by_one() -> None:
    detector = BatchingDetector(RecordingBackend(), BatchingConfig(enabled=True))
    with pytest.raises(RuntimeError, match="not started"):
        detector.client("cam").detect(image(1))

    class Plain:
        class_names = tuple(VEHICLE_CLASSES)

        def detect(self, img: Image) -> Detections:
            return marker(int(img[0, 0, 0]))

    results = run_batch(Plain(), [image(4), image(5)])
    assert [float(d.xyxy[0, 0]) for d in results] == [4, 5]


def test_the_agent_shares_one_model_between_cameras_with_the_same_batched_settings() -> None:
    batched = DetectorConfig(batching=BatchingConfig(enabled=True)).model_dump(mode="json")
    config = AgentConfig.model_validate(
        {
            "agent_id": "a",
            "central": {"url": "http://127.0.0.1:9", "token": "t"},
            "cameras": [
                {
                    "id": f"cam-{i}",
                    "url": "x.mp4",
                    "lines": [{"id": "l", "start": [0, 0.5], "end": [1, 0.5]}],
                    **({"detector": batched} if i < 3 else {}),
                }
                for i in range(4)
            ],
        }
    )
    built: list[DetectorConfig] = []

    def factory(settings: DetectorConfig) -> RecordingBackend:
        built.append(settings)
        return RecordingBackend()

    detectors, shared_detectors = build_camera_detectors(config, factory)
    assert len(built) == 2  # one shared model for cam-0..2, one of its own for cam-3
    assert len(shared_detectors) == 1
    assert all(isinstance(detectors[f"cam-{i}"], BatchClient) for i in range(3))
    assert isinstance(detectors["cam-3"], RecordingBackend)
    with pytest.raises(ValueError, match="cannot be shared"):
        DetectorConfig(backend="motion", batching=BatchingConfig(enabled=True))
