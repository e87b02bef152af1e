"""Edge throughput: how many cameras one box analyses in real time, and what each stage costs.

    python -m benchmarks.edge_throughput [--quick] [--backends ssd_mobilenet_oidv4,yolo] [--analysed-fps 5]

Rendered traffic clips (devstack.scene), re-encoded as IP cameras send them (1080p25 at 4 Mbit/s,
720p25 at 2 Mbit/s H.264 with sensor noise: benchmarks/camera_clips.py), are served by a real RTSP server
(GStreamer, devstack.rtsp) and read by real camera pipelines. In one run it measures, per resolution
and detector backend:

1. the baselines: decoding alone (the clip decoded as fast as possible, in as many parallel streams
   as the box has cores) and inference alone (the detector in a loop on decoded frames), each as a
   capacity in cameras at the same settings;
2. the pipeline offline at full speed (every camera reads the clip as fast as the pipeline goes),
   as a capacity in cameras, and its ratio to the slower baseline;
   The ratio is also given against decoding and inference sharing the same cores (1 / (1/decode +
   1/inference)): on a CPU-only box that, not the slower stage, is the ceiling;
3. live cameras from the RTSP server: the most cameras held (every camera keeps real time and the
   frame-to-event latency p95 stays <= 500 ms), found by trying 1, 2, 4, ... then bisecting; for each
   run: latency p50/p95, per-stage time per frame, CPU and memory;
4. with the motion gate on (inference skipped on frames where nothing moves) on a lighter-traffic clip,
   and the same clip without the gate, so the gate's gain is measured on identical input.

Results print as they come and are saved to benchmarks/results/edge_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.camera_clips import CameraClip, camera_clip
from benchmarks.common import save_result
from benchmarks.throughput_baselines import decode_alone, inference_alone, sample_frames
from benchmarks.throughput_runs import LiveTiming, RunSetup, run_cameras, sweep_live
from devstack.rtsp import RtspServer
from edge_agent.perception.detectors import DetectorConfig

RESOLUTIONS = {"1080p": (1920, 1080), "720p": (1280, 720)}
SOURCE_FPS = 25
TRACKER: dict[str, Any] = {}
"""The tracker's defaults: what a site gets without tuning."""
GATE: dict[str, Any] = {"enabled": True}
"""The motion gate's defaults, switched on."""


def render_clips(directory: Path, resolution: str, seconds: float) -> dict[str, Path]:
    """The busy clip (40 vehicles a minute) and a light one (10 a minute), encoded as a camera sends them."""
    width, height = RESOLUTIONS[resolution]
    return {
        traffic: camera_clip(CameraClip(f"{resolution}-{traffic}", width, height, SOURCE_FPS, seconds, rate), directory)
        for traffic, rate in (("busy", 40.0), ("light", 10.0))
    }


def baselines(video: Path, detector: DetectorConfig, args: argparse.Namespace) -> dict[str, Any]:
    analysed_fps, seconds = args.analysed_fps, args.inference_seconds
    decode = decode_alone(
        video, analysed_fps, source_fps=SOURCE_FPS, parallel=os.cpu_count() or 1, seconds=seconds, decoder=args.decoder
    )
    inference = inference_alone(detector, sample_frames(video, 40), analysed_fps, seconds)
    print(
        f"  decode alone: {decode.stream_frames_per_s:.0f} frames/s = {decode.cameras:.2f} cameras; "
        f"inference alone ({detector.backend}): {inference.ms_per_frame_p50:.1f} ms/frame p50 = "
        f"{inference.cameras:.2f} cameras at {analysed_fps:g} analysed frames/s",
        flush=True,
    )
    return {"decode_alone": _as_dict(decode), "inference_alone": _as_dict(inference)}


def _as_dict(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


def measure_backend(
    clips: dict[str, Path],
    urls: dict[str, str],
    backend: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    detector = DetectorConfig.model_validate({"backend": backend, "intra_op_threads": args.intra_op_threads})
    print(f" backend {backend}", flush=True)
    result = baselines(clips["busy"], detector, args)
    decode_cams, infer_cams = result["decode_alone"]["cameras"], result["inference_alone"]["cameras"]
    slower = min(decode_cams, infer_cams)
    # Both stages run on the same cores here, so together they cannot beat the sum of their costs.
    combined = 1.0 / (1.0 / decode_cams + 1.0 / infer_cams)
    offline: dict[str, Any] = {}
    for count in sorted({1, os.cpu_count() or 1}):
        setup = RunSetup(
            (str(clips["busy"]),) * count, detector, args.analysed_fps, False, TRACKER, decoder=args.decoder
        )
        offline[str(count)] = run_cameras(setup, SOURCE_FPS, args.warmup_s, args.live_seconds)
    best = max(offline.values(), key=lambda run: run["cameras"])
    result["pipeline_offline"] = offline
    result["pipeline_cameras"] = best["cameras"]
    result["pipeline_vs_slower_baseline"] = best["cameras"] / slower
    result["combined_bound_cameras"] = combined
    result["pipeline_vs_combined_bound"] = best["cameras"] / combined
    print(
        f"  pipeline offline: {best['cameras']:.2f} cameras = {100 * result['pipeline_vs_slower_baseline']:.0f}% "
        f"of the slower baseline ({slower:.2f}), {100 * result['pipeline_vs_combined_bound']:.0f}% of decode and "
        f"inference sharing the cores ({combined:.2f})",
        flush=True,
    )
    timing = LiveTiming(SOURCE_FPS, args.warmup_s, args.live_seconds, args.max_cameras, args.max_latency_ms)
    sweeps = {"busy": ("busy", None), "light": ("light", None), "light_gated": ("light", GATE)}
    result["live"] = {}
    for name, (clip, gate) in sweeps.items():
        if gate is not None and not args.gate:
            continue
        print(f"  live, {name} clip{' with the motion gate' if gate else ''}:", flush=True)
        setup = RunSetup((), detector, args.analysed_fps, True, TRACKER, motion_gate=gate, decoder=args.decoder)
        result["live"][name] = sweep_live(setup, urls[clip], timing)
        print(f"    -> {result['live'][name]['cameras_realtime']} cameras held", flush=True)
    return result


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers per resolution and backend, under plain keys."""
    summary: dict[str, Any] = {}
    for resolution, backends in results.items():
        for backend, result in backends.items():
            row: dict[str, Any] = {
                "decode_alone_cameras": result["decode_alone"]["cameras"],
                "inference_alone_cameras": result["inference_alone"]["cameras"],
                "inference_ms_per_frame": result["inference_alone"]["ms_per_frame_p50"],
                "pipeline_cameras": result["pipeline_cameras"],
                "pipeline_vs_slower_baseline": result["pipeline_vs_slower_baseline"],
                "pipeline_vs_combined_bound": result["pipeline_vs_combined_bound"],
            }
            for name, sweep in result["live"].items():
                count = sweep["cameras_realtime"]
                at = next((run for run in sweep["runs"] if run["cameras_run"] == count), None)
                row[f"cameras_realtime_{name}"] = count
                row[f"latency_ms_p95_{name}"] = at["latency_ms_p95"] if at else None
                row[f"cpu_cores_busy_{name}"] = at["cpu_cores_busy"] if at else None
            summary[f"{resolution}/{backend}"] = row
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resolutions", default="1080p,720p", help="comma-separated: 1080p, 720p")
    parser.add_argument("--backends", default="ssd_mobilenet_oidv4,yolo", help="detector backends to measure")
    parser.add_argument("--analysed-fps", type=float, default=5.0, help="frames analysed per camera per second")
    parser.add_argument("--clip-seconds", type=float, default=20.0, help="length of the rendered clips")
    parser.add_argument("--live-seconds", type=float, default=15.0, help="measured seconds of each live run")
    parser.add_argument("--warmup-s", type=float, default=4.0, help="seconds before a live run is measured")
    parser.add_argument("--inference-seconds", type=float, default=5.0, help="seconds of the inference baseline")
    parser.add_argument("--max-cameras", type=int, default=32, help="most live cameras tried")
    parser.add_argument(
        "--max-latency-ms", type=float, default=500.0, help="p95 frame-to-event latency a held camera load may have"
    )
    parser.add_argument("--no-gate", dest="gate", action="store_false", help="skip the motion-gate runs")
    parser.add_argument("--decoder", choices=("auto", "cpu", "nvdec"), default="auto", help="the readers' decoder")
    parser.add_argument(
        "--intra-op-threads", type=int, default=0, help="ONNX Runtime threads per camera's session (0 = all cores)"
    )
    parser.add_argument("--quick", action="store_true", help="720p and ssd only, short runs (a smoke test)")
    parser.add_argument("--clips-dir", type=Path, help="where rendered clips are cached (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolutions, args.backends = "720p", "ssd_mobilenet_oidv4"
        args.clip_seconds, args.live_seconds, args.warmup_s, args.max_cameras = 8.0, 5.0, 2.0, 2
    clips_dir = args.clips_dir or Path(tempfile.gettempdir()) / "ioc-bench-clips"
    results: dict[str, Any] = {}
    for resolution in args.resolutions.split(","):
        print(f"{resolution} at {SOURCE_FPS} fps, {args.analysed_fps:g} analysed frames/s per camera", flush=True)
        clips = render_clips(clips_dir, resolution, args.clip_seconds)
        server = RtspServer(clips_dir / "rtsp-state", clips, loop=True, name=f"bench-{resolution}")
        server.start()
        try:
            urls = {name: server.url(name) for name in clips}
            results[resolution] = {
                backend: measure_backend(clips, urls, backend, args) for backend in args.backends.split(",")
            }
        finally:
            server.stop()
    config = {
        "source_fps": SOURCE_FPS,
        "analysed_fps": args.analysed_fps,
        "clip_seconds": args.clip_seconds,
        "live_seconds": args.live_seconds,
        "warmup_s": args.warmup_s,
        "tracker": TRACKER or "defaults",
        "motion_gate": GATE,
        "intra_op_threads": args.intra_op_threads,
        "decoder": args.decoder,
        "realtime_rule": "every camera decodes >= 95% of the source frame rate and analyses >= 95% of analysed_fps",
        "held_rule": f"real time (realtime_rule) and frame-to-event latency p95 <= {args.max_latency_ms:g} ms",
    }
    document = {"config": config, "summary": summarise(results), "results": results}
    path = save_result("edge_throughput", document, args.out) if args.out else save_result("edge_throughput", document)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
