"""Shapes the violation rules are drawn with: segments, polygons and flow arrows in normalised image coordinates.

They are validated like ``LineConfig`` and ``ZoneConfig`` (points in 0..1, no degenerate segment, simple
polygons with an area), and turned into pixels once the frame size is known. ``PixelGeometry`` holds the
pixel form of one rule's shapes together with the few projections every rule needs.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.analytics.geometry import Point
from edge_agent.analytics.zones import check_simple_polygon

NormalisedPoint = tuple[float, float]


def _check_point(point: NormalisedPoint, what: str) -> NormalisedPoint:
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in point):
        raise ValueError(f"{what} {point}: points are normalised image coordinates in 0..1")
    return point


class SegmentConfig(BaseModel):
    """A line SEGMENT (a stop line) in normalised image coordinates; only the segment counts, not its extension."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: NormalisedPoint = Field(description="(x, y) in 0..1 of the image width/height.")
    end: NormalisedPoint = Field(
        description="(x, y) in 0..1; crossing from the left of start->end to its right is 'in' (as for lines)."
    )

    @field_validator("start", "end")
    @classmethod
    def _inside_image(cls, point: NormalisedPoint) -> NormalisedPoint:
        return _check_point(point, "segment point")

    @model_validator(mode="after")
    def _not_degenerate(self) -> SegmentConfig:
        if self.start == self.end:
            raise ValueError("segment start and end are the same point")
        return self


class ArrowConfig(BaseModel):
    """An arrow drawn along a lane, from ``start`` towards ``end``: the allowed direction of travel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: NormalisedPoint = Field(description="Tail of the arrow, (x, y) in 0..1.")
    end: NormalisedPoint = Field(description="Head of the arrow, (x, y) in 0..1: traffic flows towards it.")

    @field_validator("start", "end")
    @classmethod
    def _inside_image(cls, point: NormalisedPoint) -> NormalisedPoint:
        return _check_point(point, "arrow point")

    @model_validator(mode="after")
    def _not_degenerate(self) -> ArrowConfig:
        if math.dist(self.start, self.end) < 0.01:
            raise ValueError("the flow arrow is shorter than 0.01 of the image: draw it along the lane")
        return self


def check_polygon(polygon: tuple[NormalisedPoint, ...]) -> tuple[NormalisedPoint, ...]:
    """The same checks as ``ZoneConfig.polygon``: 3..64 points in 0..1, simple, with an area."""
    return check_simple_polygon(polygon, "rule area")


def to_pixels(points: tuple[NormalisedPoint, ...], width: int, height: int) -> npt.NDArray[np.float64]:
    return np.array(points, dtype=np.float64).reshape(-1, 2) * np.array([width, height], dtype=np.float64)


def unit_vector(start: Point, end: Point) -> tuple[float, float]:
    dx, dy = end[0] - start[0], end[1] - start[1]
    norm = math.hypot(dx, dy)
    return (dx / norm, dy / norm)


def project(points: npt.NDArray[np.floating], origin: Point, unit: tuple[float, float]) -> npt.NDArray[np.float64]:
    """Position of each point along ``unit`` from ``origin`` (pixels)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    along: npt.NDArray[np.float64] = (p[:, 0] - origin[0]) * unit[0] + (p[:, 1] - origin[1]) * unit[1]
    return along
