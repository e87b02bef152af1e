"""Deterministic synthetic traffic clips with exact ground truth, for the demo, the tests and the benchmarks.

A pole camera looks down a four-lane road (two lanes each way, right-hand traffic).
Vehicles (cars, vans, trucks, buses, motorbikes) drive through, follow each other and, where
a lane obeys a signal, queue at the counting line. Every object's per-frame pixel box, how
much of it nearer vehicles hide, and every counting-line crossing are written next to the clip::

    python -m devstack.scene --out DIR [--preset NAME] [--seed N] [--duration S] [--fps F]
        [--width W --height H] [--codec h264|h265] [--variant clean|noisy]

writes ``DIR/<name>.mp4`` and ``DIR/<name>.truth.json`` (name: the preset, or ``scene``) and skips
the render when both exist with the same parameter hash. ``--list`` prints the presets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from devstack.scene_params import (
    FAR_LIMIT_M,
    RENDERER_VERSION,
    SCENE_FORMAT,
    CameraSpec,
    LineSpec,
    SceneParams,
    counting_line,
    scene_camera,
)
from devstack.scene_plan import Trip, clip_rules, plan_traffic
from devstack.scene_presets import PRESETS, preset
from devstack.scene_render import (
    PlacedVehicle,
    Sprite,
    composite,
    draw_shadow,
    ground_texture,
    rasterize_vehicle,
    render_ground,
    visible_fractions,
)
from devstack.scene_truth import ObjectTrack, Segment, beyond_end, check_truth, count_table, crossings, seconds_at_line
from devstack.video_files import write_video

__all__ = [
    "RENDERER_VERSION",
    "SCENE_FORMAT",
    "CameraSpec",
    "LineSpec",
    "SceneParams",
    "counting_line",
    "render_scene",
    "scene_camera",
]


def _render_frames(
    params: SceneParams, trips: list[Trip], tracks: list[ObjectTrack]
) -> Iterator[npt.NDArray[np.uint8]]:
    """Frames in order; fills each track's ``visible`` share as it goes."""
    camera = scene_camera(params)
    ground = render_ground(camera, ground_texture(params.seed, FAR_LIMIT_M + 110.0))
    noise_rng = np.random.default_rng(params.seed + 1)
    for index in range(params.frame_count):
        present = [(trip, track) for trip, track in zip(trips, tracks, strict=True) if index in track.boxes]
        # Far first (painter's order), by depth along the optical axis.
        present.sort(key=lambda pair: -float(camera.to_camera(np.array([pair[0].x, pair[0].ys[index], 1.0]))[0, 2]))
        vehicles = [
            PlacedVehicle(
                trip.arrival.kind,
                trip.arrival.paint,
                trip.x,
                float(trip.ys[index]),
                trip.lane.direction,
                trip.arrival.accent,
            )
            for trip, _ in present
        ]
        frame = ground.copy()
        for vehicle in vehicles:
            draw_shadow(frame, vehicle, camera)
        sprites: list[Sprite | None] = [rasterize_vehicle(vehicle, camera) for vehicle in vehicles]
        for sprite in sprites:
            if sprite is not None:
                composite(frame, sprite)
        drawn = [(track, sprite) for (_, track), sprite in zip(present, sprites, strict=True) if sprite is not None]
        shares = visible_fractions([s for _, s in reversed(drawn)], camera.width, camera.height)
        for (track, _), share in zip(reversed(drawn), shares, strict=True):
            track.visible[index] = share
        # A slight lens blur: real cameras never give perfectly sharp polygon edges.
        blurred = np.asarray(cv2.GaussianBlur(frame, (0, 0), 0.7 * params.width / 960), dtype=np.float32)
        if params.variant == "noisy":
            gain = float(noise_rng.uniform(0.85, 1.1))
            blurred = (blurred * gain + noise_rng.normal(0, 6, blurred.shape)).astype(np.float32)
        yield np.clip(blurred, 0, 255).astype(np.uint8)


def _encoder_options(params: SceneParams) -> tuple[str, dict[str, str]]:
    # One keyframe a second (RTSP clients joining mid-stream recover fast), no B-frames (low latency).
    gop = f"keyint={params.fps}:min-keyint={params.fps}:scenecut=0:bframes=0"
    if params.codec == "h265":
        return "libx265", {"crf": str(params.crf), "preset": "veryfast", "x265-params": f"{gop}:log-level=error"}
    return "libx264", {"crf": str(params.crf), "preset": "veryfast", "x264-params": gop}


def render_scene(params: SceneParams, out_dir: Path, name: str = "scene") -> tuple[Path, Path]:
    """Render (or reuse) ``out_dir/name.mp4`` and ``out_dir/name.truth.json``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path, truth_path = out_dir / f"{name}.mp4", out_dir / f"{name}.truth.json"
    digest = params.param_hash()
    if video_path.is_file() and truth_path.is_file():
        try:
            if json.loads(truth_path.read_text())["param_hash"] == digest:
                return video_path, truth_path
        except (ValueError, KeyError):
            pass  # unreadable truth: render again
    trips, tracks = plan_traffic(params)
    tmp_video = video_path.with_suffix(".partial.mp4")
    codec, options = _encoder_options(params)
    write_video(tmp_video, _render_frames(params, trips, tracks), fps=params.fps, codec=codec, options=options)
    line = counting_line(params)
    check_truth(tracks, clip_rules(params))
    truth = _truth_document(params, trips, tracks, line)
    tmp_video.replace(video_path)
    truth_path.write_text(json.dumps(truth, indent=1))
    return video_path, truth_path


def _truth_document(params: SceneParams, trips: list[Trip], tracks: list[ObjectTrack], line: Segment) -> dict[str, Any]:
    events = crossings(tracks, line, params.width, params.fps)
    return {
        "format": SCENE_FORMAT,
        "param_hash": params.param_hash(),
        "params": params.model_dump(mode="json"),
        "fps": params.fps,
        "width": params.width,
        "height": params.height,
        "frame_count": params.frame_count,
        "codec": params.codec,
        "anchor": "center",
        "line": {
            "start": list(line[0]),
            "end": list(line[1]),
            "convention": "edge_agent.analytics.geometry.side_of_line: negative -> positive side is 'in'",
        },
        "objects": [
            {
                "id": track.object_id,
                "class": track.kind,
                "heading": "towards_camera" if track.heading == "towards" else "away_from_camera",
                "lane": track.lane,
                "x_m": round(trip.x, 3),
                "seconds_at_line": seconds_at_line(track, line, params.fps),
                "min_visible": round(min(track.visible.values(), default=1.0), 3),
                "boxes": [
                    [f, *track.boxes[f][:4], int(track.boxes[f][4]), round(100 * track.visible.get(f, 1.0))]
                    for f in sorted(track.boxes)
                ],
            }
            for trip, track in zip(trips, tracks, strict=True)
        ],
        "box_columns": ["frame", "x1", "y1", "x2", "y2", "fully_inside", "visible_percent"],
        "crossings": events,
        "beyond_end": beyond_end(tracks, line, params.width, params.fps),
        "counts": count_table(events),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named scenario (default: the demo clip)")
    parser.add_argument("--name", help="file stem (default: the preset's name, or 'scene')")
    parser.add_argument("--list", action="store_true", help="print the presets and exit")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--duration", type=float, help="seconds")
    parser.add_argument("--fps", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--codec", choices=["h264", "h265"])
    parser.add_argument("--variant", choices=["clean", "noisy"])
    args = parser.parse_args(argv)
    if args.list:
        for preset_name, (description, _) in sorted(PRESETS.items()):
            sys.stdout.write(f"{preset_name:<16} {description}\n")
        return 0
    if args.out is None:
        parser.error("--out is required")
    overrides = {
        key: value
        for key, value in {
            "seed": args.seed,
            "duration_s": args.duration,
            "fps": args.fps,
            "width": args.width,
            "height": args.height,
            "codec": args.codec,
            "variant": args.variant,
        }.items()
        if value is not None
    }
    params = preset(args.preset, **overrides) if args.preset else SceneParams(**overrides)
    started = time.perf_counter()
    video, truth = render_scene(params, args.out, args.name or args.preset or "scene")
    doc = json.loads(truth.read_text())
    sys.stdout.write(
        f"{video}\n{truth}\ncrossings: {len(doc['crossings'])} counts: {doc['counts']} "
        f"beyond the line's ends: {len(doc['beyond_end'])} ({time.perf_counter() - started:.1f} s)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
