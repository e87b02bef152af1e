"""Named scenario clips for the accuracy proof; each is a SceneParams with a name and a one-line description.

    from devstack.scene_presets import preset
    params = preset("dense", duration_s=20.0)   # any SceneParams field can be overridden

Every preset is long enough for at least 50 counted crossings (so 2 % is one vehicle) except
where noted, and uses only vehicles the default SSD detector knows (cars and vans, which it calls
``Car``) unless its name says otherwise: ``mixed_traffic`` is the Vietnamese mix (mostly motorbikes,
some trucks and buses) that the SSD's vocabulary does not cover, kept for the motion backend and
the record.
"""

from __future__ import annotations

from typing import Any

from devstack.scene_meshes import VehicleKind
from devstack.scene_params import CameraSpec, LineSpec, SceneParams
from devstack.scene_render import LANE_WIDTH_M
from devstack.scene_traffic import Heading, LaneSpec, SignalSpec

INNER, OUTER = 0.5 * LANE_WIDTH_M, 1.5 * LANE_WIDTH_M
CARS_AND_VANS: dict[VehicleKind, float] = {"car": 0.8, "van": 0.2}


def four_lanes(
    mix: dict[VehicleKind, float],
    *,
    inner_speed: float = 9.0,
    outer_speed: float = 7.5,
    spread: float = 0.1,
    outer_mix: dict[VehicleKind, float] | None = None,
    outer_share: float = 1.0,
    lateral_m: float = 0.0,
    stops: bool = False,
) -> tuple[LaneSpec, ...]:
    """Two lanes each way: inner (faster) and outer lanes, towards the camera on the left."""
    lanes = []
    sides: tuple[tuple[Heading, float], ...] = (("towards", -1.0), ("away", 1.0))
    for heading, sign in sides:
        lanes.append(
            LaneSpec(
                x_m=sign * INNER,
                heading=heading,
                speed_mps=inner_speed,
                speed_spread=spread,
                mix=mix,
                stops_at_signal=stops,
            )
        )
        lanes.append(
            LaneSpec(
                x_m=sign * OUTER,
                heading=heading,
                speed_mps=outer_speed,
                speed_spread=spread,
                mix=outer_mix or mix,
                share=outer_share,
                lateral_spread_m=lateral_m,
                stops_at_signal=stops,
            )
        )
    return tuple(lanes)


PRESETS: dict[str, tuple[str, SceneParams]] = {
    "both_directions": (
        "four lanes, cars and vans both ways at a moderate rate",
        SceneParams(
            seed=101,
            duration_s=80.0,
            vehicles_per_minute=60.0,
            lanes=four_lanes(CARS_AND_VANS),
            min_gap_m=10.0,
            max_pair_iou=0.3,
        ),
    ),
    "dense": (
        "four busy lanes both ways, short gaps: followers and neighbours overlap in the image",
        SceneParams(
            seed=102,
            duration_s=50.0,
            vehicles_per_minute=110.0,
            lanes=four_lanes(CARS_AND_VANS, inner_speed=8.0, outer_speed=6.5, spread=0.15),
            min_gap_m=4.0,
            max_pair_iou=None,
        ),
    ),
    "occlusion": (
        "low camera: near vehicles hide the ones behind and beside them while they overtake; truth counts all",
        SceneParams(
            seed=103,
            duration_s=75.0,
            vehicles_per_minute=60.0,
            camera=CameraSpec(height_m=6.0, pitch_deg=16.0, x_m=3.0, yaw_deg=-5.0),
            lanes=four_lanes({"car": 0.6, "van": 0.4}, inner_speed=11.0, outer_speed=6.0, spread=0.1),
            min_gap_m=6.0,
            max_pair_iou=None,
            line=LineSpec(row_fraction=0.5),
        ),
    ),
    "stop_on_line": (
        "a signal at the counting line: queues stand with the first anchor right at the line, then drive off",
        SceneParams(
            seed=104,
            duration_s=100.0,
            vehicles_per_minute=60.0,
            lanes=four_lanes(CARS_AND_VANS, inner_speed=8.0, outer_speed=7.0, stops=True),
            min_gap_m=8.0,
            max_pair_iou=None,
            signal=SignalSpec(first_red_s=6.0, red_s=10.0, green_s=12.0),
            max_stop_offset_px=3.0,
        ),
    ),
    "line_extension": (
        "the line covers the two inner lanes only; outer-lane traffic passes beyond its ends and must not count",
        SceneParams(
            seed=105,
            duration_s=100.0,
            vehicles_per_minute=90.0,
            lanes=four_lanes(CARS_AND_VANS, outer_share=0.8),
            min_gap_m=10.0,
            max_pair_iou=0.3,
            line=LineSpec(x_from_m=-LANE_WIDTH_M, x_to_m=LANE_WIDTH_M),
        ),
    ),
    "mixed_traffic": (
        "Vietnamese mix: mostly motorbikes (outer lanes, spread across them), cars, vans, trucks, buses",
        SceneParams(
            seed=106,
            duration_s=60.0,
            vehicles_per_minute=90.0,
            lanes=four_lanes(
                {"car": 0.55, "van": 0.15, "truck": 0.15, "bus": 0.15},
                inner_speed=8.5,
                outer_speed=7.0,
                outer_mix={"motorbike": 1.0},
                outer_share=1.6,
                lateral_m=0.9,
            ),
            min_gap_m=5.0,
            max_pair_iou=None,
        ),
    ),
}
"""name -> (description, parameters)."""


def preset(name: str, **overrides: Any) -> SceneParams:
    """The named scenario, with any SceneParams fields replaced (e.g. a shorter duration for a test)."""
    if name not in PRESETS:
        raise KeyError(f"no scene preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    base = PRESETS[name][1]
    return SceneParams.model_validate({**base.model_dump(), **overrides})
