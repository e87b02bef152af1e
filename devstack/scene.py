"""Deterministic synthetic traffic clip with exact ground truth, for the demo and the tests.

A pole camera looks down a four-lane road (two lanes each way, right-hand
traffic). Cars drive through at constant speeds; every object's per-frame pixel
box and every counting-line crossing are written next to the H.264 clip::

    python -m devstack.scene --out DIR [--seed N] [--duration S] [--fps F] [--variant clean|noisy]

writes ``DIR/<name>.mp4`` and ``DIR/<name>.truth.json`` and skips the render
when both exist with the same parameter hash.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from devstack.scene_camera import Camera
from devstack.scene_render import (
    LANE_WIDTH_M,
    Face,
    PlacedVehicle,
    VehicleShape,
    car_mesh,
    draw_shadow,
    draw_vehicle,
    ground_texture,
    project_vehicle_box,
    render_ground,
)
from edge_agent.analytics.geometry import segments_intersect, side_of_line

SCENE_FORMAT = "ioc-scene-truth/1"
RENDERER_VERSION = 4
"""Bump when the pixels change for the same parameters, so cached clips are re-rendered."""

PAINTS_BGR: tuple[tuple[int, int, int], ...] = (
    (235, 235, 235),  # white (the most common car colour in Vietnam)
    (236, 234, 228),
    (190, 190, 195),  # silver
    (30, 30, 32),  # black
    (95, 95, 100),  # grey
    (40, 40, 170),  # red
    (120, 60, 20),  # blue
    (200, 215, 225),  # beige
    (60, 60, 140),  # dark red
    (70, 45, 25),  # navy
)


class SceneParams(BaseModel):
    """Everything that decides the pixels and the truth; its hash names the cache entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=7, description="Random seed for the traffic schedule, paints and textures.")
    duration_s: float = Field(default=60.0, gt=0, le=3600, description="Clip length in seconds.")
    fps: int = Field(default=12, ge=2, le=60, description="Frames per second.")
    width: int = Field(default=960, ge=320, le=3840, description="Frame width in pixels.")
    height: int = Field(default=540, ge=240, le=2160, description="Frame height in pixels.")
    variant: Literal["clean", "noisy"] = Field(
        default="clean", description="'noisy' adds sensor noise and brightness flicker (a harder clip for later)."
    )
    vehicles_per_minute: float = Field(default=40.0, gt=0, le=120, description="Mean arrival rate over all lanes.")
    first_crossing_after_s: float = Field(
        default=2.0, ge=0, description="No crossing before this time, so an RTSP client joining late misses none."
    )
    crf: int = Field(default=20, ge=0, le=51, description="x264 quality (lower is better).")

    def param_hash(self) -> str:
        canonical = json.dumps({"renderer": RENDERER_VERSION, **self.model_dump()}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Fixed camera and road; they are part of the renderer (RENDERER_VERSION), not parameters.
CAMERA_HEIGHT_M = 8.0
CAMERA_PITCH_DEG = 28.0
FOCAL_PX_AT_960 = 900.0
LINE_ROW_FRACTION = 0.42
LANES: tuple[tuple[float, int, float], ...] = (
    # (lane centre x in metres, heading: -1 towards the camera, +1 away; speed m/s).
    # Cars use the two inner lanes; the outer lanes (motorbike lanes on Vietnamese roads) stay free in the
    # clean clip because the SSD sees cars from the side there (near the frame edges) much less surely.
    (-0.5 * LANE_WIDTH_M, -1, 8.5),
    (0.5 * LANE_WIDTH_M, 1, 7.5),
)
MIN_GAP_M = 12.0
"""Bumper-to-bumper distance in a lane; enough that a follower's box never hides much of its leader."""
MAX_PAIR_IOU = 0.3


def scene_camera(params: SceneParams) -> Camera:
    return Camera(
        width=params.width,
        height=params.height,
        focal_px=FOCAL_PX_AT_960 * params.width / 960,
        height_m=CAMERA_HEIGHT_M,
        pitch_deg=CAMERA_PITCH_DEG,
    )


def counting_line(params: SceneParams) -> tuple[tuple[float, float], tuple[float, float]]:
    """Full-width line; the quarter pixel keeps every box centre (a multiple of 0.5) off the line."""
    row = round(params.height * LINE_ROW_FRACTION) + 0.25
    return (0.0, row), (float(params.width), row)


@dataclass(frozen=True, slots=True)
class Trip:
    """One vehicle's drive through the view: lane, start time and its look."""

    object_id: int
    lane: int
    start_s: float
    paint: tuple[int, int, int]
    shape: VehicleShape

    def position(self, t: float, y_start: float) -> float:
        _, heading, speed = LANES[self.lane]
        return y_start + heading * speed * (t - self.start_s)


def _entry_exit_y(camera: Camera, lane: int, shape: VehicleShape) -> tuple[float, float]:
    """Ground y where the vehicle is just out of view before entering and after leaving."""
    x, heading, _ = LANES[lane]
    mesh = _mesh(shape)
    near, far = camera.ground_y_at_row(camera.height), camera.ground_y_at_row(0)

    def outside(y: float) -> bool:
        x1, y1, x2, y2 = project_vehicle_box(PlacedVehicle(mesh, (0, 0, 0), x, y, heading), camera)
        return bool(y2 < 0 or y1 > camera.height or x2 < 0 or x1 > camera.width)

    y_near = near
    while not outside(y_near):
        y_near -= 0.25
    y_far = far
    while not outside(y_far):
        y_far += 0.25
    return (y_near, y_far) if heading > 0 else (y_far, y_near)


@functools.lru_cache(maxsize=8)
def _mesh(shape: VehicleShape) -> tuple[Face, ...]:
    return tuple(car_mesh(shape))


@dataclass(frozen=True, slots=True)
class ObjectTrack:
    trip: Trip
    boxes: dict[int, tuple[int, int, int, int, bool]]
    """frame -> (x1, y1, x2, y2, fully_inside) of the visible pixels."""


def _plan_trips(params: SceneParams, rng: np.random.Generator) -> list[Trip]:
    trips: list[Trip] = []
    per_lane_rate = params.vehicles_per_minute / 60.0 / len(LANES)
    shape = VehicleShape()
    next_id = 1
    for lane, (_, _, speed) in enumerate(LANES):
        min_headway = (shape.length + MIN_GAP_M) / speed
        t = float(rng.uniform(0.0, 1.0 / per_lane_rate))
        while t < params.duration_s:
            paint = PAINTS_BGR[int(rng.integers(len(PAINTS_BGR)))]
            trips.append(Trip(next_id, lane, round(t, 4), paint, shape))
            next_id += 1
            t += min_headway + float(rng.exponential(1.0 / per_lane_rate))
    trips.sort(key=lambda tr: (tr.start_s, tr.lane))
    return [Trip(i + 1, tr.lane, tr.start_s, tr.paint, tr.shape) for i, tr in enumerate(trips)]


def _frame_vehicles(
    trips: list[Trip], t: float, camera: Camera, starts: dict[int, tuple[float, float]]
) -> list[tuple[Trip, PlacedVehicle]]:
    """Vehicles on the road at time ``t``, farthest first (painter's order)."""
    placed = []
    for trip in trips:
        y_start, y_end = starts[trip.object_id]
        if t < trip.start_s:
            continue
        y = trip.position(t, y_start)
        x, heading, _ = LANES[trip.lane]
        if (heading > 0 and y > y_end) or (heading < 0 and y < y_end):
            continue
        placed.append((trip, PlacedVehicle(_mesh(trip.shape), trip.paint, x, y, heading)))
    placed.sort(key=lambda tv: -tv[1].y)
    return placed


def _render_frames(
    params: SceneParams, trips: list[Trip]
) -> Iterator[tuple[int, npt.NDArray[np.uint8], list[tuple[int, tuple[int, int, int, int, bool]]]]]:
    camera = scene_camera(params)
    ground = render_ground(camera, ground_texture(params.seed, 80.0))
    starts = {tr.object_id: _entry_exit_y(camera, tr.lane, tr.shape) for tr in trips}
    noise_rng = np.random.default_rng(params.seed + 1)
    n_frames = round(params.duration_s * params.fps)
    for index in range(n_frames):
        t = index / params.fps
        frame = ground.copy()
        vehicles = _frame_vehicles(trips, t, camera, starts)
        for _, vehicle in vehicles:
            draw_shadow(frame, vehicle, camera)
        boxes = []
        for trip, vehicle in vehicles:
            draw_vehicle(frame, vehicle, camera)
            box = _visible_box(vehicle, camera)
            if box is not None:
                boxes.append((trip.object_id, box))
        # A slight lens blur: real cameras never give perfectly sharp polygon edges.
        blurred = np.asarray(cv2.GaussianBlur(frame, (0, 0), 0.7), dtype=np.float32)
        if params.variant == "noisy":
            gain = float(noise_rng.uniform(0.85, 1.1))
            blurred = (blurred * gain + noise_rng.normal(0, 6, blurred.shape)).astype(np.float32)
        yield index, np.clip(blurred, 0, 255).astype(np.uint8), boxes


def _visible_box(vehicle: PlacedVehicle, camera: Camera) -> tuple[int, int, int, int, bool] | None:
    """The silhouette's pixel box clipped to the frame (the bbox of every projected vertex is the
    silhouette's bbox), and whether the whole vehicle is inside the frame."""
    x1, y1, x2, y2 = project_vehicle_box(vehicle, camera)
    full = bool(x1 >= 0 and y1 >= 0 and x2 <= camera.width and y2 <= camera.height)
    cx1, cy1 = max(round(x1), 0), max(round(y1), 0)
    cx2, cy2 = min(round(x2), camera.width), min(round(y2), camera.height)
    if cx2 - cx1 < 2 or cy2 - cy1 < 2:
        return None
    return (cx1, cy1, cx2, cy2, full)


def _trip_track(params: SceneParams, trip: Trip) -> ObjectTrack:
    """Boxes of one trip in every frame, without drawing a pixel (a trip does not depend on the others)."""
    camera = scene_camera(params)
    starts = {trip.object_id: _entry_exit_y(camera, trip.lane, trip.shape)}
    track = ObjectTrack(trip, {})
    for index in range(round(params.duration_s * params.fps)):
        for _, vehicle in _frame_vehicles([trip], index / params.fps, camera, starts):
            box = _visible_box(vehicle, camera)
            if box is not None:
                track.boxes[index] = box
    return track


def _select_trips(params: SceneParams, planned: list[Trip]) -> list[Trip]:
    """Keep the trips that keep the clip's promises: one full crossing, not too early, gone before the end,
    never hiding another car. Later trips give way to earlier ones."""
    line = counting_line(params)
    last_frame = round(params.duration_s * params.fps) - 1
    kept: dict[int, ObjectTrack] = {}
    for trip in planned:
        track = _trip_track(params, trip)
        crossings = _crossings({trip.object_id: track}, line, params.fps)
        if len(crossings) != 1 or crossings[0]["time_s"] < params.first_crossing_after_s:
            continue
        if not track.boxes or max(track.boxes) >= last_frame or min(track.boxes) == 0:
            continue  # still in view at the end (or already at the start): would not cross fully
        if _max_overlap({**kept, trip.object_id: track}, trip.object_id) > MAX_PAIR_IOU:
            continue
        kept[trip.object_id] = track
    return [Trip(i + 1, t.trip.lane, t.trip.start_s, t.trip.paint, t.trip.shape) for i, t in enumerate(kept.values())]


def _max_overlap(tracks: dict[int, ObjectTrack], object_id: int) -> float:
    mine = tracks[object_id].boxes
    worst = 0.0
    for other_id, other in tracks.items():
        if other_id == object_id:
            continue
        for f, box in mine.items():
            if f in other.boxes:
                worst = max(worst, _box_iou(box, other.boxes[f]))
    return worst


def _crossings(
    tracks: dict[int, ObjectTrack], line: tuple[tuple[float, float], tuple[float, float]], fps: int
) -> list[dict[str, Any]]:
    """Every crossing of the line by a box centre, found with the analytics' own geometry."""
    start, end = line
    events = []
    for object_id, track in sorted(tracks.items()):
        frames = sorted(track.boxes)
        for prev, cur in itertools.pairwise(frames):
            if cur != prev + 1:
                continue
            p = _centre(track.boxes[prev])
            q = _centre(track.boxes[cur])
            if segments_intersect(p, q, start, end):
                side = float(side_of_line(np.array([p], dtype=np.float32), start, end)[0])
                events.append(
                    {
                        "object_id": object_id,
                        "class": "car",
                        "frame": cur,
                        "time_s": round(cur / fps, 6),
                        "direction": "in" if side < 0 else "out",
                    }
                )
    events.sort(key=lambda e: (e["frame"], e["object_id"]))
    return events


def _centre(box: tuple[int, int, int, int, bool]) -> tuple[float, float]:
    x1, y1, x2, y2, _ = box
    return ((x1 + x2) / 2, (y1 + y2) / 2)


def _box_iou(a: tuple[int, int, int, int, bool], b: tuple[int, int, int, int, bool]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


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
    rng = np.random.default_rng(params.seed)
    trips = _select_trips(params, _plan_trips(params, rng))
    tracks = {tr.object_id: ObjectTrack(tr, {}) for tr in trips}
    tmp_video = video_path.with_suffix(".partial.mp4")
    with av.open(str(tmp_video), mode="w") as container:
        stream = container.add_stream(
            "libx264",
            rate=Fraction(params.fps),
            options={
                "crf": str(params.crf),
                "preset": "veryfast",
                # One keyframe a second (RTSP clients joining mid-stream recover fast), no B-frames (low latency).
                "x264-params": f"keyint={params.fps}:min-keyint={params.fps}:scenecut=0:bframes=0",
            },
        )
        stream.width, stream.height, stream.pix_fmt = params.width, params.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, params.fps)
        for index, image, boxes in _render_frames(params, trips):
            for object_id, box in boxes:
                tracks[object_id].boxes[index] = box
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    line = counting_line(params)
    crossings = _crossings(tracks, line, params.fps)
    truth = _truth_document(params, tracks, line, crossings)
    _check_truth(params, tracks, crossings)
    tmp_video.replace(video_path)
    truth_path.write_text(json.dumps(truth, indent=1))
    return video_path, truth_path


def _truth_document(
    params: SceneParams,
    tracks: dict[int, ObjectTrack],
    line: tuple[tuple[float, float], tuple[float, float]],
    crossings: list[dict[str, Any]],
) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {"in": {}, "out": {}}
    for c in crossings:
        counts[c["direction"]][c["class"]] = counts[c["direction"]].get(c["class"], 0) + 1
    return {
        "format": SCENE_FORMAT,
        "param_hash": params.param_hash(),
        "params": params.model_dump(),
        "fps": params.fps,
        "width": params.width,
        "height": params.height,
        "frame_count": round(params.duration_s * params.fps),
        "anchor": "center",
        "line": {
            "start": list(line[0]),
            "end": list(line[1]),
            "convention": "edge_agent.analytics.geometry.side_of_line: negative -> positive side is 'in'",
        },
        "objects": [
            {
                "id": object_id,
                "class": "car",
                "heading": "towards_camera" if LANES[t.trip.lane][1] < 0 else "away_from_camera",
                "lane": t.trip.lane,
                "boxes": [[f, *t.boxes[f][:4], int(t.boxes[f][4])] for f in sorted(t.boxes)],
            }
            for object_id, t in sorted(tracks.items())
            if t.boxes
        ],
        "box_columns": ["frame", "x1", "y1", "x2", "y2", "fully_inside"],
        "crossings": crossings,
        "counts": counts,
    }


def _check_truth(params: SceneParams, tracks: dict[int, ObjectTrack], crossings: list[dict[str, Any]]) -> None:
    """The clip's promises: every car crosses once, late enough, without hiding another."""
    by_object: dict[int, int] = {}
    for c in crossings:
        by_object[c["object_id"]] = by_object.get(c["object_id"], 0) + 1
    problems = []
    for object_id in tracks:
        if by_object.get(object_id, 0) != 1:
            problems.append(f"object {object_id} crosses {by_object.get(object_id, 0)} times")
    early = [c for c in crossings if c["time_s"] < params.first_crossing_after_s]
    if early:
        problems.append(f"crossings before {params.first_crossing_after_s}s: {early}")
    frames: dict[int, list[tuple[int, int, int, int, bool]]] = {}
    for track in tracks.values():
        for f, box in track.boxes.items():
            frames.setdefault(f, []).append(box)
    for f, boxes in frames.items():
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if _box_iou(boxes[i], boxes[j]) > MAX_PAIR_IOU:
                    problems.append(f"frame {f}: two boxes overlap with IoU {_box_iou(boxes[i], boxes[j]):.2f}")
    if problems:
        raise RuntimeError("scene ground truth breaks its promises: " + "; ".join(problems[:5]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--name", default="scene", help="file stem (default: scene)")
    defaults = SceneParams()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds")
    parser.add_argument("--fps", type=int, default=defaults.fps)
    parser.add_argument("--variant", choices=["clean", "noisy"], default=defaults.variant)
    args = parser.parse_args(argv)
    params = SceneParams(seed=args.seed, duration_s=args.duration, fps=args.fps, variant=args.variant)
    video, truth = render_scene(params, args.out, args.name)
    doc = json.loads(truth.read_text())
    sys.stdout.write(f"{video}\n{truth}\ncrossings: {len(doc['crossings'])} counts: {doc['counts']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
