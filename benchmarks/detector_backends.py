"""Each detector backend's speed and what it detects, on the same clips.

    python -m benchmarks.detector_backends                 # full run (a few minutes on 2 cores)
    python -m benchmarks.detector_backends --quick         # 20 s scene, fewer batching rounds (a smoke test)
    python -m benchmarks.detector_backends --backends ssd,motion --clip none

Clips:

- ``scene``: the rendered pole-camera clip (``devstack.scene``, seed 7, 60 s, 12 fps, 960x540) whose
  truth JSON has every vehicle's box in every frame and every line crossing;
- ``car-detection``: ``/work/shared/data/car-detection.mp4`` when present (real top-down footage,
  377 frames, 768x432; hand-labelled: which frames have a car in view, and the four line crossings
  of ``tests/integration/test_motion_real_clip.py``).

For each clip and backend the clip runs once through the real pipeline (``edge_agent.cli.analyze_video``:
decode, detect, track, count) with the detector wrapped so every call is timed and scored:

- ``ms_per_frame_p50`` / ``_p95`` / ``_mean``: the detector call alone (preprocessing, inference, decoding);
- ``detections_per_frame``;
- ``recall``: share of fully visible truth boxes matched one-to-one by a detection at IoU >= 0.5,
  whatever its class; ``class_recall`` also requires the class; ``precision``: share of detections
  that match a truth box (partly visible vehicles included) at IoU >= 0.5 (scene only);
- ``frames_with_detections_car_in_view`` / ``_road_empty`` (car-detection only, hand labels);
- ``counts`` and ``count_error_total`` / ``count_error_in`` / ``count_error_out`` against the truth.

``batching`` measures, for the model backends, one batched inference of B frames (the prepared
batch-dynamic copy) against B one-by-one inferences of the fixed model, and 4 camera threads on
one shared batching detector against 4 threads with a detector each.

Prints and saves ``benchmarks/results/detector_backends.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.common import save_result
from devstack.scene import SceneParams, render_scene
from devstack.scene_eval import TruthBox, decode_frames, truth_by_frame
from edge_agent.analytics.lines import LineConfig
from edge_agent.cli import analyze_video
from edge_agent.config import CameraConfig
from edge_agent.perception.detector import Detector
from edge_agent.perception.detectors import DetectorConfig, build_detector
from edge_agent.perception.detectors.batching import BatchingConfig, BatchingDetector
from edge_agent.perception.detectors.motion_config import MotionConfig
from edge_agent.perception.detectors.nms import pairwise_iou
from edge_agent.perception.detectors.ssd_mobilenet import SsdMobilenetDetector
from edge_agent.perception.detectors.yolo import YoloDetector
from edge_agent.perception.tracker import TrackerConfig
from edge_agent.perception.types import Detections
from ioc_common.backoff import BackoffConfig

NAME = "detector_backends"
MATCH_IOU = 0.5
CLIP = Path("/work/shared/data/car-detection.mp4")
CLIP_FPS = 12.5
CLIP_CARS_IN_VIEW = ((54, 108), (178, 238), (314, 348))
"""Hand-labelled frames (inclusive) with at least one car in view; the road is empty elsewhere."""
CLIP_COUNTS = {"in": 2, "out": 2}
"""Hand-labelled crossings of the line y = 0.5 (tests/integration/test_motion_real_clip.py)."""
START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

BACKENDS: dict[str, tuple[DetectorConfig, TrackerConfig]] = {
    # The SSD's scores sit at 0.3-0.6: the tracker thresholds that suit it (models/README.md).
    "ssd": (DetectorConfig(), TrackerConfig(high_score_threshold=0.3, new_track_threshold=0.35)),
    "yolo": (DetectorConfig(backend="yolo"), TrackerConfig()),
    "motion": (DetectorConfig(backend="motion"), TrackerConfig()),
    "motion_knn": (DetectorConfig(backend="motion", motion=MotionConfig(subtractor="knn")), TrackerConfig()),
}

Image = npt.NDArray[np.uint8]


@dataclass
class Scores:
    """Per-frame timings and matches, accumulated in frame order."""

    ms: list[float] = field(default_factory=list)
    detections: int = 0
    truth_full: int = 0
    matched_full: int = 0
    matched_full_same_class: int = 0
    matched_detections: int = 0
    frames_in_view: int = 0
    frames_in_view_detected: int = 0
    frames_empty: int = 0
    frames_empty_detected: int = 0

    def add(self, dets: Detections, truth: list[TruthBox] | None, car_in_view: bool | None) -> None:
        self.detections += len(dets)
        if car_in_view is not None:
            if car_in_view:
                self.frames_in_view += 1
                self.frames_in_view_detected += int(len(dets) > 0)
            else:
                self.frames_empty += 1
                self.frames_empty_detected += int(len(dets) > 0)
        if truth is None:
            return
        self.truth_full += sum(t.fully_inside for t in truth)
        if not truth or not len(dets):
            return
        iou = pairwise_iou(np.array([t.xyxy for t in truth], np.float32), dets.xyxy)
        for same_class in (False, True):
            allowed = iou >= MATCH_IOU
            if same_class:
                allowed &= np.array([[t.cls == name for name in dets.names] for t in truth], dtype=bool)
            truth_hit, det_hit = greedy_match(np.where(allowed, iou, 0.0))
            full_hits = sum(truth[i].fully_inside for i in truth_hit)
            if same_class:
                self.matched_full_same_class += full_hits
            else:
                self.matched_full += full_hits
                self.matched_detections += len(det_hit)

    def summary(self, has_truth: bool, has_presence: bool) -> dict[str, Any]:
        frames = len(self.ms)
        out: dict[str, Any] = {
            "frames": frames,
            "ms_per_frame_p50": round(float(np.percentile(self.ms, 50)), 2),
            "ms_per_frame_p95": round(float(np.percentile(self.ms, 95)), 2),
            "ms_per_frame_mean": round(statistics.fmean(self.ms), 2),
            "detections_per_frame": round(self.detections / max(frames, 1), 3),
        }
        if has_truth:
            out["recall"] = round(self.matched_full / max(self.truth_full, 1), 4)
            out["class_recall"] = round(self.matched_full_same_class / max(self.truth_full, 1), 4)
            out["precision"] = round(self.matched_detections / self.detections, 4) if self.detections else None
            out["truth_boxes_fully_inside"] = self.truth_full
        if has_presence:
            out["frames_with_detections_car_in_view"] = round(self.frames_in_view_detected / self.frames_in_view, 4)
            out["frames_with_detections_road_empty"] = round(self.frames_empty_detected / self.frames_empty, 4)
        return out


def greedy_match(score: npt.NDArray[np.float64]) -> tuple[list[int], list[int]]:
    """One-to-one matches, best score first; pairs with score 0 never match."""
    rows: list[int] = []
    cols: list[int] = []
    for flat in np.argsort(-score, axis=None):
        r, c = np.unravel_index(flat, score.shape)
        if score[r, c] <= 0:
            break
        if r in rows or c in cols:
            continue
        rows.append(int(r))
        cols.append(int(c))
    return rows, cols


class MeasuredDetector:
    """Times and scores every call of ``inner``; frames arrive in order (block policy), so call n is frame n."""

    def __init__(
        self,
        inner: Detector,
        truth: dict[int, list[TruthBox]] | None,
        in_view: Sequence[tuple[int, int]] | None,
    ) -> None:
        self._inner = inner
        self._truth = truth
        self._in_view = in_view
        self.scores = Scores()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._inner.class_names

    def detect(self, image: Image) -> Detections:
        started = time.perf_counter()
        dets = self._inner.detect(image)
        self.scores.ms.append(1000.0 * (time.perf_counter() - started))
        index = len(self.scores.ms) - 1
        truth = None if self._truth is None else self._truth.get(index, [])
        in_view = None if self._in_view is None else any(a <= index <= b for a, b in self._in_view)
        self.scores.add(dets, truth, in_view)
        return dets


@dataclass(frozen=True)
class Clip:
    name: str
    video: Path
    line: LineConfig
    truth_counts: dict[str, int]
    truth: dict[int, list[TruthBox]] | None = None
    in_view: Sequence[tuple[int, int]] | None = None


def scene_clip(params: SceneParams, out_dir: Path) -> Clip:
    video, truth_path = render_scene(params, out_dir)
    truth = json.loads(truth_path.read_text())
    (x1, y1), (x2, y2) = truth["line"]["start"], truth["line"]["end"]
    width, height = truth["width"], truth["height"]
    line = LineConfig(
        id="truth", start=(x1 / width, y1 / height), end=(x2 / width, y2 / height), anchor=truth["anchor"]
    )
    counts = {direction: sum(by_class.values()) for direction, by_class in truth["counts"].items()}
    return Clip("scene", video, line, counts, truth=truth_by_frame(truth))


def footage_clip(path: Path) -> Clip:
    line = LineConfig(id="mid", start=(0.0, 0.5), end=(1.0, 0.5), anchor="center")
    return Clip("car-detection", path, line, dict(CLIP_COUNTS), in_view=CLIP_CARS_IN_VIEW)


def run_backend(clip: Clip, backend: str) -> dict[str, Any]:
    detector_config, tracker = BACKENDS[backend]
    measured = MeasuredDetector(build_detector(detector_config), clip.truth, clip.in_view)
    camera = CameraConfig(
        id="bench",
        url=str(clip.video),
        realtime=False,
        loop=False,
        on_end="stop",
        max_reconnects=0,
        reconnect=BackoffConfig(base_s=0.1, ceiling_s=0.1),
        start_time=START,
        queue_policy="block",
        queue_capacity=8,
        detector=detector_config,
        tracker=tracker,
        lines=(clip.line,),
    )
    report = analyze_video(camera, interval_s=60, detector=measured)
    if report["frames_processed"] != len(measured.scores.ms) or report["error"]:
        raise RuntimeError(f"{clip.name}/{backend}: pipeline did not process every frame: {report['error']}")
    line = report["lines"][clip.line.id]
    counts = {"in": sum(line["in"].values()), "out": sum(line["out"].values())}
    total_truth = sum(clip.truth_counts.values())
    result = {
        "clip": clip.name,
        "backend": backend,
        **measured.scores.summary(clip.truth is not None, clip.in_view is not None),
        "counts": counts,
        "counts_by_class": {"in": line["in"], "out": line["out"]},
        "truth_counts": clip.truth_counts,
        "count_error_total": round(abs(sum(counts.values()) - total_truth) / total_truth, 4),
    }
    for direction in ("in", "out"):
        expected = clip.truth_counts[direction]
        result[f"count_error_{direction}"] = round(abs(counts[direction] - expected) / max(expected, 1), 4)
    return result


# -- batching ------------------------------------------------------------------------------------


def _model_pair(backend: str) -> tuple[SsdMobilenetDetector | YoloDetector, SsdMobilenetDetector | YoloDetector]:
    config, _ = BACKENDS[backend]
    batched = build_detector(config.model_copy(update={"batching": BatchingConfig(enabled=True)}))
    fixed = build_detector(config)
    if not isinstance(batched, SsdMobilenetDetector | YoloDetector) or not isinstance(
        fixed, SsdMobilenetDetector | YoloDetector
    ):
        raise TypeError(f"{backend} is not a model backend")
    return batched, fixed


def measure_batching(backend: str, frames: list[Image], sizes: Sequence[int], rounds: int) -> dict[str, Any]:
    batched, fixed = _model_pair(backend)
    rows = []
    for size in sizes:
        chunk = frames[:size]

        def one_by_one_run(c: list[Image] = chunk) -> object:
            return [fixed.detect(image) for image in c]

        def batched_run(c: list[Image] = chunk) -> object:
            return batched.detect_batch(c)

        one_by_one_ms, batched_ms = _best_ms_alternating(one_by_one_run, batched_run, rounds)
        one_by_one, as_batch = one_by_one_ms / size, batched_ms / size
        rows.append(
            {
                "batch": size,
                "ms_per_frame_one_by_one": round(one_by_one, 2),
                "ms_per_frame_batched": round(as_batch, 2),
                "speedup": round(one_by_one / as_batch, 3),
            }
        )
    return {
        "backend": backend,
        "batch_model": batched.session.path.name,
        "batch_dynamic": batched.session.batch_dynamic,
        "providers": batched.session.providers,
        "by_batch_size": rows,
        "cameras": _threaded(backend, frames, cameras=4, per_camera=max(4, 2 * rounds)),
    }


def _best_ms_alternating(first: Callable[[], object], second: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best time of each of two jobs, run in turns so that load from other processes hits both alike."""
    first()  # warm-up (allocations, ONNX Runtime's first-run planning)
    second()
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, work in enumerate((first, second)):
            started = time.perf_counter()
            work()
            best[index] = min(best[index], time.perf_counter() - started)
    return 1000.0 * best[0], 1000.0 * best[1]


def _threaded(backend: str, frames: list[Image], cameras: int, per_camera: int) -> dict[str, Any]:
    """Frames/s of ``cameras`` threads, each with its own detector vs all on one shared batching detector."""
    config, _ = BACKENDS[backend]
    own = [build_detector(config) for _ in range(cameras)]
    batched, _ = _model_pair(backend)
    shared = BatchingDetector(batched, BatchingConfig(enabled=True, max_batch=cameras, max_wait_ms=5), name=backend)
    shared.start()
    clients: list[Detector] = [shared.client(f"cam-{i}") for i in range(cameras)]
    result: dict[str, Any] = {"threads": cameras, "frames_per_thread": per_camera}
    for label, detectors in (("own_detector_each", own), ("one_shared_batching_detector", clients)):
        for detector in detectors:
            detector.detect(frames[0])  # warm-up

        def camera(detector: Detector, offset: int) -> None:
            for k in range(per_camera):
                detector.detect(frames[(offset + k) % len(frames)])

        threads = [threading.Thread(target=camera, args=(d, i)) for i, d in enumerate(detectors)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result[f"{label}_frames_per_s"] = round(cameras * per_camera / (time.perf_counter() - started), 2)
    stats = shared.stats()
    shared.close()
    result["shared_mean_batch"] = round(stats.mean_batch, 2)
    return result


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Detector backends: speed and what they detect, on the same clips.")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {list(BACKENDS)}")
    parser.add_argument("--clip", default=str(CLIP), help="the real footage, or 'none' to skip it")
    parser.add_argument("--scene-dir", type=Path, help="where to render the scene (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="20 s scene, fewer batching rounds")
    parser.add_argument("--no-batching", action="store_true", help="skip the batching measurements")
    parser.add_argument("--out-dir", type=Path, help="write the JSON here instead of benchmarks/results")
    args = parser.parse_args(argv)
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {list(BACKENDS)}")
    params = SceneParams(duration_s=20.0 if args.quick else 60.0)
    with tempfile.TemporaryDirectory(prefix="bench-scene-") as tmp:
        clips = [scene_clip(params, args.scene_dir or Path(tmp))]
        if args.clip != "none" and Path(args.clip).is_file():
            clips.append(footage_clip(Path(args.clip)))
        elif args.clip != "none":
            print(f"{args.clip} not found: the real clip is skipped", file=sys.stderr)
        results = []
        for clip in clips:
            for backend in backends:
                started = time.perf_counter()
                result = run_backend(clip, backend)
                results.append(result)
                print(_line(result), f"({time.perf_counter() - started:.0f} s)", flush=True)
        batching = []
        if not args.no_batching:
            frames = [image for index, image in decode_frames(clips[0].video) if index in range(100, 108)]
            for backend in (name for name in backends if name in ("ssd", "yolo")):
                batching.append(measure_batching(backend, frames, (1, 2, 4, 8), rounds=2 if args.quick else 5))
                print(json.dumps(batching[-1]), flush=True)
    document = {
        "command": "python -m benchmarks.detector_backends" + (" " + " ".join(argv) if argv else ""),
        "config": {
            "scene": params.model_dump(),
            "clip": args.clip if len(clips) > 1 else None,
            "match_iou": MATCH_IOU,
            "backends": {
                name: {"detector": BACKENDS[name][0].model_dump(mode="json"), "tracker": BACKENDS[name][1].model_dump()}
                for name in backends
            },
        },
        "results": results,
        "batching": batching,
    }
    path = save_result(NAME, document, **({"out_dir": args.out_dir} if args.out_dir else {}))
    print(f"saved {path}")
    return 0


def _line(result: dict[str, Any]) -> str:
    quality = (
        f"recall {result['recall']} precision {result['precision']}"
        if "recall" in result
        else f"car-in-view frames detected {result.get('frames_with_detections_car_in_view')} "
        f"empty-road frames with detections {result.get('frames_with_detections_road_empty')}"
    )
    return (
        f"{result['clip']:>14} {result['backend']:>10}: {result['ms_per_frame_p50']:6.1f} ms p50 "
        f"{result['ms_per_frame_p95']:6.1f} ms p95, {result['detections_per_frame']:.2f} det/frame, {quality}, "
        f"counts {result['counts']} vs {result['truth_counts']}"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
