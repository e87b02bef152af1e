"""Parameters of a synthetic scene clip: road traffic, counting line, camera pose, size, codec.

Everything that decides the pixels and the truth lives in ``SceneParams``; its hash (with
``RENDERER_VERSION``) names the cached clip.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from devstack.scene_camera import Camera
from devstack.scene_render import LANE_WIDTH_M
from devstack.scene_traffic import LaneSpec, SignalSpec
from devstack.scene_truth import Segment

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
