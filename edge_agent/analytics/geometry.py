"""Plane geometry shared by counting lines, zones and the synthetic scene's ground truth."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Point = tuple[float, float]


def side_of_line(points: npt.NDArray[np.float32], start: Point, end: Point) -> npt.NDArray[np.float64]:
    """Signed side of each point relative to the directed line start -> end.

    Image coordinates (x right, y down): for a line drawn left to right the value
    is positive below the line. A crossing from negative to positive is the
    line's ``in`` direction, from positive to negative its ``out`` direction.
    """
    ax, ay = start
    bx, by = end
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (bx - ax) * (p[:, 1] - ay) - (by - ay) * (p[:, 0] - ax)


def segments_intersect(p: Point, q: Point, start: Point, end: Point) -> bool:
    """True when the motion p -> q crosses the segment start -> end (not its infinite extension)."""
    pts = np.array([p, q], dtype=np.float32)
    s_pq = side_of_line(pts, start, end)
    if s_pq[0] * s_pq[1] > 0 or (s_pq[0] == 0 and s_pq[1] == 0):
        return False
    ends = np.array([start, end], dtype=np.float32)
    s_ab = side_of_line(ends, p, q)
    return bool(s_ab[0] * s_ab[1] <= 0)
