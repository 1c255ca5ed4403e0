"""Observation vectors composed from configured components, built for every car of every copy in one call.

Components (design.md §6), each a block of the per-car vector, in the order ``ObservationConfig.components``
lists them; every value is scaled into the declared bounds and clipped there, so the declared space always
holds the observation:

    lidar            (lidar_beams,)  ranges downsampled from the scan (every k-th beam, or the minimum of each
                                      window with ``lidar_reduce="min"``) divided by lidar_range_m, in [0, 1]
    ego              (3,)            [v_long, v_lat] / v_scale and yaw_rate / yaw_rate_scale, in [-1, 1]
                                      (v_scale = the vehicle's largest |speed|)
    opponent_pose    (5 * (N-1),)    per other car, in the ego frame: [dx, dy] / opponent_range_m in [-1, 1],
                                      [sin, cos] of the heading difference,
                                      distance / opponent_range_m in [0, 1]
    opponent_motion  (3 * (N-1),)    per other car: its velocity in the ego frame [v_long, v_lat] / v_scale
                                      and its yaw_rate / yaw_rate_scale, in [-1, 1]
    prev_action      (2,)            the car's previous action, normalised to [-1, 1] (0 after a reset)

Other cars are listed in index order without the ego car. ``frame_stack`` > 1 concatenates the last k frames,
oldest first (a reset fills every slot with the first frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.vehicle import VehicleParams

COMPONENTS = ("lidar", "ego", "opponent_pose", "opponent_motion", "prev_action")
_REDUCE = ("subsample", "min")


@dataclass(frozen=True)
class ObservationConfig:
    """What each car observes (design.md §6); defaults are the gaplock vector observation."""

    components: tuple[str, ...] = ("lidar", "ego", "opponent_pose", "opponent_motion")  # blocks, in order
    lidar_beams: int = 108  # beams kept from the simulated scan (must divide into it no finer than 1:1)
    lidar_reduce: str = "subsample"  # "subsample" (every k-th beam) or "min" (minimum of each window)
    lidar_range_m: float | None = None  # ranges / this, clipped to 1 (None: the scanner's max)
    opponent_range_m: float = 10.0  # scale of opponent offsets and distance (clipped beyond it)
    yaw_rate_scale_radps: float | None = None  # yaw-rate scale (None: v_max * tan(s_max) / wheelbase)
    frame_stack: int = 1  # frames concatenated, oldest first

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError(f"ObservationConfig.components must name at least one of {COMPONENTS}")
        for name in self.components:
            if name not in COMPONENTS:
                raise ValueError(
                    f"ObservationConfig.components has unknown component {name!r}; allowed: {COMPONENTS}"
                )
        if len(set(self.components)) != len(self.components):
            raise ValueError(f"ObservationConfig.components lists a component twice: {self.components}")
        if not isinstance(self.lidar_beams, int) or self.lidar_beams < 1:
            raise ValueError(
                f"ObservationConfig.lidar_beams must be an integer >= 1, got {self.lidar_beams!r}"
            )
        if self.lidar_reduce not in _REDUCE:
            raise ValueError(
                f"ObservationConfig.lidar_reduce must be one of {_REDUCE}, got {self.lidar_reduce!r}"
            )
        if self.lidar_range_m is not None and not self.lidar_range_m > 0:
            raise ValueError(
                f"ObservationConfig.lidar_range_m must be > 0 m or None, got {self.lidar_range_m}"
            )
        if not self.opponent_range_m > 0:
            raise ValueError(f"ObservationConfig.opponent_range_m must be > 0 m, got {self.opponent_range_m}")
        if self.yaw_rate_scale_radps is not None and not self.yaw_rate_scale_radps > 0:
            raise ValueError(
                f"ObservationConfig.yaw_rate_scale_radps must be > 0 or None, got {self.yaw_rate_scale_radps}"
            )
        if not isinstance(self.frame_stack, int) or self.frame_stack < 1:
            raise ValueError(
                f"ObservationConfig.frame_stack must be an integer >= 1, got {self.frame_stack!r}"
            )


def lidar_windows(num_scan_beams: int, num_obs_beams: int) -> np.ndarray:
    """(K + 1,) window edges splitting B scan beams into K contiguous windows; subsampling keeps each window's
    middle beam, so the first and last kept beams sit symmetrically and the centre beam stays straight ahead
    for odd counts."""
    return np.round(np.linspace(0, num_scan_beams, num_obs_beams + 1)).astype(np.int64)


@njit(cache=True)
def _build_frame(
    state, scans, prev_action, edges, reduce_min, lidar_inv, v_inv, yaw_inv, opp_inv, offsets, out
):
    """Write one frame for every (env, car) into out (E, N, F); offsets[c] < 0 leaves component c out."""
    num_envs, num_cars = state.shape[0], state.shape[1]
    num_obs_beams = edges.shape[0] - 1
    o_lidar, o_ego, o_pose, o_motion, o_prev = offsets[0], offsets[1], offsets[2], offsets[3], offsets[4]
    for e in range(num_envs):
        for n in range(num_cars):
            x, y, v, yaw, yaw_rate, slip = (
                state[e, n, 0],
                state[e, n, 1],
                state[e, n, 3],
                state[e, n, 4],
                state[e, n, 5],
                state[e, n, 6],
            )
            if o_lidar >= 0:
                for k in range(num_obs_beams):
                    lo, hi = edges[k], edges[k + 1]
                    if reduce_min:
                        r = scans[e, n, lo]
                        for b in range(lo + 1, hi):
                            r = min(r, scans[e, n, b])
                    else:
                        r = scans[e, n, (lo + hi - 1) // 2]
                    out[e, n, o_lidar + k] = min(max(r * lidar_inv, 0.0), 1.0)
            if o_ego >= 0:
                out[e, n, o_ego] = _clip1(v * math.cos(slip) * v_inv)
                out[e, n, o_ego + 1] = _clip1(v * math.sin(slip) * v_inv)
                out[e, n, o_ego + 2] = _clip1(yaw_rate * yaw_inv)
            if o_prev >= 0:
                out[e, n, o_prev] = prev_action[e, n, 0]
                out[e, n, o_prev + 1] = prev_action[e, n, 1]
            if o_pose < 0 and o_motion < 0:
                continue
            c, s = math.cos(yaw), math.sin(yaw)
            j = 0
            for m in range(num_cars):
                if m == n:
                    continue
                dx, dy = state[e, m, 0] - x, state[e, m, 1] - y
                fx, fy = c * dx + s * dy, -s * dx + c * dy
                dpsi = state[e, m, 4] - yaw
                if o_pose >= 0:
                    base = o_pose + 5 * j
                    out[e, n, base] = _clip1(fx * opp_inv)
                    out[e, n, base + 1] = _clip1(fy * opp_inv)
                    out[e, n, base + 2] = math.sin(dpsi)
                    out[e, n, base + 3] = math.cos(dpsi)
                    out[e, n, base + 4] = min(math.sqrt(fx * fx + fy * fy) * opp_inv, 1.0)
                if o_motion >= 0:
                    base = o_motion + 3 * j
                    heading = state[e, m, 4] + state[e, m, 6]  # direction of the other car's velocity
                    vx, vy = state[e, m, 3] * math.cos(heading), state[e, m, 3] * math.sin(heading)
                    out[e, n, base] = _clip1((c * vx + s * vy) * v_inv)
                    out[e, n, base + 1] = _clip1((-s * vx + c * vy) * v_inv)
                    out[e, n, base + 2] = _clip1(state[e, m, 5] * yaw_inv)
                j += 1


@njit(cache=True, inline="always")
def _clip1(value):
    return min(max(value, -1.0), 1.0)


class ObservationBuilder:
    """Builds the (E, N, D) float32 observations of E copies of N cars into one reused buffer.

    Args:
        config: which components, scales and stacking.
        num_envs, num_cars: E and N.
        vehicle: for the speed and yaw-rate scales.
        lidar: the simulated scanner (beam count, max range).

    Attributes:
        size: D, the length of one car's observation (frame length times ``frame_stack``).
        low, high: (D,) float32 bounds of every observation.
        layout: component name -> slice of the first frame.
    """

    def __init__(
        self,
        config: ObservationConfig,
        num_envs: int,
        num_cars: int,
        vehicle: VehicleParams,
        lidar: LidarConfig,
    ) -> None:
        self.config = config
        self.num_envs, self.num_cars = num_envs, num_cars
        if "lidar" in config.components:
            if lidar.num_beams < config.lidar_beams:
                raise ValueError(
                    f"ObservationConfig.lidar_beams={config.lidar_beams} exceeds the simulated "
                    f"scan's num_beams={lidar.num_beams}; keep at most as many beams as are cast"
                )
        self._edges = lidar_windows(max(lidar.num_beams, 1), config.lidar_beams)
        self._reduce_min = config.lidar_reduce == "min"
        self._lidar_inv = 1.0 / (config.lidar_range_m or lidar.max_range_m)
        self._v_inv = 1.0 / max(vehicle.v_max, -vehicle.v_min)
        yaw_scale = config.yaw_rate_scale_radps or vehicle.v_max * math.tan(vehicle.s_max) / vehicle.wheelbase
        self._yaw_inv = 1.0 / yaw_scale
        self._opp_inv = 1.0 / config.opponent_range_m

        others = num_cars - 1
        sizes = {
            "lidar": config.lidar_beams,
            "ego": 3,
            "opponent_pose": 5 * others,
            "opponent_motion": 3 * others,
            "prev_action": 2,
        }
        lows = {
            "lidar": np.zeros(config.lidar_beams),
            "ego": -np.ones(3),
            "opponent_pose": np.tile([-1.0, -1.0, -1.0, -1.0, 0.0], others),
            "opponent_motion": -np.ones(3 * others),
            "prev_action": -np.ones(2),
        }
        offsets = np.full(len(COMPONENTS), -1, dtype=np.int64)
        self.layout: dict[str, slice] = {}
        pos = 0
        low_parts = []
        for name in config.components:
            offsets[COMPONENTS.index(name)] = pos
            self.layout[name] = slice(pos, pos + sizes[name])
            low_parts.append(lows[name])
            pos += sizes[name]
        self._offsets = offsets
        self.frame_size = pos
        stack = config.frame_stack
        self.size = pos * stack
        frame_low = np.concatenate(low_parts).astype(np.float32)
        self.low = np.tile(frame_low, stack)
        self.high = np.ones(self.size, dtype=np.float32)
        self._frame = np.zeros((num_envs, num_cars, pos), dtype=np.float32)
        self._stacked = (
            np.zeros((num_envs, num_cars, self.size), dtype=np.float32) if stack > 1 else self._frame
        )

    @property
    def buffer(self) -> np.ndarray:
        """The (E, N, D) buffer ``reset`` and ``build`` fill and return."""
        return self._stacked

    def _fill(self, state: np.ndarray, scans: np.ndarray, prev_action: np.ndarray) -> None:
        _build_frame(
            state,
            scans,
            prev_action,
            self._edges,
            self._reduce_min,
            self._lidar_inv,
            self._v_inv,
            self._yaw_inv,
            self._opp_inv,
            self._offsets,
            self._frame,
        )

    def reset(
        self, env_ids: np.ndarray, state: np.ndarray, scans: np.ndarray, prev_action: np.ndarray
    ) -> np.ndarray:
        """Build the first observation of copies ``env_ids`` (all frame slots get it); returns the full
        buffer."""
        self._fill(state, scans, prev_action)
        if self._stacked is not self._frame:
            self._stacked[env_ids] = np.tile(self._frame[env_ids], self.config.frame_stack)
        return self._stacked

    def build(self, state: np.ndarray, scans: np.ndarray, prev_action: np.ndarray) -> np.ndarray:
        """Observations (E, N, D) after a step, in a buffer reused by the next call (copy what you keep)."""
        self._fill(state, scans, prev_action)
        if self._stacked is not self._frame:
            f = self.frame_size
            self._stacked[..., :-f] = self._stacked[..., f:]
            self._stacked[..., -f:] = self._frame
        return self._stacked
