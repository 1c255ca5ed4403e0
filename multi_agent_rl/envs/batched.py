"""The batched core every environment view is built on: E copies of an N-car task in one simulator, as arrays.

``BatchedEnv`` steps all copies and all cars at once: physical actions (E, N, 2) in; observations (E, N, D),
rewards (E, N), terminations and truncations (E, N, never merged), outcome codes and named reward terms out.
It never resets on its own: a copy whose cars are all done waits for ``reset(env_ids)`` (the views decide
when). A car whose episode ended while others in its copy drive on (head-to-head racing) gets a stop command
and zero reward until the copy resets.

Randomness: each copy owns a task generator (start poses, start speeds) and the simulator owns each copy's
LiDAR noise generator. ``reset(seeds=...)`` re-seeds the copies it resets from their seeds (both streams
derived from one ``SeedSequence``); without seeds, the generators continue, so episodes never repeat by
accident.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from multi_agent_rl.envs.config import EnvConfig, resolve_map_path, resolve_vehicle
from multi_agent_rl.envs.observations import ObservationBuilder
from multi_agent_rl.sim.maps import TrackMap, load_map
from multi_agent_rl.sim.simulator import Simulator
from multi_agent_rl.tasks.base import Task


class BatchedStep(NamedTuple):
    """What ``BatchedEnv.step`` returns; arrays are reused by the next call (copy what you keep).

    Attributes:
        obs: (E, N, D) float32.
        rewards: (E, N) float64 (0 for cars already done).
        terminated, truncated: (E, N) bool, True only on the step a car's episode ends.
        outcome: (E, N) int16 codes into ``task.outcome_names``.
        terms: name -> (E, N) reward terms (not masked: read them where the car was active).
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    outcome: np.ndarray
    terms: dict


def copy_streams(
    seed: int | np.random.SeedSequence | None,
) -> tuple[np.random.Generator, np.random.SeedSequence]:
    """A copy's task generator and simulator-noise seed, both derived from one seed."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    task_seq, noise_seq = seq.spawn(2)
    return np.random.default_rng(task_seq), noise_seq


class BatchedEnv:
    """E copies of the configured task, every car driven by the caller.

    Args:
        config: the environment description.
        num_envs: E.
        seed: seeds every copy's generators (copy e gets the e-th child of ``SeedSequence(seed)``).
        track: an already loaded map to share between envs (default: load ``config.map_path``).
    """

    def __init__(
        self, config: EnvConfig, num_envs: int = 1, seed: int | None = None, track: TrackMap | None = None
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.config = config
        self.num_envs = num_envs
        self.track = track or load_map(resolve_map_path(config.map_path))
        self.vehicle = resolve_vehicle(config.vehicle)
        self.env_timestep_s = config.sim.timestep_s * config.sim.action_repeat
        self.task: Task = config.task.build(self.track, num_envs, self.env_timestep_s)
        self.num_cars = self.task.num_cars
        self.sim = Simulator(self.track, num_envs, self.num_cars, self.vehicle, config.sim)
        self.obs_builder = ObservationBuilder(
            config.observation, num_envs, self.num_cars, self.vehicle, config.sim.lidar
        )
        self.action_low, self.action_high = self._action_bounds()
        self._act_scale = 0.5 * (self.action_high - self.action_low)
        self._act_mid = 0.5 * (self.action_high + self.action_low)
        self._rngs: list[np.random.Generator] = []
        self._seed_all(seed)
        shape = (num_envs, self.num_cars)
        self.episode_step = np.zeros(num_envs, dtype=np.int64)
        self.active = np.zeros(shape, dtype=bool)
        self.prev_action = np.zeros((*shape, 2))  # normalised to [-1, 1]
        self.spawn = [""] * num_envs
        self._prev_state = np.zeros((*shape, self.sim.state.shape[-1]))
        self._actions = np.zeros((*shape, 2))
        self._obs = self.obs_builder.buffer
        self._view = None
        self.last_outcome = np.zeros(shape, dtype=np.int16)

    # ------------------------------------------------------------------ actions

    def _action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        a, v = self.config.action, self.vehicle
        steer = v.s_max if a.max_steer_rad is None else a.max_steer_rad
        low = np.array([-steer, v.v_min if a.min_speed_mps is None else a.min_speed_mps])
        high = np.array([steer, v.v_max if a.max_speed_mps is None else a.max_speed_mps])
        if not np.all(high > low):
            raise ValueError(
                f"ActionConfig gives empty action ranges: low {low.tolist()}, high {high.tolist()}"
            )
        return low, high

    def to_physical(self, actions: np.ndarray) -> np.ndarray:
        """Agent actions (..., 2) to physical commands: affine from [-1, 1] when normalised, then clipped."""
        a = np.asarray(actions, dtype=np.float64)
        if self.config.action.normalized:
            a = self._act_mid + self._act_scale * a
        else:
            a = a.copy()
        np.minimum(a, self.action_high, out=a)  # ufuncs in place: np.clip's wrapper costs more than the work
        return np.maximum(a, self.action_low, out=a)

    def to_normalized(self, physical: np.ndarray) -> np.ndarray:
        """Physical commands (..., 2) to [-1, 1]."""
        return np.clip((np.asarray(physical) - self._act_mid) / self._act_scale, -1.0, 1.0)

    # ------------------------------------------------------------------ episodes

    def _seed_all(self, seed: int | None) -> None:
        children = np.random.SeedSequence(seed).spawn(self.num_envs)
        streams = [copy_streams(c) for c in children]
        self._rngs = [s[0] for s in streams]
        self._pending_noise_seeds: list = [s[1] for s in streams]

    def reset(
        self,
        env_ids: np.ndarray | None = None,
        seeds: list[int | None] | None = None,
        poses: np.ndarray | None = None,
        speeds: np.ndarray | None = None,
    ) -> np.ndarray:
        """Start new episodes in copies ``env_ids`` (default all); returns the full (E, N, D) observation
        buffer.

        Args:
            env_ids: (K,) copies to reset.
            seeds: K seeds (or None entries) re-seeding those copies' generators.
            poses: (K, N, 3) or (N, 3) start poses overriding the task's draw (m, rad).
            speeds: (K, N) or (N,) start speeds overriding the task's draw (m/s).
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64).reshape(-1)
        if seeds is not None and len(seeds) != ids.size:
            raise ValueError(f"got {len(seeds)} seeds for {ids.size} copies to reset")
        noise_seeds: list = [None] * ids.size
        for k, e in enumerate(ids):
            if seeds is not None and seeds[k] is not None:
                self._rngs[e], noise_seeds[k] = copy_streams(int(seeds[k]))
            elif self._pending_noise_seeds[e] is not None:
                noise_seeds[k] = self._pending_noise_seeds[e]
            self._pending_noise_seeds[e] = None
        starts = [self.task.sample_start(self._rngs[e], 1) for e in ids]
        start_poses = np.concatenate([s.poses for s in starts])
        start_speeds = np.concatenate([s.speeds for s in starts])
        for k, e in enumerate(ids):
            self.spawn[e] = starts[k].spawn[0]
        if poses is not None:
            start_poses = np.broadcast_to(np.asarray(poses, dtype=np.float64), start_poses.shape)
            for e in ids:
                self.spawn[e] = "custom"
        if speeds is not None:
            start_speeds = np.broadcast_to(np.asarray(speeds, dtype=np.float64), start_speeds.shape)
        view = self._view = self.sim.reset(start_poses, ids, start_speeds, seeds=noise_seeds)
        self.task.reset(ids, view.state[ids])
        self.episode_step[ids] = 0
        self.active[ids] = True
        self.prev_action[ids] = 0.0
        self.last_outcome[ids] = 0
        return self.obs_builder.reset(ids, view.state, view.scans, self.prev_action)

    def step(self, actions: np.ndarray, scan: np.ndarray | None = None) -> BatchedStep:
        """Advance every copy by one env step with physical actions (E, N, 2).

        ``scan`` ((E, N) bool, default all) selects the cars whose LiDAR is cast; a skipped car's LiDAR block
        in the observations is stale until a later step or :meth:`rescan` casts it.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self._actions.shape:
            raise ValueError(
                f"actions must have shape (envs, cars, 2) = {self._actions.shape}, got {actions.shape}"
            )
        active = self.active
        np.multiply(actions, active[..., None], out=self._actions)  # done cars get a stop command
        self._prev_state[:] = self.sim.state
        view = self._view = self.sim.step(self._actions, scan)
        self.episode_step += 1
        result = self.task.step(
            self._prev_state, view.state, view.collided, self.sim.car_contact, self.episode_step
        )
        rewards = result.rewards * active
        terminated = result.terminated & active
        truncated = result.truncated & active
        np.copyto(self.last_outcome, result.outcome, where=active)
        self.active = active & ~(terminated | truncated)
        self.prev_action[:] = (self._actions - self._act_mid) / self._act_scale
        np.clip(self.prev_action, -1.0, 1.0, out=self.prev_action)
        obs = self.obs_builder.build(view.state, view.scans, self.prev_action)
        return BatchedStep(obs, rewards, terminated, truncated, result.outcome, result.terms)

    def rescan(self, cars: np.ndarray) -> np.ndarray:
        """Cast the scans the last :meth:`step` skipped for ``cars`` ((E, N) bool) and rebuild the observations
        in place; returns them (E, N, D). Single-frame observations only: with ``frame_stack`` > 1 a rebuild
        would push a second frame for one step."""
        if self.config.observation.frame_stack != 1:
            raise ValueError("rescan needs single-frame observations (ObservationConfig.frame_stack = 1)")
        view = self.sim.cast(cars)
        return self.obs_builder.build(view.state, view.scans, self.prev_action)

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> np.ndarray:
        """(E, N, 7) read-only car states."""
        return self.sim.state

    @property
    def scans(self) -> np.ndarray:
        """(E, N, B) read-only raw scans (m) of the last reset or step."""
        if self._view is None:
            raise RuntimeError("call reset() before reading scans")
        return self._view.scans

    @property
    def collided(self) -> np.ndarray:
        """(E, N) read-only contact flags of the last reset or step."""
        if self._view is None:
            raise RuntimeError("call reset() before reading contacts")
        return self._view.collided

    @property
    def observations(self) -> np.ndarray:
        """(E, N, D) the latest observations (the buffer ``step`` and ``reset`` return)."""
        return self._obs

    def done(self) -> np.ndarray:
        """(E,) copies whose cars are all done."""
        return ~self.active.any(axis=1)

    def outcome_name(self, code: int) -> str:
        return self.task.outcome_names[int(code)]
