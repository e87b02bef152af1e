"""Plane geometry shared by counting lines, zones and the synthetic scene's ground truth."""

from __future__ import annotations

from collections.abc import Sequence

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


def points_in_polygon(points: npt.NDArray[np.float32], polygon: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which points lie inside ``polygon`` ((m, 2) vertices, either orientation), vectorised.

    Even-odd ray casting towards +x. A point exactly on an edge may fall either way; zones are
    drawn with room around them, so that boundary case carries no meaning.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0:1], p[:, 1:2]  # (n, 1) against the (m,) edges below
    ax, ay = polygon[:, 0], polygon[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    straddles = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        # x where the edge meets the horizontal through the point; horizontal edges never straddle.
        x_cross = ax + (y - ay) * (bx - ax) / (by - ay)
    hits = straddles & (x < x_cross)
    return np.asarray(np.count_nonzero(hits, axis=1) % 2 == 1, dtype=np.bool_)


def polygon_area(polygon: Sequence[Point]) -> float:
    """Unsigned area (shoelace formula)."""
    p = np.asarray(polygon, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _segments_touch(p: Point, q: Point, a: Point, b: Point) -> bool:
    """True when the closed segments p-q and a-b share any point (collinear overlaps included)."""
    d1, d2 = side_of_line(np.array([a, b], dtype=np.float64), p, q)
    d3, d4 = side_of_line(np.array([p, q], dtype=np.float64), a, b)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True

    def on_segment(r: Point, s: Point, t: Point, side: float) -> bool:
        # t is collinear with r-s and within its bounding box
        return side == 0 and min(r[0], s[0]) <= t[0] <= max(r[0], s[0]) and min(r[1], s[1]) <= t[1] <= max(r[1], s[1])

    return (
        on_segment(p, q, a, float(d1))
        or on_segment(p, q, b, float(d2))
        or on_segment(a, b, p, float(d3))
        or on_segment(a, b, q, float(d4))
    )


def self_intersection(polygon: Sequence[Point]) -> tuple[int, int] | None:
    """Indices (i, j) of two edges that cross or touch where they should not, or None for a simple polygon.

    Edge i runs from vertex i to vertex i+1 (the last edge closes the ring). Neighbouring edges
    may only share their common vertex; a neighbour folding back over its edge also counts.
    """
    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            neighbours = j == i + 1 or (i == 0 and j == n - 1)
            (p, q), (a, b) = edges[i], edges[j]
            if not neighbours:
                if _segments_touch(p, q, a, b):
                    return (i, j)
                continue
            # Neighbours share one vertex; they are bad only if they are collinear and overlap.
            shared = q if j == i + 1 else p
            far_i = p if shared == q else q
            far_j = b if shared == a else a
            collinear = side_of_line(np.array([far_j], dtype=np.float64), p, q)[0] == 0
            if collinear and np.dot(np.subtract(far_i, shared), np.subtract(far_j, shared)) > 0:
                return (i, j)
    return None
