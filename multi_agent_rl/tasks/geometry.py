"""Small geometric helpers shared by the tasks, pure and vectorised (numba where they run every step)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from multi_agent_rl.sim.lidar import first_wall_crossing
from multi_agent_rl.sim.maps import Polyline


def segments_cross(p0: np.ndarray, p1: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether the motion segments p0 -> p1 (..., 2) cross the fixed segment a -> b (2,) (touching counts).

    Used for finish lines: a car crosses when its position before and after a step lie on different sides of
    (or on) the line and the crossing point lies between the line's end points.
    """
    d = b - a
    side0 = d[0] * (p0[..., 1] - a[1]) - d[1] * (p0[..., 0] - a[0])
    side1 = d[0] * (p1[..., 1] - a[1]) - d[1] * (p1[..., 0] - a[0])
    m = p1 - p0
    end_a = m[..., 0] * (a[1] - p0[..., 1]) - m[..., 1] * (a[0] - p0[..., 0])
    end_b = m[..., 0] * (b[1] - p0[..., 1]) - m[..., 1] * (b[0] - p0[..., 0])
    moved = (m[..., 0] != 0.0) | (m[..., 1] != 0.0)
    return moved & (side0 * side1 <= 0.0) & (end_a * end_b <= 0.0) & ((side0 != 0.0) | (side1 != 0.0))


class PolylineIndex:
    """A polyline prepared for fast nearest-point queries (arc length of the closest point), numba-backed.

    Args:
        line: the centreline (or raceline) to project on.
    """

    def __init__(self, line: Polyline) -> None:
        pts = np.asarray(line.points, dtype=np.float64)
        ends = np.roll(pts, -1, axis=0) if line.closed else pts[1:]
        self.starts = np.ascontiguousarray(pts[: len(ends)])
        self.vectors = np.ascontiguousarray(ends - self.starts)
        self.lengths = np.hypot(self.vectors[:, 0], self.vectors[:, 1])
        self.cumulative = np.concatenate([[0.0], np.cumsum(self.lengths)])[:-1].copy()
        self.length_m = float(self.lengths.sum())
        self.closed = bool(line.closed)

    def arc_length(self, xy: np.ndarray) -> np.ndarray:
        """Arc length (m) of the nearest point of the line for each point of ``xy`` (..., 2)."""
        flat = np.ascontiguousarray(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        out = np.empty(flat.shape[0])
        _project(flat, self.starts, self.vectors, self.lengths, self.cumulative, out)
        return out.reshape(np.shape(xy)[:-1])

    def pose_at(self, s_m: np.ndarray) -> np.ndarray:
        """(..., 3) [x, y, heading] of the points at arc lengths ``s_m`` (m); wrapped on a closed line,
        clipped on an open one."""
        s = np.asarray(s_m, dtype=np.float64)
        s = np.mod(s, self.length_m) if self.closed else np.clip(s, 0.0, self.length_m)
        seg = np.clip(np.searchsorted(self.cumulative, s, side="right") - 1, 0, len(self.lengths) - 1)
        t = (s - self.cumulative[seg]) / np.maximum(self.lengths[seg], 1e-12)
        xy = self.starts[seg] + t[..., None] * self.vectors[seg]
        heading = np.arctan2(self.vectors[seg, 1], self.vectors[seg, 0])
        return np.concatenate([xy, heading[..., None]], axis=-1)

    def progress(self, s_before: np.ndarray, s_after: np.ndarray) -> np.ndarray:
        """Signed arc length gained (m); on a closed line the shorter way round the seam."""
        delta = s_after - s_before
        if self.closed:
            half = 0.5 * self.length_m
            delta = (delta + half) % self.length_m - half
        return delta


@njit(cache=True)
def _project(xy, starts, vectors, lengths, cumulative, out):
    for k in range(xy.shape[0]):
        best = math.inf
        best_s = 0.0
        for i in range(starts.shape[0]):
            vx, vy = vectors[i, 0], vectors[i, 1]
            rx, ry = xy[k, 0] - starts[i, 0], xy[k, 1] - starts[i, 1]
            l2 = vx * vx + vy * vy
            t = 0.0 if l2 <= 0.0 else min(max((rx * vx + ry * vy) / l2, 0.0), 1.0)
            dx, dy = rx - t * vx, ry - t * vy
            d2 = dx * dx + dy * dy
            if d2 < best:
                best = d2
                best_s = cumulative[i] + t * lengths[i]
        out[k] = best_s


@njit(cache=True)
def ray_distance_m(dist, map_ox, map_oy, map_cos, map_sin, res, x, y, direction, max_range_m):
    """Distance (m) from world point (x, y) along world direction ``direction`` (rad) to where the ray enters the
    first wall pixel (``dist`` == 0, or off the map), capped at ``max_range_m``; 0 from inside a wall.

    A pixel-by-pixel walk (exact on the pixel grid): meant for short rays such as a wall clearance, where it beats
    ray marching's set-up; the LiDAR uses the simulator's marcher.
    """
    h, w = dist.shape
    rx, ry = x - map_ox, y - map_oy
    u0 = (map_cos * rx + map_sin * ry) / res
    v0 = (-map_sin * rx + map_cos * ry) / res
    c, s = math.cos(direction), math.sin(direction)
    du = map_cos * c + map_sin * s
    dv = -map_sin * c + map_cos * s
    ix, iy = int(math.floor(u0)), int(math.floor(v0))
    if ix < 0 or iy < 0 or ix >= w or iy >= h or dist[iy, ix] == 0.0:
        return 0.0
    return first_wall_crossing(dist, u0, v0, du, dv, 0.0, max_range_m / res) * res
