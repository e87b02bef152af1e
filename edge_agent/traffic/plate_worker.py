"""The agent's one plate-reading thread, shared by its cameras: crops in, readings out to each camera's stage.

Reading a plate takes a few hundred milliseconds on a CPU, far longer than a frame, so it cannot run in
a camera's analytics thread. Each camera's ``PlateStage`` decides which crops are worth reading and
``submit``s them; ONE worker thread (one ONNX session per reader config, with its own thread count)
reads them in order and puts each result on the submitting camera's result queue. The stage drains
that queue in its own analytics thread and feeds its own ``PlateVoter``: voters are never shared
between threads, so they need no lock.

Both hand-offs are ``BoundedQueue``s with policy ``drop_oldest``: when plates come faster than they can
be read, the OLDEST crop waiting is dropped (``jobs_dropped``): a vehicle still in view is offered again
by its voter, one that left has had its chance. A result queue that a stalled camera does not drain
drops its oldest result (``results_dropped``). A reader that raises is counted (``read_errors``), its
crop yields no vote, and the worker goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.delivery.queues import BoundedQueue
from edge_agent.plates.reader import PlateRead, PlateReader

log = logging.getLogger(__name__)

POLL_S = 0.2
"""How often an idle worker checks whether it must stop."""


@dataclass(frozen=True, slots=True)
class PlateJob:
    """One vehicle crop to read, from one camera's analytics thread."""

    camera_id: str
    reader_key: str
    """Which reader (one per distinct reader config) reads it."""
    track_id: int
    crop: npt.NDArray[np.uint8]
    """BGR crop of the vehicle; a copy, owned by the job."""
    quality: float
    """``crop_quality`` of the crop: the voter prefers readings of sharper, larger crops."""
    now_s: float
    """Source time of the frame, seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class PlateResult:
    """What the worker read of one job (``read`` None: no plate found)."""

    job: PlateJob
    read: PlateRead | None


@dataclass(frozen=True, slots=True)
class PlateWorkerStats:
    jobs: int
    """Crops accepted."""
    jobs_dropped: int
    """Crops dropped unread because the queue was full (drop_oldest)."""
    queued: int
    reads: int
    """Crops read (with or without a plate found)."""
    plates_found: int
    read_errors: int
    results_dropped: int
    """Results a camera did not take in time (its result queue full, drop_oldest)."""
    busy_s: float
    """Seconds spent reading, since start."""
    last_error: str | None


class PlateWorker:
    """``register`` each camera, ``start()``, ``submit`` jobs from the cameras, ``stop()``."""

    def __init__(
        self,
        readers: Mapping[str, PlateReader],
        *,
        queue_capacity: int,
        result_capacity: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._readers = dict(readers)
        self._jobs: BoundedQueue[PlateJob] = BoundedQueue(queue_capacity, "drop_oldest")
        self._result_capacity = result_capacity
        self._results: dict[str, BoundedQueue[PlateResult]] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._reads = 0
        self._found = 0
        self._errors = 0
        self._busy_s = 0.0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="plate-reader", daemon=True)

    def register(self, camera_id: str) -> BoundedQueue[PlateResult]:
        """The result queue of ``camera_id`` (created once; call before ``start``)."""
        if camera_id not in self._results:
            self._results[camera_id] = BoundedQueue(self._result_capacity, "drop_oldest")
        return self._results[camera_id]

    def submit(self, job: PlateJob) -> bool:
        """Queue ``job``; False when it was refused (stopped, unknown camera or reader) or an older job dropped."""
        if job.camera_id not in self._results or job.reader_key not in self._readers:
            raise ValueError(f"plate job of camera {job.camera_id!r} / reader {job.reader_key!r}: not registered")
        if self._jobs.closed:
            return False
        return self._jobs.put(job)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading; crops still queued are dropped (their vehicles are gone by now)."""
        self._jobs.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def run_pending(self) -> int:
        """Read every queued job now, in the caller's thread (tests, offline analysis); how many were read."""
        done = 0
        while (job := self._jobs.get(timeout=0)) is not None:
            self._read(job)
            done += 1
        return done

    def stats(self) -> PlateWorkerStats:
        queue = self._jobs.stats()
        with self._lock:
            return PlateWorkerStats(
                jobs=queue.put,
                jobs_dropped=queue.dropped,
                queued=queue.depth,
                reads=self._reads,
                plates_found=self._found,
                read_errors=self._errors,
                results_dropped=sum(results.stats().dropped for results in self._results.values()),
                busy_s=self._busy_s,
                last_error=self._last_error,
            )

    def _run(self) -> None:
        while True:
            job = self._jobs.get(timeout=POLL_S)
            if job is None:
                if self._jobs.drained():
                    return
                continue
            if self._jobs.closed:
                return  # stopping: what waits is dropped, not read
            self._read(job)

    def _read(self, job: PlateJob) -> None:
        started = self._clock()
        try:
            read = self._readers[job.reader_key].read(job.crop)
        except Exception as error:  # one bad crop or a model hiccup must not end plate reading
            with self._lock:
                self._errors += 1
                self._last_error = f"camera {job.camera_id}: {type(error).__name__}: {error}"
                errors = self._errors
            if errors == 1 or errors % 100 == 0:
                log.exception("plate reader failed on a crop of camera %s (%d errors so far)", job.camera_id, errors)
            return
        finally:
            elapsed = self._clock() - started
            with self._lock:
                self._busy_s += elapsed
        with self._lock:
            self._reads += 1
            self._found += read is not None
        self._results[job.camera_id].put(PlateResult(job, read))
