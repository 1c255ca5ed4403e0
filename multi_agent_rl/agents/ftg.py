"""Follow-The-Gap: a reactive LiDAR driver, numba-compiled and batched over environment copies.

Per scan (design.md §7):
  1. keep the beams within ``field_of_view_rad`` of straight ahead, clip them to ``max_range_m`` and
     smooth them with a moving average ``smoothing_window_rad`` wide;
  2. find the closest point and zero a "bubble" of beams around it: every beam whose direction passes within
     ``bubble_radius_m`` of that point;
  3. find the widest run of consecutive beams whose range exceeds ``min_gap_range_m`` (the gap);
  4. aim at the gap's middle beam (``aim="middle"``, the default) or at its farthest point (the middle of the
     beams within ``farthest_tolerance_m`` of its maximum, so a plateau of capped ranges gives its centre);
  5. steer ``steering_gain`` times the aim angle, low-pass filtered (``steer_smoothing``), limited to
     ``max_steer_rad`` and, when the speed is given, to what ``max_lateral_accel_mps2`` allows at that speed;
  6. pick the speed that can still stop within the free distance ahead (``braking_decel_mps2``, minus
     ``stop_margin_m``), no faster than the lateral-acceleration limit of the chosen steering, clipped to
     [``min_speed_mps``, ``max_speed_mps``]: like the classic FTG it keeps creeping at ``min_speed_mps`` even when
     blocked (so it can be forced into a wall, which is what the gaplock attacker is for), unless
     ``stop_when_blocked`` stops it once the free distance ahead is down to ``stop_margin_m``.
With no gap at all it steers toward the longest beam at ``min_speed_mps``.

The core is :func:`follow_the_gap`, a pure function; :class:`FollowTheGap` keeps the steering filter's state
per copy. Neither depends on torch or on the agent protocol: they take raw scans (metres) and return
``[steering_angle_rad, target_speed_mps]`` actions, the simulator's action format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

_AIMS = ("farthest", "middle")


@dataclass(frozen=True)
class FTGConfig:
    """Follow-The-Gap parameters (SI units; defaults suit the LIMO robot of the gaplock task)."""

    field_of_view_rad: float = math.pi  # beams used: within +-fov/2 of straight ahead (the rest is ignored)
    max_range_m: float = 10.0  # ranges are clipped here before anything else
    smoothing_window_rad: float = 0.02  # width of the moving-average filter over beams (0 = no smoothing)
    bubble_radius_m: float = 0.35  # beams passing within this distance of the closest point are zeroed
    min_gap_range_m: float = 1.5  # a gap is beams beyond this (keep it above half the track width)
    aim: str = "middle"  # "middle" (the gap's middle beam) or "farthest" (centre of its farthest beams)
    farthest_tolerance_m: float = 0.5  # beams within this of the gap's maximum count as "farthest"
    steering_gain: float = 1.0  # steering angle = gain * aim angle (before limits)
    steer_smoothing: float = 0.5  # low-pass weight of the previous steering command, in [0, 1)
    max_steer_rad: float = 0.46  # steering command limit (set to the vehicle's s_max)
    wheelbase_m: float = 0.33  # used by the lateral-acceleration limits (set to the vehicle's lf + lr)
    max_lateral_accel_mps2: float = 4.0  # caps steering at speed and speed in turns: v^2 tan|d| / L <= this
    ahead_half_angle_rad: float = 0.12  # the free distance ahead is the minimum over beams within this angle
    braking_decel_mps2: float = 1.5  # speed = sqrt(2 * decel * (free distance ahead - stop margin))
    stop_margin_m: float = 0.4  # distance kept to whatever is ahead when stopped
    min_speed_mps: float = 0.2  # speed floor while there is room ahead (creeping lets a hemmed-in car turn away)
    max_speed_mps: float = 1.0  # speed cap
    stop_when_blocked: bool = False  # stop when the free distance ahead is <= stop_margin_m (False: keep creeping)

    def __post_init__(self) -> None:
        positive = (
            "field_of_view_rad",
            "max_range_m",
            "min_gap_range_m",
            "max_steer_rad",
            "wheelbase_m",
            "max_lateral_accel_mps2",
            "braking_decel_mps2",
            "max_speed_mps",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"FTGConfig.{name} must be a positive finite number, got {value!r}")
        non_negative = (
            "smoothing_window_rad",
            "bubble_radius_m",
            "farthest_tolerance_m",
            "steering_gain",
            "ahead_half_angle_rad",
            "stop_margin_m",
            "min_speed_mps",
        )
        for name in non_negative:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"FTGConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.aim not in _AIMS:
            raise ValueError(f"FTGConfig.aim must be one of {_AIMS}, got {self.aim!r}")
        if not 0.0 <= self.steer_smoothing < 1.0:
            raise ValueError(f"FTGConfig.steer_smoothing must lie in [0, 1), got {self.steer_smoothing}")
        if self.min_speed_mps > self.max_speed_mps:
            raise ValueError(
                f"FTGConfig.min_speed_mps ({self.min_speed_mps}) must not exceed "
                f"max_speed_mps ({self.max_speed_mps})"
            )
        if self.min_gap_range_m >= self.max_range_m:
            raise ValueError(
                f"FTGConfig.min_gap_range_m ({self.min_gap_range_m}) must be below "
                f"max_range_m ({self.max_range_m}), or no beam can ever be part of a gap"
            )


class _Kernel(NamedTuple):
    """FTGConfig turned into the flat numbers the kernel reads, for a given set of beam angles."""

    first: int  # first beam inside the field of view
    last: int  # one past the last beam inside it
    half_window: int  # moving-average half width (beams)
    beam_step_rad: float
    max_range_m: float
    bubble_radius_m: float
    min_gap_range_m: float
    aim_middle: bool
    farthest_tolerance_m: float
    steering_gain: float
    steer_smoothing: float
    max_steer_rad: float
    wheelbase_m: float
    max_lateral_accel_mps2: float
    ahead_first: int
    ahead_last: int
    braking_decel_mps2: float
    stop_margin_m: float
    min_speed_mps: float
    max_speed_mps: float
    stop_when_blocked: bool


def _kernel_args(config: FTGConfig, beam_angles_rad: np.ndarray) -> _Kernel:
    angles = np.asarray(beam_angles_rad, dtype=np.float64)
    if angles.ndim != 1 or angles.size < 2 or not np.all(np.diff(angles) > 0):
        raise ValueError("beam_angles_rad must be a 1-D increasing array of at least 2 beam angles (rad)")
    step = float(np.mean(np.diff(angles)))
    inside = np.flatnonzero(np.abs(angles) <= 0.5 * config.field_of_view_rad + 1e-9)
    ahead = np.flatnonzero(np.abs(angles) <= config.ahead_half_angle_rad + 1e-9)
    if inside.size == 0:
        raise ValueError(
            f"FTGConfig.field_of_view_rad={config.field_of_view_rad} keeps no beam of this scanner"
        )
    if ahead.size == 0:  # narrower than one beam: use the beam nearest to straight ahead
        ahead = np.array([int(np.argmin(np.abs(angles)))])
    return _Kernel(
        first=int(inside[0]),
        last=int(inside[-1]) + 1,
        half_window=int(round(0.5 * config.smoothing_window_rad / step)),
        beam_step_rad=step,
        max_range_m=config.max_range_m,
        bubble_radius_m=config.bubble_radius_m,
        min_gap_range_m=config.min_gap_range_m,
        aim_middle=config.aim == "middle",
        farthest_tolerance_m=config.farthest_tolerance_m,
        steering_gain=config.steering_gain,
        steer_smoothing=config.steer_smoothing,
        max_steer_rad=config.max_steer_rad,
        wheelbase_m=config.wheelbase_m,
        max_lateral_accel_mps2=config.max_lateral_accel_mps2,
        ahead_first=int(ahead[0]),
        ahead_last=int(ahead[-1]) + 1,
        braking_decel_mps2=config.braking_decel_mps2,
        stop_margin_m=config.stop_margin_m,
        min_speed_mps=config.min_speed_mps,
        max_speed_mps=config.max_speed_mps,
        stop_when_blocked=config.stop_when_blocked,
    )


@njit(cache=True)
def _ftg_batch(scans, angles, speeds, has_speed, k, prev_steer, work, out):
    """Fill out (E, 2) with actions and prev_steer (E,) with the new filtered steering; ``work`` is (2, B)."""
    num_envs = scans.shape[0]
    first, last, hw = k.first, k.last, k.half_window
    clipped = work[0]
    smooth = work[1]
    for e in range(num_envs):
        # 1. clip, then moving average (running sum over the window, truncated at the field-of-view edges)
        for b in range(first, last):
            r = scans[e, b]
            clipped[b] = min(max(r, 0.0), k.max_range_m) if r == r else 0.0  # NaN reads as 0 (blocked)
        acc = 0.0
        lo, hi = first, first  # window [lo, hi)
        for b in range(first, last):
            while hi < min(last, b + hw + 1):
                acc += clipped[hi]
                hi += 1
            while lo < max(first, b - hw):
                acc -= clipped[lo]
                lo += 1
            smooth[b] = acc / (hi - lo)
        # free distance ahead, before the bubble removes anything
        ahead = k.max_range_m
        for b in range(k.ahead_first, k.ahead_last):
            ahead = min(ahead, smooth[b])
        # 2. bubble around the closest point
        closest = first
        for b in range(first + 1, last):
            if smooth[b] < smooth[closest]:
                closest = b
        r_close = smooth[closest]
        if r_close <= k.bubble_radius_m:
            half = last - first  # inside the bubble: every beam passes within the radius
        else:
            half = int(math.ceil(math.asin(k.bubble_radius_m / r_close) / k.beam_step_rad))
        for b in range(max(first, closest - half), min(last, closest + half + 1)):
            smooth[b] = 0.0
        # 3. widest gap
        best_start, best_len, run_start = -1, 0, -1
        for b in range(first, last + 1):
            free = b < last and smooth[b] > k.min_gap_range_m
            if free and run_start < 0:
                run_start = b
            elif not free and run_start >= 0:
                if b - run_start > best_len:
                    best_start, best_len = run_start, b - run_start
                run_start = -1
        # 4. aim point
        if best_len == 0:
            target = first
            for b in range(first + 1, last):
                if clipped[b] > clipped[target]:
                    target = b
            speed_cap = k.min_speed_mps
        else:
            if k.aim_middle:
                target = best_start + (best_len - 1) // 2
            else:
                peak = 0.0
                for b in range(best_start, best_start + best_len):
                    peak = max(peak, smooth[b])
                lo_b, hi_b = -1, -1
                for b in range(best_start, best_start + best_len):
                    if smooth[b] >= peak - k.farthest_tolerance_m:
                        if lo_b < 0:
                            lo_b = b
                        hi_b = b
                target = (lo_b + hi_b) // 2
            speed_cap = k.max_speed_mps
        # 5. steering: gain, filter, limits
        raw = k.steering_gain * angles[target]
        steer = k.steer_smoothing * prev_steer[e] + (1.0 - k.steer_smoothing) * raw
        limit = k.max_steer_rad
        if has_speed:
            v2 = speeds[e] * speeds[e]
            if v2 > 1e-9:
                limit = min(limit, math.atan(k.max_lateral_accel_mps2 * k.wheelbase_m / v2))
        steer = min(max(steer, -limit), limit)
        prev_steer[e] = steer
        # 6. speed: stop within the free distance ahead, respect the lateral limit of this steering angle; the speed
        # floor keeps a blocked car creeping (classic FTG, which an adversary can push into a wall) unless told to stop
        room = ahead - k.stop_margin_m
        if room <= 0.0 and k.stop_when_blocked:
            speed = 0.0
        else:
            speed = math.sqrt(2.0 * k.braking_decel_mps2 * max(room, 0.0))
            tan_steer = math.tan(abs(steer))
            if tan_steer > 1e-9:
                speed = min(speed, math.sqrt(k.max_lateral_accel_mps2 * k.wheelbase_m / tan_steer))
            speed = min(max(speed, k.min_speed_mps), speed_cap)
        out[e, 0] = steer
        out[e, 1] = speed


def follow_the_gap(
    scans: np.ndarray,
    beam_angles_rad: np.ndarray,
    config: FTGConfig,
    prev_steer_rad: np.ndarray,
    speeds_mps: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Follow-The-Gap actions for a batch of scans (pure: nothing is modified in place).

    Args:
        scans: (E, B) ranges (m), beam b at ``beam_angles_rad[b]`` from the heading (the simulator's layout).
        beam_angles_rad: (B,) increasing beam angles (rad).
        config: the driver's parameters.
        prev_steer_rad: (E,) previous filtered steering commands (rad), zeros at an episode start.
        speeds_mps: (E,) current speeds (m/s) for the steering-at-speed limit, or None to skip that limit.
    Returns:
        actions: (E, 2) float64 ``[steering_angle_rad, target_speed_mps]``.
        steer: (E,) the new filtered steering (pass it back as ``prev_steer_rad`` next step).
    """
    scans = np.atleast_2d(scans)
    steer = np.array(prev_steer_rad, dtype=np.float64, copy=True).reshape(scans.shape[0])
    actions = np.empty((scans.shape[0], 2))
    kernel = _kernel_args(config, beam_angles_rad)
    speeds = np.zeros(1) if speeds_mps is None else np.ascontiguousarray(speeds_mps, dtype=np.float64)
    work = np.empty((2, scans.shape[1]))
    _ftg_batch(
        scans,
        np.asarray(beam_angles_rad, np.float64),
        speeds,
        speeds_mps is not None,
        kernel,
        steer,
        work,
        actions,
    )
    return actions, steer


class FollowTheGap:
    """Follow-The-Gap for E copies, keeping each copy's steering filter state.

    Args:
        beam_angles_rad: (B,) beam angles of the scanner (``Simulator.beam_angles``), increasing.
        config: parameters.
        num_envs: E, the batch size of every call.

    Call it with raw scans (E, B) in metres (float32 or float64, any strides along E) and optionally the
    speeds (E,) in m/s; it returns (E, 2) ``[steering_angle_rad, target_speed_mps]`` in a buffer it reuses
    (copy what you keep). ``reset(env_ids)`` clears the steering filter of copies whose episode restarts.
    """

    def __init__(
        self, beam_angles_rad: np.ndarray, config: FTGConfig | None = None, num_envs: int = 1
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.config = config or FTGConfig()
        self.num_envs = num_envs
        self._angles = np.ascontiguousarray(beam_angles_rad, dtype=np.float64)
        self._kernel = _kernel_args(self.config, self._angles)
        self._steer = np.zeros(num_envs)
        self._out = np.zeros((num_envs, 2))
        self._work = np.empty((2, self._angles.size))
        self._no_speed = np.zeros(1)

    def reset(self, env_ids: np.ndarray | None = None) -> None:
        """Zero the steering filter of the given copies (all by default)."""
        if env_ids is None:
            self._steer[:] = 0.0
        else:
            self._steer[env_ids] = 0.0

    def __call__(self, scans: np.ndarray, speeds_mps: np.ndarray | None = None) -> np.ndarray:
        """(E, 2) actions for scans (E, B) in metres; see the class docstring."""
        if scans.shape != (self.num_envs, self._angles.size):
            raise ValueError(
                f"scans must have shape (num_envs, beams) = ({self.num_envs}, {self._angles.size}), "
                f"got {scans.shape}"
            )
        speeds = self._no_speed if speeds_mps is None else speeds_mps
        _ftg_batch(
            scans,
            self._angles,
            speeds,
            speeds_mps is not None,
            self._kernel,
            self._steer,
            self._work,
            self._out,
        )
        return self._out
