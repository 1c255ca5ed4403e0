"""Contact tests, numba-compiled: car footprint vs walls, car vs car, ray vs car.

Footprints are rectangles centred on the car's reference point, ``half_length`` along the heading and
``half_width`` across it. Walls are the non-free pixels of a map, each a unit square in pixel units; outside the
map counts as wall. Touching counts as contact.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from multi_agent_rl.sim.maps import TrackMap


@njit(cache=True, inline="always")
def is_wall_pixel(dist, ix, iy):
    """Whether pixel (ix, iy) is a wall; pixels outside the map are walls."""
    h, w = dist.shape
    if ix < 0 or iy < 0 or ix >= w or iy >= h:
        return True
    return dist[iy, ix] == 0.0


@njit(cache=True)
def footprint_touches_wall(dist, u, v, heading, half_length, half_width):
    """Whether a rectangle touches a wall pixel (separating axis test against each nearby wall square).

    Args:
        dist: (H, W) distance transform in pixels (0 on walls), see ``TrackMap.distance_px``.
        u, v: rectangle centre in map pixel coordinates.
        heading: rectangle heading in the map frame (rad).
        half_length, half_width: half extents in pixels.
    """
    c, s = math.cos(heading), math.sin(heading)
    ac, as_ = abs(c), abs(s)
    ext_x = half_length * ac + half_width * as_  # half extents of the axis-aligned bounding box
    ext_y = half_length * as_ + half_width * ac
    ix0, iy0 = int(math.floor(u)), int(math.floor(v))
    # Early exit: the nearest wall centre is farther than the footprint's circumradius plus a pixel diagonal.
    if not is_wall_pixel(dist, ix0, iy0):
        radius = math.sqrt(half_length * half_length + half_width * half_width)
        if dist[iy0, ix0] > radius + 1.5:
            return False
    pixel_on_car_axis = 0.5 * (ac + as_)  # half extent of a unit square projected on a rotated axis
    for iy in range(int(math.floor(v - ext_y)), int(math.floor(v + ext_y)) + 1):
        for ix in range(int(math.floor(u - ext_x)), int(math.floor(u + ext_x)) + 1):
            if not is_wall_pixel(dist, ix, iy):
                continue
            dx = ix + 0.5 - u
            dy = iy + 0.5 - v
            if abs(dx) > ext_x + 0.5 or abs(dy) > ext_y + 0.5:
                continue
            if abs(dx * c + dy * s) > half_length + pixel_on_car_axis:
                continue
            if abs(-dx * s + dy * c) > half_width + pixel_on_car_axis:
                continue
            return True
    return False


@njit(cache=True, inline="always")
def _separated_on(ax, ay, tx, ty, c1, s1, hl1, hw1, c2, s2, hl2, hw2):
    r1 = hl1 * abs(c1 * ax + s1 * ay) + hw1 * abs(-s1 * ax + c1 * ay)
    r2 = hl2 * abs(c2 * ax + s2 * ay) + hw2 * abs(-s2 * ax + c2 * ay)
    return abs(tx * ax + ty * ay) > r1 + r2


@njit(cache=True)
def rectangles_overlap(x1, y1, psi1, hl1, hw1, x2, y2, psi2, hl2, hw2):
    """Separating axis test of two oriented rectangles (touching counts as overlap)."""
    c1, s1 = math.cos(psi1), math.sin(psi1)
    c2, s2 = math.cos(psi2), math.sin(psi2)
    tx, ty = x2 - x1, y2 - y1
    if _separated_on(c1, s1, tx, ty, c1, s1, hl1, hw1, c2, s2, hl2, hw2):
        return False
    if _separated_on(-s1, c1, tx, ty, c1, s1, hl1, hw1, c2, s2, hl2, hw2):
        return False
    if _separated_on(c2, s2, tx, ty, c1, s1, hl1, hw1, c2, s2, hl2, hw2):
        return False
    if _separated_on(-s2, c2, tx, ty, c1, s1, hl1, hw1, c2, s2, hl2, hw2):
        return False
    return True


@njit(cache=True, inline="always")
def ray_rectangle_distance(ox, oy, dx, dy, cx, cy, c, s, half_length, half_width):
    """Distance along a unit ray to an oriented rectangle (slab method), or inf on a miss.

    Args:
        ox, oy: ray origin; dx, dy: unit direction.
        cx, cy: rectangle centre; c, s: cos and sin of its heading.
    Returns 0 when the origin lies inside the rectangle.
    """
    rx, ry = ox - cx, oy - cy
    lx = rx * c + ry * s  # origin and direction in the rectangle frame
    ly = -rx * s + ry * c
    ldx = dx * c + dy * s
    ldy = -dx * s + dy * c
    t_enter = -math.inf
    t_exit = math.inf
    if abs(ldx) < 1e-12:
        if abs(lx) > half_length:
            return math.inf
    else:
        t1 = (-half_length - lx) / ldx
        t2 = (half_length - lx) / ldx
        t_enter = max(t_enter, min(t1, t2))
        t_exit = min(t_exit, max(t1, t2))
    if abs(ldy) < 1e-12:
        if abs(ly) > half_width:
            return math.inf
    else:
        t1 = (-half_width - ly) / ldy
        t2 = (half_width - ly) / ldy
        t_enter = max(t_enter, min(t1, t2))
        t_exit = min(t_exit, max(t1, t2))
    if t_enter > t_exit or t_exit < 0.0:
        return math.inf
    return max(t_enter, 0.0)


def touches_wall(track: TrackMap, poses: np.ndarray, length_m: float, width_m: float) -> np.ndarray:
    """Whether footprints at world poses (K, 3) touch a wall of ``track``; returns (K,) bool."""
    poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
    uv = track.world_to_map(poses[:, :2])
    headings = poses[:, 2] - track.origin[2]
    hl = 0.5 * length_m / track.resolution_m
    hw = 0.5 * width_m / track.resolution_m
    dist = track.distance_px
    return np.array([footprint_touches_wall(dist, u, v, h, hl, hw) for (u, v), h in zip(uv, headings, strict=True)])
