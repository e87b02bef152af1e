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
import functools
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from devstack.scene_camera import Camera
from devstack.scene_meshes import VehicleKind, vehicle_mesh
from devstack.scene_render import (
    LANE_WIDTH_M,
    PlacedVehicle,
    Sprite,
    composite,
    draw_shadow,
    ground_texture,
    rasterize_vehicle,
    render_ground,
    visible_fractions,
)
from devstack.scene_traffic import Arrival, LaneGeometry, LaneSpec, SignalSpec, plan_arrivals, simulate
from devstack.scene_truth import (
    Box,
    ClipRules,
    ObjectTrack,
    Segment,
    beyond_end,
    check_truth,
    count_table,
    crossings,
    overlapping_later,
    promise_problems,
    seconds_at_line,
)

SCENE_FORMAT = "ioc-scene-truth/2"
RENDERER_VERSION = 5
"""Bump when the pixels or the truth change for the same parameters, so cached clips are re-rendered."""

DEFAULT_LANES: tuple[LaneSpec, ...] = (
    # Cars use the two inner lanes; the outer lanes (motorbike lanes on Vietnamese roads) stay free in the
    # default clip because the SSD sees cars from the side there (near the frame edges) much less surely.
    LaneSpec(x_m=-0.5 * LANE_WIDTH_M, heading="towards", speed_mps=8.5, speed_spread=0.0),
    LaneSpec(x_m=0.5 * LANE_WIDTH_M, heading="away", speed_mps=7.5, speed_spread=0.0),
)


class LineSpec(BaseModel):
    """The counting line: one image row, across the whole frame or only between two points on the road."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    row_fraction: float = Field(default=0.42, gt=0.05, lt=0.95, description="Row of the line, share of the height.")
    x_from_m: float | None = Field(
        default=None, description="Left end: the road's x (metres) seen on the line's row; None = the frame's edge."
    )
    x_to_m: float | None = Field(default=None, description="Right end, like x_from_m; None = the frame's right edge.")

    @model_validator(mode="after")
    def _left_to_right(self) -> LineSpec:
        if self.x_from_m is not None and self.x_to_m is not None and self.x_from_m >= self.x_to_m:
            raise ValueError("x_from_m must be left of x_to_m (the line runs left to right: 'in' is downwards)")
        return self


class CameraSpec(BaseModel):
    """Where the pole camera stands and how it looks at the road."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height_m: float = Field(default=8.0, gt=2, le=30, description="Camera height above the road.")
    pitch_deg: float = Field(default=28.0, gt=5, lt=85, description="Downward tilt from horizontal.")
    x_m: float = Field(default=0.0, ge=-15, le=15, description="Pole position across the road (0: centre line).")
    yaw_deg: float = Field(default=0.0, ge=-45, le=45, description="Turn from straight down the road; + looks right.")
    focal_px_at_960: float = Field(
        default=900.0, gt=100, description="Focal length in pixels for a 960 px wide frame (scales with width)."
    )


class SceneParams(BaseModel):
    """Everything that decides the pixels and the truth; its hash names the cache entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=7, description="Random seed for the traffic, paints and textures.")
    duration_s: float = Field(default=60.0, gt=0, le=3600, description="Clip length in seconds.")
    fps: int = Field(default=12, ge=2, le=60, description="Frames per second.")
    width: int = Field(default=960, ge=320, le=3840, description="Frame width in pixels.")
    height: int = Field(default=540, ge=240, le=2160, description="Frame height in pixels.")
    variant: Literal["clean", "noisy"] = Field(
        default="clean", description="'noisy' adds sensor noise and brightness flicker."
    )
    vehicles_per_minute: float = Field(
        default=40.0, gt=0, le=600, description="Mean arrival rate over all lanes (split by the lanes' shares)."
    )
    first_crossing_after_s: float = Field(
        default=2.0, ge=0, description="No crossing before this time, so an RTSP client joining late misses none."
    )
    codec: Literal["h264", "h265"] = Field(default="h264", description="Video codec (libx264 or libx265).")
    crf: int = Field(default=20, ge=0, le=51, description="Encoder quality (lower is better).")
    lanes: tuple[LaneSpec, ...] = Field(default=DEFAULT_LANES, min_length=1, description="Lanes and their traffic.")
    min_gap_m: float = Field(
        default=12.0, ge=0, description="Least bumper-to-bumper gap between arrivals in a lane, at desired speed."
    )
    max_pair_iou: float | None = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Drop a vehicle whose box overlaps an earlier one's above this IoU; None lets them overlap "
        "(occlusion clips).",
    )
    signal: SignalSpec | None = Field(default=None, description="Signal for lanes with stops_at_signal.")
    max_stop_offset_px: float = Field(
        default=3.0,
        ge=0.25,
        le=30,
        description="At red the first vehicle's anchor stops 0.25..this px before the line.",
    )
    line: LineSpec = Field(default_factory=LineSpec, description="The counting line.")
    camera: CameraSpec = Field(default_factory=CameraSpec, description="The camera's pose.")

    def param_hash(self) -> str:
        canonical = json.dumps({"renderer": RENDERER_VERSION, **self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def frame_count(self) -> int:
        return round(self.duration_s * self.fps)


FAR_LIMIT_M = 90.0
"""Vehicles appear and vanish this far down the road at the latest (beyond it a car is a few pixels)."""


def scene_camera(params: SceneParams) -> Camera:
    spec = params.camera
    return Camera(
        width=params.width,
        height=params.height,
        focal_px=spec.focal_px_at_960 * params.width / 960,
        height_m=spec.height_m,
        pitch_deg=spec.pitch_deg,
        x_m=spec.x_m,
        yaw_deg=spec.yaw_deg,
    )


def counting_line(params: SceneParams) -> Segment:
    """The line in pixels; the quarter pixel keeps every box centre (a multiple of 0.5) off it."""
    row = round(params.height * params.line.row_fraction) + 0.25
    camera = scene_camera(params)

    def x_at(x_m: float | None, default: float) -> float:
        if x_m is None:
            return default
        return round(float(np.clip(camera.column_of_road_x(x_m, row), 0, params.width)), 2)

    return (x_at(params.line.x_from_m, 0.0), row), (x_at(params.line.x_to_m, float(params.width)), row)


@functools.cache
def _mesh_points(kind: VehicleKind) -> npt.NDArray[np.float64]:
    """The mesh's distinct vertices: its pixel box is theirs."""
    return np.unique(np.concatenate([f.points for f in vehicle_mesh(kind)]), axis=0)


def _project_boxes(
    camera: Camera, kind: VehicleKind, x: float, direction: int, ys: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Unclipped pixel boxes (n, 4) of the vehicle at ground positions ``ys``, and whether each is projectable."""
    pts = _mesh_points(kind) * np.array([direction, direction, 1.0])
    world = pts[None, :, :] + np.stack([np.full_like(ys, x), ys, np.zeros_like(ys)], axis=1)[:, None, :]
    cam = camera.to_camera(world.reshape(-1, 3)).reshape(len(ys), len(pts), 3)
    ok: npt.NDArray[np.bool_] = np.asarray((cam[:, :, 2] > 0.1).all(axis=1), dtype=np.bool_)
    depth = np.where(cam[:, :, 2] > 0.1, cam[:, :, 2], 1.0)
    u = camera.focal_px * cam[:, :, 0] / depth + camera.width / 2
    v = camera.focal_px * cam[:, :, 1] / depth + camera.height / 2
    return np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1), ok


def _truth_boxes(camera: Camera, boxes: npt.NDArray[np.float64], ok: npt.NDArray[np.bool_]) -> list[Box | None]:
    """The silhouette's pixel box clipped to the frame (None when under 2 px or out of view)."""
    out: list[Box | None] = []
    for (x1, y1, x2, y2), projectable in zip(boxes.tolist(), ok.tolist(), strict=True):
        if not projectable:
            out.append(None)
            continue
        full = bool(x1 >= 0 and y1 >= 0 and x2 <= camera.width and y2 <= camera.height)
        cx1, cy1 = max(round(x1), 0), max(round(y1), 0)
        cx2, cy2 = min(round(x2), camera.width), min(round(y2), camera.height)
        out.append(None if cx2 - cx1 < 2 or cy2 - cy1 < 2 else (cx1, cy1, cx2, cy2, full))
    return out


@dataclass(frozen=True, slots=True)
class Trip:
    """A vehicle's whole drive: its arrival and its ground y per frame (NaN out of the simulated stretch)."""

    object_id: int
    arrival: Arrival
    lane: LaneSpec
    ys: npt.NDArray[np.float64]

    @property
    def x(self) -> float:
        return self.lane.x_m + self.arrival.lateral_m


class _Geometry:
    """Entry, exit and stop positions per vehicle (kind, lateral position and stop offset decide them)."""

    def __init__(self, params: SceneParams) -> None:
        self._params = params
        self._camera = scene_camera(params)
        self._line = counting_line(params)

    def __call__(self, arrival: Arrival) -> LaneGeometry:
        return self._cached(arrival.lane, arrival.kind, arrival.lateral_m, arrival.stop_offset_px)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one instance per render, dropped with it
    def _cached(self, lane_index: int, kind: VehicleKind, lateral_m: float, stop_offset_px: float) -> LaneGeometry:
        lane = self._params.lanes[lane_index]
        x, direction = lane.x_m + lateral_m, lane.direction
        grid = np.arange(-20.0, FAR_LIMIT_M + 0.125, 0.25)
        boxes, ok = _project_boxes(self._camera, kind, x, direction, grid)
        w, h = self._camera.width, self._camera.height
        in_view = ok & (boxes[:, 2] > 0) & (boxes[:, 0] < w) & (boxes[:, 3] > 0) & (boxes[:, 1] < h)
        seen = grid[in_view]
        if len(seen) == 0:
            raise ValueError(f"a {kind} in lane {lane_index} at x={x} m is never in view")
        near, far = float(seen.min()) - 0.25, float(seen.max()) + 0.25
        enter_y, exit_y = (near, far) if direction > 0 else (far, near)
        stop_p = None
        if lane.stops_at_signal:
            stop_p = direction * self._stop_y(kind, x, direction, stop_offset_px, near=near, far=far)
        return LaneGeometry(enter_p=direction * enter_y, exit_p=direction * exit_y, stop_p=stop_p)

    def _stop_y(
        self, kind: VehicleKind, x: float, direction: int, offset_px: float, *, near: float, far: float
    ) -> float:
        """Ground y where the truth anchor is ``offset_px`` before the line, on its side of approach."""
        row = self._line[0][1]
        target = row + offset_px if direction > 0 else row - offset_px

        def anchor_row(y: float) -> float:
            boxes, _ = _project_boxes(self._camera, kind, x, direction, np.array([y]))
            box = _truth_boxes(self._camera, boxes, np.array([True]))[0]
            return (box[1] + box[3]) / 2 if box is not None else float("nan")

        lo, hi = near, far  # the anchor row falls as y grows (farther is higher in the image)
        for _ in range(60):
            mid = (lo + hi) / 2
            if anchor_row(mid) > target:
                lo = mid
            else:
                hi = mid
        y = (lo + hi) / 2
        # Rounding to whole pixels may leave the anchor on the far side: step back until it is before the line.
        step = -0.002 * direction
        while (anchor_row(y) - row) * direction <= 0:
            y += step
        return y


def _trip_track(camera: Camera, trip: Trip) -> ObjectTrack:
    frames = np.flatnonzero(~np.isnan(trip.ys))
    direction = trip.lane.direction
    track = ObjectTrack(trip.object_id, trip.arrival.kind, trip.lane.heading, trip.arrival.lane, {})
    if len(frames) == 0:
        return track
    boxes, ok = _project_boxes(camera, trip.arrival.kind, trip.x, direction, trip.ys[frames])
    for frame, box in zip(frames.tolist(), _truth_boxes(camera, boxes, ok), strict=True):
        if box is not None:
            track.boxes[frame] = box
    return track


def clip_rules(params: SceneParams) -> ClipRules:
    return ClipRules(
        line=counting_line(params),
        frame_width=params.width,
        last_frame=params.frame_count - 1,
        fps=params.fps,
        first_crossing_after_s=params.first_crossing_after_s,
        max_pair_iou=params.max_pair_iou,
    )


def plan_traffic(params: SceneParams) -> tuple[list[Trip], list[ObjectTrack]]:
    """The vehicles of the clip and their truth boxes; vehicles that would break a promise are left out.

    Leaving a vehicle out changes how the ones behind it drive, so the lane is simulated again until
    every remaining vehicle keeps the promises (a few rounds).
    """
    camera = scene_camera(params)
    geometry = _Geometry(params)
    rng = np.random.default_rng(params.seed)
    arrivals = plan_arrivals(
        params.lanes,
        rng,
        vehicles_per_minute=params.vehicles_per_minute,
        min_gap_m=params.min_gap_m,
        last_arrival_s=params.duration_s,
        max_stop_offset_px=params.max_stop_offset_px,
    )
    rules = clip_rules(params)
    for _ in range(100):
        positions = simulate(
            params.lanes, arrivals, geometry, params.signal, fps=params.fps, n_frames=params.frame_count
        )
        trips = [
            Trip(i + 1, arrival, params.lanes[arrival.lane], ys)
            for i, (arrival, ys) in enumerate(zip(arrivals, positions, strict=True))
        ]
        tracks = [_trip_track(camera, trip) for trip in trips]
        bad = {i for i, track in enumerate(tracks) if promise_problems(track, rules)}
        if not bad and params.max_pair_iou is not None:
            bad = overlapping_later(tracks, params.max_pair_iou)
        if not bad:
            return trips, tracks
        arrivals = [a for i, a in enumerate(arrivals) if i not in bad]
    raise RuntimeError("could not plan traffic that keeps the scene's promises; change the parameters")


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
    with av.open(str(tmp_video), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(params.fps), options=options)
        if not isinstance(stream, av.VideoStream):
            raise TypeError(f"{codec} did not give a video stream")
        stream.width, stream.height, stream.pix_fmt = params.width, params.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, params.fps)
        for index, image in enumerate(_render_frames(params, trips, tracks)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
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
    from devstack.scene_presets import PRESETS, preset  # noqa: PLC0415 - presets import this module

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
