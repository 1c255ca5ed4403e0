"""The batched simulator: E environment copies x N cars on one map, stepped as arrays in one call.

Per env step, for every car: the action ``[steering_angle_rad, target_speed_mps]`` goes through the steering delay
line and the steering/speed controllers to (steering velocity, acceleration) inputs, the single-track model is
integrated (``action_repeat`` physics steps), the result is sanitised, and contacts are resolved: a car touching a
wall, or two cars overlapping, go back to their pre-step poses with zero speed and yaw rate and get their
``collided`` flag. Then every car's LiDAR scan is cast, other cars included.

Arrays (read-only views into the simulator's own buffers, valid until the next call):
    state: (E, N, 7) float64 [x, y, steer, speed, yaw, yaw_rate, slip]
    scans: (E, N, B) float32 ranges in metres
    collided: (E, N) bool, contact during the last step (or at reset)

``Simulator.car_contact`` (E, N) bool tells which of those contacts were with another car (a car can touch a
wall and a car in the same step; both flags are then set).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, typed

from multi_agent_rl.sim.collision import footprint_touches_wall, rectangles_overlap
from multi_agent_rl.sim.dynamics import (
    STATE_SIZE,
    acceleration_command,
    clamp_steering,
    integrate,
    sanitize,
    steering_velocity_command,
)
from multi_agent_rl.sim.lidar import (
    LidarConfig,
    fill_noise,
    scan_parallel,
    scan_serial,
)
from multi_agent_rl.sim.maps import TrackMap
from multi_agent_rl.sim.vehicle import F1TENTH, VehicleParams

_INTEGRATORS = ("rk4", "euler")
_STEER_MODES = ("proportional", "bang_bang")
_PARALLEL_MIN_RAYS = 4096
"""Below this many rays per step the scan runs on the calling thread: waking the pool costs more than it saves."""
_THREAD_MODES = ("auto", "always", "never")
_TUNE_EVERY_STEPS = 500
"""``threads="auto"`` times one serial and one parallel scan this often and keeps the faster until the next check."""


@dataclass(frozen=True)
class SimConfig:
    """Physics and actuation settings.

    Attributes:
        timestep_s: physics step (s).
        integrator: "rk4" or "euler".
        action_repeat: physics steps per env step, the action held (collisions checked after each one).
        steer_mode: "proportional" (sv = steer_gain_per_s * error, clipped to +-sv_max) or "bang_bang" (the
            F1TENTH gym's +-sv_max).
        steer_gain_per_s: proportional steering gain (1/s); gain * timestep_s = 1 reaches the command in one step
            when the rate limit allows.
        steer_delay_steps: physics steps between a steering command and its use (0 = none).
        lidar: the scanner.
        threads: LiDAR scans on numba's thread pool: "always", "never", or "auto" (big batches only, and only
            while a parallel scan measures faster than a serial one: when another process or the learner's
            threads want the same cores, a parallel step waits for a descheduled thread and can take several
            times longer than a serial one).
    """

    timestep_s: float = 0.01
    integrator: str = "rk4"
    action_repeat: int = 1
    steer_mode: str = "proportional"
    steer_gain_per_s: float = 100.0
    steer_delay_steps: int = 1
    lidar: LidarConfig = field(default_factory=LidarConfig)
    threads: str = "auto"

    def __post_init__(self) -> None:
        if not (self.timestep_s > 0 and math.isfinite(self.timestep_s)):
            raise ValueError(f"timestep_s must be a positive number of seconds, got {self.timestep_s}")
        if self.integrator not in _INTEGRATORS:
            raise ValueError(f"integrator must be one of {_INTEGRATORS}, got {self.integrator!r}")
        if not isinstance(self.action_repeat, int) or self.action_repeat < 1:
            raise ValueError(f"action_repeat must be an integer >= 1, got {self.action_repeat!r}")
        if self.steer_mode not in _STEER_MODES:
            raise ValueError(f"steer_mode must be one of {_STEER_MODES}, got {self.steer_mode!r}")
        if not 0 < self.steer_gain_per_s * self.timestep_s <= 1.0:
            raise ValueError(
                f"steer_gain_per_s * timestep_s must lie in (0, 1] (larger overshoots the command), got "
                f"{self.steer_gain_per_s} * {self.timestep_s}"
            )
        if not isinstance(self.steer_delay_steps, int) or self.steer_delay_steps < 0:
            raise ValueError(f"steer_delay_steps must be an integer >= 0, got {self.steer_delay_steps!r}")
        if self.threads not in _THREAD_MODES:
            raise ValueError(f"threads must be one of {_THREAD_MODES}, got {self.threads!r}")


class SimView(NamedTuple):
    """What a step or reset returns: read-only views valid until the simulator's next call."""

    state: np.ndarray
    scans: np.ndarray
    collided: np.ndarray


@njit(cache=True)
def _physics_step(
    state, prev, steer_queue, queue_slot, actions, p, dt, use_rk4, gain, bang_bang, repeat,
    dist, map_ox, map_oy, map_cos, map_sin, res, collided, car_contact,
):
    """Advance every car of every env by ``repeat`` physics steps; resolve wall and car-car contacts."""
    num_envs, num_cars = state.shape[0], state.shape[1]
    delay = steer_queue.shape[2]
    hl_m, hw_m = 0.5 * p.length, 0.5 * p.width
    for e in range(num_envs):
        for n in range(num_cars):
            collided[e, n] = False
            car_contact[e, n] = False
        for k in range(repeat):
            for n in range(num_cars):
                s = (state[e, n, 0], state[e, n, 1], state[e, n, 2], state[e, n, 3],
                     state[e, n, 4], state[e, n, 5], state[e, n, 6])
                steer_cmd = actions[e, n, 0]
                if delay > 0:
                    slot = (queue_slot + k) % delay
                    applied = steer_queue[e, n, slot]
                    steer_queue[e, n, slot] = steer_cmd
                else:
                    applied = steer_cmd
                sv = steering_velocity_command(applied, s[2], gain, bang_bang, p)
                accel = acceleration_command(actions[e, n, 1], s[3], p)
                new = clamp_steering(sanitize(integrate(s, sv, accel, p, dt, use_rk4), s), p)
                for i in range(7):
                    prev[e, n, i] = s[i]
                    state[e, n, i] = new[i]
            for n in range(num_cars):
                if _car_touches_wall(state, e, n, dist, map_ox, map_oy, map_cos, map_sin, res, hl_m, hw_m):
                    _stop_at_previous(state, prev, e, n)
                    collided[e, n] = True
            for i in range(num_cars):
                for j in range(i + 1, num_cars):
                    if _cars_overlap(state, e, i, j, hl_m, hw_m):
                        _stop_at_previous(state, prev, e, i)
                        _stop_at_previous(state, prev, e, j)
                        collided[e, i] = True
                        collided[e, j] = True
                        car_contact[e, i] = True
                        car_contact[e, j] = True


@njit(cache=True, inline="always")
def _car_touches_wall(state, e, n, dist, map_ox, map_oy, map_cos, map_sin, res, hl_m, hw_m):
    """Whether car n of env e touches a wall (its world pose taken into the map's pixel frame)."""
    rx, ry = state[e, n, 0] - map_ox, state[e, n, 1] - map_oy
    u = (map_cos * rx + map_sin * ry) / res
    v = (-map_sin * rx + map_cos * ry) / res
    heading = state[e, n, 4] - math.atan2(map_sin, map_cos)
    return footprint_touches_wall(dist, u, v, heading, hl_m / res, hw_m / res)


@njit(cache=True, inline="always")
def _cars_overlap(state, e, i, j, hl_m, hw_m):
    """Whether cars i and j of env e overlap."""
    return rectangles_overlap(
        state[e, i, 0], state[e, i, 1], state[e, i, 4], hl_m, hw_m,
        state[e, j, 0], state[e, j, 1], state[e, j, 4], hl_m, hw_m,
    )


@njit(cache=True, inline="always")
def _stop_at_previous(state, prev, e, n):
    """Put car n back at its pre-step pose (and steering), at rest."""
    for i in range(7):
        state[e, n, i] = prev[e, n, i]
    state[e, n, 3] = 0.0
    state[e, n, 5] = 0.0
    state[e, n, 6] = 0.0


@njit(cache=True)
def _contacts_at_rest(
    state, dist, map_ox, map_oy, map_cos, map_sin, res, hl_m, hw_m, env_ids, collided, car_contact,
):
    """Contact flags of the given envs without moving anything (used after a reset)."""
    num_cars = state.shape[1]
    for e in env_ids:
        for n in range(num_cars):
            collided[e, n] = _car_touches_wall(state, e, n, dist, map_ox, map_oy, map_cos, map_sin, res, hl_m, hw_m)
            car_contact[e, n] = False
        for i in range(num_cars):
            for j in range(i + 1, num_cars):
                if _cars_overlap(state, e, i, j, hl_m, hw_m):
                    collided[e, i] = True
                    collided[e, j] = True
                    car_contact[e, i] = True
                    car_contact[e, j] = True


class Simulator:
    """E copies of an N-car race on one map, stepped together.

    Args:
        track: the map (its distance transform is computed on first use and kept on the map object).
        num_envs: E, independent copies.
        num_cars: N, cars per copy.
        vehicle: parameters shared by every car.
        config: physics, actuation and LiDAR settings.
        seed: seeds the per-copy noise generators until ``reset`` is given seeds of its own.

    Every copy owns a ``numpy.random.Generator`` for its LiDAR noise; ``reset(..., seeds=...)`` re-seeds the
    copies it resets, and without seeds the generators simply continue, so episodes never repeat the same noise.
    """

    def __init__(
        self,
        track: TrackMap,
        num_envs: int = 1,
        num_cars: int = 1,
        vehicle: VehicleParams = F1TENTH,
        config: SimConfig | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if not isinstance(num_cars, int) or num_cars < 1:
            raise ValueError(f"num_cars must be an integer >= 1, got {num_cars!r}")
        self.track = track
        self.num_envs = num_envs
        self.num_cars = num_cars
        self.vehicle = vehicle
        self.config = config or SimConfig()
        self._params = vehicle.as_args()
        lidar = self.config.lidar
        angles = lidar.beam_angles()
        self.beam_angles = angles
        self._beam_cos = np.cos(angles)
        self._beam_sin = np.sin(angles)
        self._map = track.kernel_args()

        self._state = np.zeros((num_envs, num_cars, STATE_SIZE))
        self._prev = np.zeros_like(self._state)
        self._steer_queue = np.zeros((num_envs, num_cars, self.config.steer_delay_steps))
        self._queue_slot = 0
        self._scans = np.zeros((num_envs, num_cars, lidar.num_beams), dtype=np.float32)
        self._noise = np.zeros_like(self._scans) if lidar.noise_std_m > 0 else np.zeros((0, 0, 0), np.float32)
        self._collided = np.zeros((num_envs, num_cars), dtype=bool)
        self._car_contact = np.zeros((num_envs, num_cars), dtype=bool)
        self._rngs = typed.List([np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(num_envs)])
        self._all_envs = np.arange(num_envs)
        self._all_cars = np.ones((num_envs, num_cars), dtype=bool)
        rays = num_envs * num_cars * lidar.num_beams
        threads = _thread_count()
        mode = self.config.threads
        self._can_parallelize = threads > 1 and mode != "never" and (mode == "always" or rays >= _PARALLEL_MIN_RAYS)
        self._tune = self._can_parallelize and mode == "auto"
        self.parallel_scan = self._can_parallelize
        """Whether the last step's scan ran on numba's thread pool."""
        self._scan_seconds = [0.0, 0.0]  # last timed serial and parallel scan
        self._steps = 0
        # Enough work items that every thread gets some even with a single car.
        self._chunks = max(1, -(-2 * threads // (num_envs * num_cars))) if self._can_parallelize else 1
        self._view = SimView(_readonly(self._state), _readonly(self._scans), _readonly(self._collided))
        self._car_contact_view = _readonly(self._car_contact)

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> np.ndarray:
        """(E, N, 7) read-only view of the car states."""
        return self._view.state

    @property
    def car_contact(self) -> np.ndarray:
        """(E, N) read-only view: which cars touched another car during the last step (or at reset); a subset
        of ``collided``. Valid until the next call."""
        return self._car_contact_view

    def reset(
        self,
        poses: np.ndarray,
        env_ids: np.ndarray | None = None,
        speeds: np.ndarray | None = None,
        seeds: list[int | None] | None = None,
    ) -> SimView:
        """Place the cars of some copies (all by default) and cast their first scans.

        Args:
            poses: (K, N, 3) [x, y, yaw] per reset copy and car, world frame (m, rad); (N, 3) applies to all K.
            env_ids: (K,) copies to reset; default all E.
            speeds: (K, N) initial speeds (m/s) along the heading; default 0.
            seeds: K seeds (or None) for the copies' noise generators; None keeps the generators running.
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"env_ids must lie in [0, {self.num_envs}), got {ids.tolist()}")
        poses = np.broadcast_to(np.asarray(poses, dtype=np.float64), (ids.size, self.num_cars, 3))
        speeds = np.zeros((ids.size, self.num_cars)) if speeds is None else np.broadcast_to(
            np.asarray(speeds, dtype=np.float64), (ids.size, self.num_cars))
        if not (np.isfinite(poses).all() and np.isfinite(speeds).all()):
            raise ValueError("reset poses and speeds must be finite")
        state = np.zeros((ids.size, self.num_cars, STATE_SIZE))
        state[..., 0:2] = poses[..., 0:2]
        state[..., 4] = (poses[..., 2] + np.pi) % (2 * np.pi) - np.pi
        state[..., 3] = np.clip(speeds, self.vehicle.v_min, self.vehicle.v_max)
        self._state[ids] = state
        self._steer_queue[ids] = 0.0
        if seeds is not None:
            if len(seeds) != ids.size:
                raise ValueError(f"got {len(seeds)} seeds for {ids.size} reset copies")
            for e, s in zip(ids, seeds, strict=True):
                if s is not None:
                    self._rngs[e] = np.random.default_rng(s)
        hl, hw = 0.5 * self.vehicle.length, 0.5 * self.vehicle.width
        _contacts_at_rest(self._state, *self._map, hl, hw, ids, self._collided, self._car_contact)
        self._cast(ids)
        return self._view

    def step(self, actions: np.ndarray, scan: np.ndarray | None = None) -> SimView:
        """Advance every copy by one env step.

        Args:
            actions: (E, N, 2) [steering_angle_rad, target_speed_mps] per copy and car.
            scan: (E, N) bool, the cars whose LiDAR to cast this step (default all). A skipped car's scan row
                keeps its last values until a later step or :meth:`cast` scans it: a learner holding its action
                for several steps needs its own scan only when it next decides.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.num_cars, 2):
            raise ValueError(
                f"actions must have shape (envs, cars, 2) = ({self.num_envs}, {self.num_cars}, 2), "
                f"got {actions.shape}"
            )
        if not np.isfinite(actions).all():
            bad = np.argwhere(~np.isfinite(actions))[0]
            raise ValueError(f"actions must be finite; env {bad[0]} car {bad[1]} has {actions[tuple(bad)]}")
        cfg = self.config
        _physics_step(
            self._state, self._prev, self._steer_queue, self._queue_slot, actions, self._params,
            cfg.timestep_s, cfg.integrator == "rk4", cfg.steer_gain_per_s, cfg.steer_mode == "bang_bang",
            cfg.action_repeat, *self._map, self._collided, self._car_contact,
        )
        if cfg.steer_delay_steps:
            self._queue_slot = (self._queue_slot + cfg.action_repeat) % cfg.steer_delay_steps
        self._cast(None, self._all_cars if scan is None else self._check_cars(scan, "scan"))
        return self._view

    def cast(self, cars: np.ndarray) -> SimView:
        """Cast now the scans a :meth:`step` with ``scan`` skipped: (E, N) bool, True for the cars to scan.

        Called before the next step, it gives exactly the scans a full step would have cast (same states, same
        noise draws: every step draws the noise of every car, scanned or not).
        """
        cars = self._check_cars(cars, "cars")
        if self.config.lidar.num_beams and cars.any():
            (scan_parallel if self.parallel_scan else scan_serial)(*self._scan_args(self._state, self._noise,
                                                                                   cars, self._scans))
        return self._view

    # ------------------------------------------------------------------ internals

    def _check_cars(self, cars: np.ndarray, name: str) -> np.ndarray:
        cars = np.asarray(cars)
        if cars.dtype != np.bool_ or cars.shape != (self.num_envs, self.num_cars):
            raise ValueError(
                f"{name} must be a bool array of shape (envs, cars) = ({self.num_envs}, {self.num_cars}), "
                f"got {cars.dtype} {cars.shape}"
            )
        return cars

    def _scan_args(self, state: np.ndarray, noise: np.ndarray, cars: np.ndarray, scans: np.ndarray) -> tuple:
        lidar = self.config.lidar
        hl, hw = 0.5 * self.vehicle.length, 0.5 * self.vehicle.width
        return (*self._map, state, self._beam_cos, self._beam_sin, lidar.mount_offset_m, lidar.max_range_m,
                hl, hw, noise, lidar.noise_std_m, self._chunks, cars, scans)

    def _cast(self, env_ids: np.ndarray | None, cars: np.ndarray | None = None) -> None:
        """Draw the LiDAR noise of copies ``env_ids`` (all when None) and scan them: after a step, only the
        cars of ``cars`` ((E, N) bool); at a reset, every car of the reset copies."""
        lidar = self.config.lidar
        if lidar.num_beams == 0:
            return
        if lidar.noise_std_m > 0:
            # Serial: 2.4 ns a sample, and a thread hand-off costs more than it saves under any contention.
            fill_noise(self._rngs, self._all_envs if env_ids is None else env_ids, self._noise)
        if env_ids is not None:  # a reset: scan the reset copies only, then write them back
            scans = self._scans[env_ids]
            noise = self._noise[env_ids] if self._noise.size else self._noise
            # a few copies: not worth the pool
            scan_serial(*self._scan_args(self._state[env_ids], noise, self._all_cars[: len(env_ids)], scans))
            self._scans[env_ids] = scans
            return
        args = self._scan_args(self._state, self._noise, cars, self._scans)
        phase = self._steps % _TUNE_EVERY_STEPS
        self._steps += 1
        if self._tune and phase < 2:
            # Time a serial and then a parallel scan (identical results either way) and keep the faster.
            started = time.perf_counter()
            (scan_parallel if phase else scan_serial)(*args)
            self._scan_seconds[phase] = time.perf_counter() - started
            if phase:
                self.parallel_scan = self._scan_seconds[1] < self._scan_seconds[0]
            return
        (scan_parallel if self.parallel_scan else scan_serial)(*args)


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _thread_count() -> int:
    return int(numba.get_num_threads())
