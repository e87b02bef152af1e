"""Measured runs of whole camera pipelines: offline at full speed, and live from a real RTSP server.

Each run builds real ``CameraPipeline`` objects (reader -> mailbox -> detect -> track -> count ->
intervals) exactly as the agent does, and watches them through the pipeline's frame observer:

- per-stage time per analysed frame: decode and BGR conversion from the reader's counters; motion
  gate, inference, tracking and counting from the step's ``StageTimings``;
- frame-to-event latency: from the frame's capture time (its stream timestamp, mapped to the wall
  clock) to the moment the analytics step returned that frame's crossings, i.e. when a count is
  known; it includes network, decoding, the wait in the mailbox and the analysis;
- CPU (process CPU seconds per wall second, i.e. cores busy) and memory (resident set size).
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import CameraConfig
from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.motion_gate import build_motion_gate
from edge_agent.pipeline import CameraPipeline, StepResult
from edge_agent.sources.pyav_reader import PyAVReader
from event_contract import Event

LINE = {"id": "line-main", "start": [0.0, 0.42], "end": [1.0, 0.42]}
"""The rendered scene's counting line (devstack.scene.LINE_ROW_FRACTION)."""


@dataclass
class _Samples:
    """What the observers saw; appended from the analytics threads (list.append is atomic)."""

    latencies_s: list[float] = field(default_factory=list)
    gate_s: list[float] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)
    track_s: list[float] = field(default_factory=list)
    count_s: list[float] = field(default_factory=list)
    detector_runs: int = 0
    recording: bool = False

    def observe(self, frame_timestamp: dt.datetime, result: StepResult) -> None:
        if not self.recording:
            return
        self.latencies_s.append((dt.datetime.now(dt.UTC) - frame_timestamp).total_seconds())
        timings = result.timings
        self.gate_s.append(timings.gate_s)
        self.detect_s.append(timings.detect_s)
        self.track_s.append(timings.track_s)
        self.count_s.append(timings.count_s)
        self.detector_runs += int(timings.detector_ran)


def _mean_ms(values: Sequence[float]) -> float:
    return 1000 * statistics.fmean(values) if values else 0.0


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mib() -> float:
    """Resident set size of this process now."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True, slots=True)
class RunSetup:
    """One measured run: which cameras, what they detect, how often."""

    urls: tuple[str, ...]
    detector: DetectorConfig
    analysed_fps: float
    live: bool
    tracker: dict[str, Any]
    motion_gate: dict[str, Any] | None = None
    """The camera's ``motion_gate`` section, when the gate is on."""
    decoder: str = "auto"
    """The readers' ``decoder``: auto (NVDEC where a CUDA device decodes the codec), cpu or nvdec."""


def camera_config(index: int, url: str, setup: RunSetup) -> CameraConfig:
    reading: dict[str, Any] = (
        {"queue_policy": "drop_oldest", "queue_capacity": 1}
        if setup.live
        # Offline: the clip over and over as fast as the pipeline goes, every delivered frame analysed.
        else {"realtime": False, "loop": True, "queue_policy": "block", "queue_capacity": 4}
    )
    section: dict[str, Any] = {
        "id": f"cam-{index}",
        "url": url,
        "max_fps": setup.analysed_fps,
        "decoder": setup.decoder,
        "detector": setup.detector.model_dump(),
        "tracker": setup.tracker,
        "lines": [LINE],
        **reading,
    }
    if setup.motion_gate is not None:
        section["motion_gate"] = setup.motion_gate
    return CameraConfig.model_validate(section)


class _Cameras:
    """N pipelines built as the agent builds them, with their readers kept at hand for counters."""

    def __init__(self, setup: RunSetup) -> None:
        self.samples = _Samples()
        self.readers: list[PyAVReader] = []
        self.pipelines: list[CameraPipeline] = []
        for index, url in enumerate(setup.urls):
            config = camera_config(index, url, setup)
            reader = PyAVReader(config.id, config)
            self.readers.append(reader)
            self.pipelines.append(
                CameraPipeline(
                    "bench",
                    config,
                    build_detector(config.detector),
                    self._discard,
                    reader=reader,
                    observer=lambda frame, result: self.samples.observe(frame.timestamp, result),
                    gate=build_motion_gate(config.motion_gate),
                )
            )

    @staticmethod
    def _discard(_event: Event) -> None:
        """Events go nowhere: the uplink is not what is measured here."""

    def totals(self) -> _Totals:
        """Counters summed over every camera."""
        readers = [r.stats() for r in self.readers]
        pipelines = [p.stats() for p in self.pipelines]
        return _Totals(
            decoded=sum(r.frames_decoded for r in readers),
            analysed=sum(p.frames_processed for p in pipelines),
            dropped=sum(p.frames_dropped for p in pipelines),
            decode_s=sum(r.decode_seconds for r in readers),
            convert_s=sum(r.convert_seconds for r in readers),
        )


@dataclass(frozen=True, slots=True)
class _Totals:
    decoded: int
    analysed: int
    dropped: int
    decode_s: float
    convert_s: float

    def __sub__(self, earlier: _Totals) -> _Totals:
        return _Totals(
            self.decoded - earlier.decoded,
            self.analysed - earlier.analysed,
            self.dropped - earlier.dropped,
            self.decode_s - earlier.decode_s,
            self.convert_s - earlier.convert_s,
        )


def _stage_ms(samples: _Samples, totals: _Totals) -> dict[str, float]:
    return {
        "decode_ms_per_decoded_frame": 1000 * totals.decode_s / max(totals.decoded, 1),
        "decode_ms_per_analysed_frame": 1000 * totals.decode_s / max(totals.analysed, 1),
        "convert_ms": 1000 * totals.convert_s / max(totals.analysed, 1),
        "gate_ms": _mean_ms(samples.gate_s),
        "infer_ms": _mean_ms(samples.detect_s),
        "track_ms": _mean_ms(samples.track_s),
        "count_ms": _mean_ms(samples.count_s),
    }


def run_cameras(setup: RunSetup, source_fps: float, warmup_s: float, seconds: float) -> dict[str, Any]:
    """N cameras for ``seconds`` after ``warmup_s``: throughput, latency, stage costs, CPU, memory.

    Live cameras: whether each kept up with real time. Offline (looping files, no pacing): how many
    cameras of real time the frames processed are worth (``cameras``).
    """
    cameras = _Cameras(setup)
    for pipeline in cameras.pipelines:
        pipeline.start()
    try:
        time.sleep(warmup_s)
        before = [(r.stats().frames_decoded, p.stats().frames_processed) for r, p in _pairs(cameras)]
        totals0, cpu0, started = cameras.totals(), _cpu_seconds(), time.perf_counter()
        cameras.samples.recording = True
        stop = threading.Event()
        stop.wait(seconds)
        cameras.samples.recording = False
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu0
        after = [(r.stats().frames_decoded, p.stats().frames_processed) for r, p in _pairs(cameras)]
        totals1 = cameras.totals()
        rss = rss_mib()
    finally:
        for pipeline in cameras.pipelines:
            pipeline.stop()
        for pipeline in cameras.pipelines:
            pipeline.join(30)
    per_camera = [
        {"decoded_fps": (a[0] - b[0]) / elapsed, "analysed_fps": (a[1] - b[1]) / elapsed}
        for b, a in zip(before, after, strict=True)
    ]
    totals = totals1 - totals0
    samples = cameras.samples
    keeps_up = all(
        c["decoded_fps"] >= 0.95 * source_fps and c["analysed_fps"] >= 0.95 * setup.analysed_fps for c in per_camera
    )
    return {
        "cameras_run": len(setup.urls),
        "measured_s": elapsed,
        "realtime": keeps_up,
        "cameras": totals.decoded / source_fps / elapsed,
        "stream_frames_per_s": totals.decoded / elapsed,
        "analysed_frames_per_s": totals.analysed / elapsed,
        "per_camera": per_camera,
        "min_decoded_fps": min(c["decoded_fps"] for c in per_camera),
        "min_analysed_fps": min(c["analysed_fps"] for c in per_camera),
        "frames_dropped": totals.dropped,
        "detector_ran_fraction": samples.detector_runs / max(len(samples.detect_s), 1),
        "latency_ms_p50": 1000 * _quantile(samples.latencies_s, 0.5),
        "latency_ms_p95": 1000 * _quantile(samples.latencies_s, 0.95),
        "latency_ms_max": 1000 * max(samples.latencies_s, default=0.0),
        "stage_ms": _stage_ms(samples, totals),
        "cpu_cores_busy": cpu / elapsed,
        "rss_mib": rss,
    }


def _pairs(cameras: _Cameras) -> list[tuple[PyAVReader, CameraPipeline]]:
    return list(zip(cameras.readers, cameras.pipelines, strict=True))


@dataclass(frozen=True, slots=True)
class LiveTiming:
    source_fps: float
    warmup_s: float
    seconds: float
    max_cameras: int
    max_latency_p95_ms: float = 500.0
    """A camera load is held only if it keeps real time AND its p95 frame-to-event latency stays under this."""


def held(run: dict[str, Any], timing: LiveTiming) -> bool:
    return bool(run["realtime"]) and float(run["latency_ms_p95"]) <= timing.max_latency_p95_ms


def sweep_live(base: RunSetup, url: str, timing: LiveTiming) -> dict[str, Any]:
    """The most cameras of ``url`` held (``held``), searched by doubling 1, 2, 4, ... then bisecting.

    Each count is a fresh run of its own, so the search order does not change a result; a dozen
    runs find a limit of up to 64 cameras where stepping one by one would take that many.
    """
    runs: dict[int, dict[str, Any]] = {}

    def attempt(count: int) -> bool:
        setup = RunSetup(
            urls=(url,) * count,
            detector=base.detector,
            analysed_fps=base.analysed_fps,
            live=True,
            tracker=base.tracker,
            motion_gate=base.motion_gate,
            decoder=base.decoder,
        )
        run = run_cameras(setup, timing.source_fps, timing.warmup_s, timing.seconds)
        run["held"] = held(run, timing)
        runs[count] = run
        print(
            f"    {count} camera(s): held={run['held']} (realtime={run['realtime']}, min decoded "
            f"{run['min_decoded_fps']:.1f} fps, min analysed {run['min_analysed_fps']:.2f} fps, latency p50 "
            f"{run['latency_ms_p50']:.0f} / p95 {run['latency_ms_p95']:.0f} ms), CPU {run['cpu_cores_busy']:.2f} "
            f"cores, detector ran {100 * run['detector_ran_fraction']:.0f}%",
            flush=True,
        )
        return bool(run["held"])

    good, bad = 0, timing.max_cameras + 1  # the most cameras seen held, the fewest seen not held
    count = 1
    while good < timing.max_cameras:
        if not attempt(count):
            bad = count
            break
        good = count
        count = min(2 * count, timing.max_cameras)
    while bad - good > 1:
        middle = (good + bad) // 2
        if attempt(middle):
            good = middle
        else:
            bad = middle
    return {
        "cameras_realtime": good,
        "rule": f"held = every camera keeps real time and latency p95 <= {timing.max_latency_p95_ms:g} ms",
        "capped": good >= timing.max_cameras,
        "runs": [runs[c] for c in sorted(runs)],  # each run records its cameras_run
    }
