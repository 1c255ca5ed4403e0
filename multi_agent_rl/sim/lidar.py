"""2-D LiDAR by ray marching over the map's distance transform, numba-compiled.

Each beam starts at the sensor and advances by the distance-transform value of the pixel it stands in (a disk of
that radius around the pixel centre holds no wall centre), until it lands in a wall pixel, leaves the map, or passes
``max_range_m``. The last step is then refined by walking the pixels it crossed (a DDA walk), so the returned range
is where the beam enters the first wall pixel on that step, not where the step happened to land. Other cars are
visible: every beam is intersected with every other car's footprint and the nearer hit is kept.

Beam i points at ``-fov/2 + i * fov / (N - 1)`` from the car's heading: index 0 is the right-rear, the middle beam
looks straight ahead. Angles are exact (cos/sin of each offset computed once, then rotated by the heading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from multi_agent_rl.sim.collision import is_wall_pixel, ray_rectangle_distance


@dataclass(frozen=True)
class LidarConfig:
    """Scanner settings.

    Attributes:
        num_beams: beams per scan (0 turns the LiDAR off).
        fov_rad: field of view; beams spread evenly from -fov/2 to +fov/2 around the heading.
        max_range_m: ranges are capped here.
        noise_std_m: standard deviation of additive Gaussian range noise (0 for none).
        mount_offset_m: sensor position ahead of the car's reference point along its heading.
    """

    num_beams: int = 1080
    fov_rad: float = 4.7
    max_range_m: float = 30.0
    noise_std_m: float = 0.01
    mount_offset_m: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.num_beams, int) or self.num_beams < 0:
            raise ValueError(f"lidar num_beams must be a non-negative integer, got {self.num_beams!r}")
        if self.num_beams == 1 and self.fov_rad != 0:
            raise ValueError("lidar with num_beams=1 needs fov_rad=0 (a single beam straight ahead)")
        if not 0.0 <= self.fov_rad <= 2.0 * math.pi:
            raise ValueError(f"lidar fov_rad must lie in [0, 2*pi], got {self.fov_rad}")
        if not self.max_range_m > 0:
            raise ValueError(f"lidar max_range_m must be > 0, got {self.max_range_m}")
        if not self.noise_std_m >= 0:
            raise ValueError(f"lidar noise_std_m must be >= 0, got {self.noise_std_m}")

    def beam_angles(self) -> np.ndarray:
        """(num_beams,) beam offsets from the heading (rad)."""
        if self.num_beams == 1:
            return np.zeros(1)
        return -0.5 * self.fov_rad + np.arange(self.num_beams) * (self.fov_rad / (self.num_beams - 1))


_SQRT2_PX = 1.4143  # sqrt(2) rounded up


@njit(cache=True)
def first_wall_crossing(dist, u0, v0, du, dv, t_free, t_wall):
    """Walk the pixels from t_free (a free point) to t_wall (in a wall); return where the first wall pixel starts."""
    u = u0 + t_free * du
    v = v0 + t_free * dv
    ix = int(math.floor(u))
    iy = int(math.floor(v))
    if du > 0.0:
        step_x, next_x, delta_x = 1, (ix + 1 - u0) / du, 1.0 / du
    elif du < 0.0:
        step_x, next_x, delta_x = -1, (ix - u0) / du, -1.0 / du
    else:
        step_x, next_x, delta_x = 0, math.inf, math.inf
    if dv > 0.0:
        step_y, next_y, delta_y = 1, (iy + 1 - v0) / dv, 1.0 / dv
    elif dv < 0.0:
        step_y, next_y, delta_y = -1, (iy - v0) / dv, -1.0 / dv
    else:
        step_y, next_y, delta_y = 0, math.inf, math.inf
    while True:
        if next_x < next_y:
            t = next_x
            ix += step_x
            next_x += delta_x
        else:
            t = next_y
            iy += step_y
            next_y += delta_y
        if t >= t_wall:
            return t_wall
        if is_wall_pixel(dist, ix, iy):
            return max(t, t_free)


@njit(cache=True)
def _march_beams(dist, u0, v0, du, dv, max_px, out_px):
    """March many rays from one sensor at once; ``out_px[i]`` gets ray i's range in pixels.

    All rays advance one step per round ("wavefront" order), so the steps of different rays are independent and
    the CPU overlaps their memory lookups instead of waiting on one ray's chain of dependent loads. Rays leave the
    active list when they land in a wall or pass max_px; each one is then refined by ``first_wall_crossing``.
    """
    h, w = dist.shape
    count = du.shape[0]
    iu, iv = int(math.floor(u0)), int(math.floor(v0))
    if iu < 0 or iv < 0 or iu >= w or iv >= h or dist[iv, iu] == 0.0:
        out_px[:] = 0.0  # the sensor sits in a wall or off the map
        return
    first = dist[iv, iu]  # the first step is the same for every ray
    t = np.full(count, min(first, max_px))
    t_free = np.zeros(count)
    reached_max = np.zeros(count, dtype=np.bool_)
    active = np.arange(count)
    remaining = count
    if first >= max_px:
        remaining = 0
        reached_max[:] = True
    while remaining > 0:
        kept = 0
        for j in range(remaining):
            i = active[j]
            ti = t[i]
            u = u0 + ti * du[i]
            v = v0 + ti * dv[i]
            if u < 0.0 or v < 0.0 or u >= w or v >= h:
                continue
            step = dist[int(v), int(u)]
            if step == 0.0:
                continue
            t_free[i] = ti
            ti += step
            t[i] = ti
            if ti >= max_px:
                reached_max[i] = True
                continue
            active[kept] = i
            kept += 1
        remaining = kept
    for i in range(count):
        # The step from t_free had length d = dist at t_free's pixel: no wall pixel lies within d - sqrt(2) of a
        # point in that pixel (centre-to-centre distance d, both points within sqrt(2)/2 of their centres), so
        # only the last sqrt(2) pixels of the step need the pixel walk.
        walk_from = max(t_free[i], t[i] - _SQRT2_PX)
        if reached_max[i]:
            if walk_from >= max_px:
                out_px[i] = max_px  # the whole range is proven free
                continue
            u = u0 + max_px * du[i]
            v = v0 + max_px * dv[i]
            if u < 0.0 or v < 0.0 or u >= w or v >= h or dist[int(v), int(u)] == 0.0:
                out_px[i] = first_wall_crossing(dist, u0, v0, du[i], dv[i], walk_from, max_px)
            else:
                out_px[i] = max_px
        else:
            out_px[i] = min(first_wall_crossing(dist, u0, v0, du[i], dv[i], walk_from, t[i]), max_px)


@njit(cache=True)
def _scan_beams(
    dist, map_ox, map_oy, map_cos, map_sin, res, state, e, n, b0, b1, beam_cos, beam_sin, mount_m, max_range_m,
    half_length_m, half_width_m, noise, noise_std, out,
):
    """Fill out[e, n, b0:b1] with the ranges (m) of car n in env e; ``state`` is (E, N, 7) (x, y at 0, 1, yaw at 4)."""
    num_cars = state.shape[1]
    x, y, psi = state[e, n, 0], state[e, n, 1], state[e, n, 4]
    cw, sw = math.cos(psi), math.sin(psi)
    sx = x + mount_m * cw  # sensor in the world frame
    sy = y + mount_m * sw
    rx, ry = sx - map_ox, sy - map_oy
    u0 = (map_cos * rx + map_sin * ry) / res  # sensor in map pixel coordinates
    v0 = (-map_sin * rx + map_cos * ry) / res
    ch = map_cos * cw + map_sin * sw  # heading in the map frame
    sh = -map_sin * cw + map_cos * sw
    count = b1 - b0
    du = np.empty(count)
    dv = np.empty(count)
    for k in range(count):
        bc, bs = beam_cos[b0 + k], beam_sin[b0 + k]
        du[k] = ch * bc - sh * bs
        dv[k] = sh * bc + ch * bs
    ranges = np.empty(count)
    _march_beams(dist, u0, v0, du, dv, max_range_m / res, ranges)
    radius = math.sqrt(half_length_m * half_length_m + half_width_m * half_width_m)
    for k in range(count):
        b = b0 + k
        r = ranges[k] * res
        if num_cars > 1:
            bc, bs = beam_cos[b], beam_sin[b]
            dx = cw * bc - sw * bs  # beam direction in the world frame
            dy = sw * bc + cw * bs
            for m in range(num_cars):
                if m == n:
                    continue
                qx = state[e, m, 0] - sx
                qy = state[e, m, 1] - sy
                along = qx * dx + qy * dy
                across = qx * dy - qy * dx
                if along + radius < 0.0 or along - radius > r or abs(across) > radius:
                    continue  # the car's bounding circle misses this beam or lies beyond the wall hit
                pm = state[e, m, 4]
                t = ray_rectangle_distance(
                    sx, sy, dx, dy, state[e, m, 0], state[e, m, 1], math.cos(pm), math.sin(pm),
                    half_length_m, half_width_m,
                )
                if t < r:
                    r = t
        if noise_std > 0.0:
            r += noise_std * noise[e, n, b]
        out[e, n, b] = min(max(r, 0.0), max_range_m)


@njit(cache=True, parallel=True)
def scan_parallel(
    dist, map_ox, map_oy, map_cos, map_sin, res, state, beam_cos, beam_sin, mount_m, max_range_m,
    half_length_m, half_width_m, noise, noise_std, chunks, cars, out,
):
    """Scans of the cars with ``cars[e, n]`` True ((E, N) bool) in every env, work split into E * N * chunks
    items over numba's threads; the other cars' rows of ``out`` are left as they are."""
    num_envs, num_cars, num_beams = out.shape
    per_chunk = (num_beams + chunks - 1) // chunks
    for job in prange(num_envs * num_cars * chunks):
        e = job // (num_cars * chunks)
        n = (job // chunks) % num_cars
        b0 = (job % chunks) * per_chunk
        b1 = min(num_beams, b0 + per_chunk)
        if cars[e, n]:
            _scan_beams(
                dist, map_ox, map_oy, map_cos, map_sin, res, state, e, n, b0, b1, beam_cos, beam_sin, mount_m,
                max_range_m, half_length_m, half_width_m, noise, noise_std, out,
            )


@njit(cache=True)
def scan_serial(
    dist, map_ox, map_oy, map_cos, map_sin, res, state, beam_cos, beam_sin, mount_m, max_range_m,
    half_length_m, half_width_m, noise, noise_std, chunks, cars, out,
):
    """Same as ``scan_parallel`` on the calling thread (no thread start-up cost for small batches)."""
    num_envs, num_cars, num_beams = out.shape
    for e in range(num_envs):
        for n in range(num_cars):
            if cars[e, n]:
                _scan_beams(
                    dist, map_ox, map_oy, map_cos, map_sin, res, state, e, n, 0, num_beams, beam_cos, beam_sin,
                    mount_m, max_range_m, half_length_m, half_width_m, noise, noise_std, out,
                )


@njit(cache=True)
def fill_noise(generators, env_ids, noise):
    """noise[e] <- standard normal draws from generators[e] for each e in env_ids.

    ``generators`` is a numba typed List of numpy Generators, one per env copy; numba draws the same stream numpy
    would (2.4 ns a sample here against 7.7 ns through numpy's Python API) and advances each generator in place.
    """
    for j in range(env_ids.shape[0]):
        e = int(env_ids[j])
        _fill_one(generators[e], noise[e])


@njit(cache=True, inline="always")
def _fill_one(generator, block):
    flat = block.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = generator.standard_normal()

