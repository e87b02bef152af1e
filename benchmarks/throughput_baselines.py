"""The two baselines a pipeline's throughput is judged against: decoding alone and inference alone.

Both run with the settings the pipeline uses (the same reader with the same ``max_fps``, the same
detector configuration), so the pipeline's overhead is a ratio against what its two costly stages
can do on their own on this box:

- decode alone: ``parallel`` readers decode the whole clip as fast as they can, converting to BGR
  only the frames the pipeline would analyse; capacity in cameras = stream frames decoded per second
  divided by the source frame rate;
- inference alone: one detector runs on decoded frames in a loop; capacity in cameras = inferences
  per second divided by the analysed frame rate per camera.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.sources.config import ReaderConfig
from edge_agent.sources.pyav_reader import PyAVReader


def offline_reader_config(video: Path, max_fps: float | None, decoder: str = "auto") -> ReaderConfig:
    """A clip read once, as fast as it decodes, handing over frames at ``max_fps`` (None: all)."""
    return ReaderConfig.model_validate(
        {
            "url": str(video),
            "realtime": False,
            "loop": False,
            "on_end": "stop",
            "max_reconnects": 0,
            "max_fps": max_fps,
            "decoder": decoder,
        }
    )


@dataclass(frozen=True, slots=True)
class DecodeBaseline:
    decoder: str
    """The decoder the readers used (cpu or nvdec)."""
    parallel_streams: int
    stream_frames_per_s: float
    """Decoded pictures per second over all streams together."""
    delivered_frames_per_s: float
    decode_ms_per_frame: float
    """The reader thread's wall time in decode calls per decoded picture (frame threads overlap)."""
    convert_ms_per_delivered_frame: float
    cameras: float
    """stream_frames_per_s / source_fps: how many cameras decoding alone keeps up with."""


def decode_alone(
    video: Path, max_fps: float | None, *, source_fps: float, parallel: int, seconds: float, decoder: str = "auto"
) -> DecodeBaseline:
    """Decode ``video`` (looping) in ``parallel`` threads at once, each its own reader as each camera has."""
    config = offline_reader_config(video, max_fps, decoder).model_copy(update={"loop": True})
    readers = [PyAVReader(f"decode-{i}", config) for i in range(parallel)]

    def drain(reader: PyAVReader) -> None:
        for _ in reader.frames():
            pass

    threads = [threading.Thread(target=drain, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    time.sleep(min(1.0, seconds / 4))  # past the opening of the file and the decoders' thread start
    before, started = [reader.stats() for reader in readers], time.perf_counter()
    time.sleep(seconds)
    after, elapsed = [reader.stats() for reader in readers], time.perf_counter() - started
    for reader in readers:
        reader.stop()
    for thread in threads:
        thread.join()
    decoded = sum(a.frames_decoded - b.frames_decoded for a, b in zip(after, before, strict=True))
    delivered = sum(a.frames_delivered - b.frames_delivered for a, b in zip(after, before, strict=True))
    decode_s = sum(a.decode_seconds - b.decode_seconds for a, b in zip(after, before, strict=True))
    convert_s = sum(a.convert_seconds - b.convert_seconds for a, b in zip(after, before, strict=True))
    if decoded == 0:
        raise RuntimeError(f"decoding {video} gave no frame: {after[0].last_error}")
    return DecodeBaseline(
        decoder=after[0].decoder or "none",
        parallel_streams=parallel,
        stream_frames_per_s=decoded / elapsed,
        delivered_frames_per_s=delivered / elapsed,
        decode_ms_per_frame=1000 * decode_s / decoded,
        convert_ms_per_delivered_frame=1000 * convert_s / max(delivered, 1),
        cameras=decoded / elapsed / source_fps,
    )


@dataclass(frozen=True, slots=True)
class InferenceBaseline:
    backend: str
    ms_per_frame_p50: float
    ms_per_frame_p95: float
    frames_per_s: float
    detections_per_frame: float
    cameras: float
    """frames_per_s / analysed frames per second per camera."""


def sample_frames(video: Path, count: int) -> list[npt.NDArray[np.uint8]]:
    """``count`` BGR frames spread over the clip (what the detector will see)."""
    every = PyAVReader("sample", offline_reader_config(video, None))
    frames = [frame.image for frame in every.frames()]
    if not frames:
        raise RuntimeError(f"{video} has no decodable frame")
    step = max(1, len(frames) // count)
    return frames[::step][:count]


def inference_alone(
    config: DetectorConfig, frames: Sequence[npt.NDArray[np.uint8]], analysed_fps: float, seconds: float
) -> InferenceBaseline:
    """Run one detector over ``frames`` in a loop for about ``seconds`` (after one warm-up pass)."""
    detector = build_detector(config)
    for image in frames[:3]:
        detector.detect(image)  # warm-up: session initialisation, memory arenas, a young background model
    times: list[float] = []
    detections = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < len(frames):
        image = frames[len(times) % len(frames)]
        started = time.perf_counter()
        found = detector.detect(image)
        times.append(time.perf_counter() - started)
        detections += len(found)
    total = sum(times)
    quantiles = statistics.quantiles(times, n=20)
    return InferenceBaseline(
        backend=config.backend,
        ms_per_frame_p50=1000 * statistics.median(times),
        ms_per_frame_p95=1000 * quantiles[18],
        frames_per_s=len(times) / total,
        detections_per_frame=detections / len(times),
        cameras=len(times) / total / analysed_fps,
    )
