"""Plan a scene's traffic: simulate the lanes, project every vehicle's box, keep only fair vehicles.

A vehicle that would break one of the clip's promises (``scene_truth.promise_problems``) is left
out and the lanes are simulated again, since the ones behind it then drive differently.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devstack.scene_camera import Camera
from devstack.scene_meshes import VehicleKind, vehicle_mesh
from devstack.scene_params import FAR_LIMIT_M, SceneParams, counting_line, scene_camera
from devstack.scene_traffic import Arrival, LaneGeometry, LaneSpec, plan_arrivals, simulate
from devstack.scene_truth import Box, ClipRules, ObjectTrack, overlapping_later, promise_problems


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
