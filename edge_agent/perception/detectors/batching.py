"""One detector shared by several cameras, running their frames as batches (one GPU, many cameras).

Each camera's analytics thread calls ``client.detect(image)`` as with any detector; the call
puts a request into a bounded queue and waits for its answer. A worker thread takes the
first waiting request, then waits until ``max_batch`` requests are there or ``max_wait_ms``
have passed since that first one arrived, and runs them as one batch
(``BatchDetector.detect_batch``; one inference when the model's batch is dynamic).

Nothing waits forever:

- the queue holds ``queue_capacity`` requests; when full, the named ``queue_policy`` decides:
  ``drop_oldest`` answers the oldest waiting request at once with ``DetectorOverloadedError``
  (its camera has newer frames coming; the newest frame always gets in), ``reject_newest``
  refuses the new one instead. Either way the drop is counted;
- a caller waits at most ``request_timeout_s`` and then gets ``DetectorTimeoutError``
  (counted); the worker skips requests whose caller gave up;
- ``close()`` answers everything still queued with ``DetectorClosedError``.

A camera pipeline counts these errors as analytics errors of that frame and goes on with
the next. Only stateless backends may be shared: never the motion backend.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.perception.detector import Detector
from edge_agent.perception.types import Detections

log = logging.getLogger(__name__)

BatchQueuePolicy = Literal["drop_oldest", "reject_newest"]
Image = npt.NDArray[np.uint8]


class BatchingConfig(BaseModel):
    """Sharing one detector between cameras and batching their frames; off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False,
        description="Cameras with identical detector settings share one model instance that runs their frames "
        "as batches. Pays off on a GPU; on a few CPU cores it mostly saves memory (benchmarks/detector_backends.py "
        "measures it). Not for backend 'motion', which keeps per-camera state.",
    )
    max_batch: int = Field(default=8, ge=1, le=256, description="Most frames run as one batch.")
    max_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="Longest wait after the first queued frame for more frames to fill the batch (latency cost).",
    )
    queue_capacity: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Frames waiting for the detector at most; normally at most one per camera is waiting.",
    )
    queue_policy: BatchQueuePolicy = Field(
        default="drop_oldest",
        description="When the queue is full: drop_oldest answers the oldest waiting frame with an overload error "
        "(its camera moves on to newer frames); reject_newest refuses the new frame. Both are counted.",
    )
    request_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="Longest a camera waits for its frame's detections before giving up on that frame (counted).",
    )


class DetectorOverloadedError(RuntimeError):
    """The shared detector's queue was full; this frame was dropped by the queue policy."""


class DetectorTimeoutError(TimeoutError):
    """No answer within request_timeout_s; the frame is given up."""


class DetectorClosedError(RuntimeError):
    """The shared detector was closed before this frame ran."""


@runtime_checkable
class BatchDetector(Detector, Protocol):
    """A detector that can run several images (of any sizes) in one call, in order."""

    def detect_batch(self, images: Sequence[Image]) -> list[Detections]: ...


def run_batch(detector: Detector, images: Sequence[Image]) -> list[Detections]:
    """``detect_batch`` where the backend has it, else one ``detect`` per image."""
    if isinstance(detector, BatchDetector):
        return detector.detect_batch(images)
    return [detector.detect(image) for image in images]


@dataclass(frozen=True, slots=True)
class BatchingStats:
    requests: int
    batches: int
    frames_run: int
    largest_batch: int
    dropped: int
    """Requests answered with DetectorOverloadedError by the queue policy."""
    timeouts: int
    """Requests whose caller stopped waiting after request_timeout_s."""
    errors: int
    """Batches whose backend raised (every frame in it got the error)."""
    depth: int

    @property
    def mean_batch(self) -> float:
        return self.frames_run / self.batches if self.batches else 0.0


@dataclass(eq=False)
class _Request:
    image: Image
    source_id: str
    done: threading.Event = field(default_factory=threading.Event)
    result: Detections | None = None
    error: BaseException | None = None
    abandoned: bool = False

    def answer(self, result: Detections | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class BatchingDetector:
    """Owns one backend detector and a worker thread; ``client(camera_id)`` gives each camera its ``Detector``."""

    def __init__(
        self,
        backend: Detector,
        config: BatchingConfig,
        *,
        name: str = "detector",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._config = config
        self._name = name
        self._clock = clock
        self._queue: deque[_Request] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._requests = self._batches = self._frames_run = self._largest = 0
        self._dropped = self._timeouts = self._errors = 0
        self._first_arrival = 0.0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._backend.class_names

    @property
    def backend(self) -> Detector:
        return self._backend

    @property
    def name(self) -> str:
        return self._name

    def client(self, source_id: str) -> BatchClient:
        return BatchClient(self, source_id)

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._work, name=f"batcher-{self._name}", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker; frames still queued are answered with DetectorClosedError."""
        with self._lock:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._wake.notify_all()
        for request in pending:
            request.answer(error=DetectorClosedError(f"{self._name}: shared detector closed"))
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> BatchingStats:
        with self._lock:
            return BatchingStats(
                self._requests,
                self._batches,
                self._frames_run,
                self._largest,
                self._dropped,
                self._timeouts,
                self._errors,
                len(self._queue),
            )

    def submit(self, image: Image, source_id: str) -> Detections:
        """Queue ``image`` and wait for its detections (raises the errors described in the module doc)."""
        request = _Request(image, source_id)
        refused: _Request | None = None
        with self._lock:
            if self._closed:
                raise DetectorClosedError(f"{self._name}: shared detector is closed")
            if self._thread is None:
                raise RuntimeError(f"{self._name}: shared detector not started (call start())")
            self._requests += 1
            if len(self._queue) >= self._config.queue_capacity:
                self._dropped += 1
                if self._config.queue_policy == "reject_newest":
                    raise DetectorOverloadedError(
                        f"{self._name}: {len(self._queue)} frames already waiting; frame of {source_id} refused"
                    )
                refused = self._queue.popleft()
            if not self._queue:
                self._first_arrival = self._clock()
            self._queue.append(request)
            self._wake.notify_all()
        if refused is not None:
            refused.answer(error=DetectorOverloadedError(f"{self._name}: queue full; dropped for a newer frame"))
        if not request.done.wait(self._config.request_timeout_s):
            with self._lock:
                request.abandoned = True
                if request in self._queue:
                    self._queue.remove(request)
                self._timeouts += 1
            raise DetectorTimeoutError(
                f"{self._name}: no detections for {source_id} within {self._config.request_timeout_s} s"
            )
        if request.error is not None:
            raise request.error
        assert request.result is not None  # answer() always sets one of the two
        return request.result

    # -- worker ----------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                results = run_batch(self._backend, [request.image for request in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"backend returned {len(results)} results for {len(batch)} images")
            except Exception as error:
                with self._lock:
                    self._errors += 1
                log.exception("%s: batch of %d failed", self._name, len(batch))
                for request in batch:
                    request.answer(error=error)
                continue
            for request, result in zip(batch, results, strict=True):
                request.answer(result=result)

    def _next_batch(self) -> list[_Request] | None:
        """Wait for a first request, then up to max_wait_ms for the batch to fill; None once closed."""
        max_wait_s = self._config.max_wait_ms / 1000.0
        with self._lock:
            while True:
                while not self._queue and not self._closed:
                    self._wake.wait()
                while not self._closed and 0 < len(self._queue) < self._config.max_batch:
                    remaining = self._first_arrival + max_wait_s - self._clock()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if self._closed:
                    return None
                if self._queue:  # callers that timed out meanwhile took their requests back
                    break
            batch = [self._queue.popleft() for _ in range(min(self._config.max_batch, len(self._queue)))]
            if self._queue:
                self._first_arrival = self._clock()  # the leftovers have waited already; start their clock now
            self._batches += 1
            self._frames_run += len(batch)
            self._largest = max(self._largest, len(batch))
            return batch


class BatchClient:
    """One camera's view of a ``BatchingDetector``: a plain ``Detector``."""

    def __init__(self, shared: BatchingDetector, source_id: str) -> None:
        self._shared = shared
        self.source_id = source_id

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._shared.class_names

    def detect(self, image: Image) -> Detections:
        return self._shared.submit(image, self.source_id)
