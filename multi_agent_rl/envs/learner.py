"""Single-learner views: one car is the learner's, configured drivers (FTG by default) drive the others.

:class:`LearnerBatch` is the shared machinery (E copies); :class:`SingleAgentEnv` is the ``gymnasium.Env`` on
one copy. The vector form, with autoreset, is ``multi_agent_rl.envs.vector.VectorRacingEnv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from multi_agent_rl.envs.batched import BatchedEnv, BatchedStep
from multi_agent_rl.envs.config import EnvConfig
from multi_agent_rl.envs.drivers import Driver, build_driver
from multi_agent_rl.envs.normalize import RunningNormalizer
from multi_agent_rl.envs.render import Renderer
from multi_agent_rl.sim.maps import TrackMap


class LearnerBatch:
    """E copies where the learner drives ``config.learner_car`` and drivers drive the rest.

    Args:
        config: the environment.
        num_envs: E.
        seed: seeds the copies (see ``BatchedEnv``) and the drivers.
        opponents: drivers for the other cars in index order (default: built from ``config.opponents``).
        normalizer: a shared observation normaliser (default: a new one when
        ``config.normalize_observations``). track: a loaded map to share.
    """

    def __init__(
        self,
        config: EnvConfig,
        num_envs: int = 1,
        seed: int | None = None,
        opponents: Sequence[Driver] | None = None,
        normalizer: RunningNormalizer | None = None,
        track: TrackMap | None = None,
    ) -> None:
        self.core = BatchedEnv(config, num_envs, seed, track)
        n = self.core.num_cars
        if not 0 <= config.learner_car < n:
            raise ValueError(
                f"EnvConfig.learner_car must lie in [0, {n}) for this {n}-car task, got {config.learner_car}"
            )
        self.learner = config.learner_car
        self.others = [m for m in range(n) if m != self.learner]
        self.drivers = list(opponents) if opponents is not None else self._build_drivers(config, seed)
        if len(self.drivers) != len(self.others):
            raise ValueError(f"{len(self.others)} other car(s) need as many drivers, got {len(self.drivers)}")
        size = self.core.obs_builder.size
        if normalizer is None and config.normalize_observations:
            normalizer = RunningNormalizer((size,), clip=config.normalizer_clip)
        self.normalizer = normalizer
        if normalizer is not None:
            self.observation_space = gym.spaces.Box(-normalizer.clip, normalizer.clip, (size,), np.float32)
        else:
            b = self.core.obs_builder
            self.observation_space = gym.spaces.Box(b.low, b.high, (size,), np.float32)
        if config.action.normalized:
            self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            low, high = self.core.action_low, self.core.action_high
            self.action_space = gym.spaces.Box(
                low.astype(np.float32), high.astype(np.float32), (2,), np.float32
            )
        self._actions = np.zeros((num_envs, n, 2))
        self.episode_return = np.zeros(num_envs)
        self._renderer: Renderer | None = None

    def _build_drivers(self, config: EnvConfig, seed: int | None) -> list[Driver]:
        specs = config.opponents
        if len(specs) == 1:
            specs = specs * len(self.others)
        if len(specs) != len(self.others):
            raise ValueError(
                f"EnvConfig.opponents lists {len(config.opponents)} drivers for "
                f"{len(self.others)} other car(s); give one (used for all) or one per car"
            )
        seeds = np.random.SeedSequence(seed).spawn(len(specs)) if specs else []
        return [
            build_driver(
                spec,
                self.core.vehicle,
                self.core.sim.beam_angles,
                self.core.num_envs,
                int(s.generate_state(1)[0]),
                self.core.track,
            )
            for spec, s in zip(specs, seeds, strict=True)
        ]

    def observe(self, raw: np.ndarray) -> np.ndarray:
        """The learner's observations (K, D) from raw (K, D) rows, normalised if configured (always a
        copy)."""
        return self.normalizer(raw) if self.normalizer is not None else raw.copy()

    def reset(
        self,
        env_ids: np.ndarray | None = None,
        seeds: list[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Reset copies (default all); options may hold ``poses`` (N, 3) and ``speeds`` (N,). Returns the
        learner's raw observations of all copies (E, D) (a view)."""
        options = options or {}
        ids = np.arange(self.core.num_envs) if env_ids is None else np.asarray(env_ids).reshape(-1)
        if seeds is not None and seeds[0] is not None and ids.size == self.core.num_envs:
            for j, driver in enumerate(self.drivers):
                driver.seed(int(np.random.SeedSequence([int(seeds[0]), j]).generate_state(1)[0]))
        obs = self.core.reset(ids, seeds, options.get("poses"), options.get("speeds"))
        for driver in self.drivers:
            driver.reset(ids)
        self.episode_return[ids] = 0.0
        return obs[:, self.learner]

    def step(self, learner_actions: np.ndarray) -> BatchedStep:
        """One step of every copy: the learner's actions (E, 2) in its action space, the drivers' own."""
        core = self.core
        state, scans, obs = core.state, core.scans, core.observations
        for j, m in enumerate(self.others):
            self._actions[:, m] = self.drivers[j].act(state[:, m], scans[:, m], obs[:, m])
        self._actions[:, self.learner] = core.to_physical(learner_actions)
        result = core.step(self._actions)
        self.episode_return += result.rewards[:, self.learner]
        return result

    def step_info(self, result: BatchedStep, rows: np.ndarray | slice = slice(None)) -> dict[str, Any]:
        """Per-copy info arrays of the learner for copies ``rows``: outcome names, reward terms, counters."""
        core, car = self.core, self.learner
        names = np.asarray(core.task.outcome_names, dtype=object)
        info = {
            "outcome": names[result.outcome[rows, car]],
            "reward_terms": {k: v[rows, car].copy() for k, v in result.terms.items()},
            "episode_step": core.episode_step[rows].copy(),
        }
        for key, value in core.task.episode_stats().items():
            info[key] = np.array(value[rows, car])
        return info

    def render(self, text: str = "") -> np.ndarray:
        """A frame of copy ``config.render.env_index``."""
        core = self.core
        if self._renderer is None:
            self._renderer = Renderer.for_env(core)
        e = int(np.clip(core.config.render.env_index, 0, core.num_envs - 1))
        return self._renderer.frame(core.state[e], core.scans[e], core.collided[e], text)


class SingleAgentEnv(gym.Env):
    """A ``gymnasium.Env``: the learner drives ``config.learner_car`` of one copy; drivers drive the other
    cars.

    Observations are the learner's (D,) float32 vector (normalised if configured), actions (2,) in [-1, 1]
    (or physical units with ``ActionConfig.normalized=False``). ``reset(seed=..., options={"poses": (N, 3),
    "speeds": (N,)})``. ``info`` holds ``outcome`` ("" while running, else the task's outcome name),
    ``reward_terms`` (name -> float, summing to the reward), ``episode_step``, ``spawn`` and task statistics.

    Args:
        config: the environment (default: gaplock on line_track, FTG defender).
        render_mode: None or "rgb_array".
        seed: seeds the first reset when ``reset`` gets none.
        opponents, normalizer, track: see :class:`LearnerBatch`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        seed: int | None = None,
        opponents: Sequence[Driver] | None = None,
        normalizer: RunningNormalizer | None = None,
        track: TrackMap | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config or EnvConfig()
        self.batch = LearnerBatch(self.config, 1, seed, opponents, normalizer, track)
        self.observation_space = self.batch.observation_space
        self.action_space = self.batch.action_space
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.batch.core.env_timestep_s / 2)}
        self._ended = True
        self._last_outcome = ""

    @property
    def normalizer(self) -> RunningNormalizer | None:
        return self.batch.normalizer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        raw = self.batch.reset(None, None if seed is None else [seed], options)
        self._ended = False
        self._last_outcome = ""
        info = {"spawn": self.batch.core.spawn[0], "outcome": ""}
        return self.batch.observe(raw[0]), info

    def step(self, action):
        if self._ended:
            raise RuntimeError("the episode has ended (terminated or truncated): call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(1, 2)
        result = self.batch.step(action)
        car = self.batch.learner
        terminated = bool(result.terminated[0, car])
        truncated = bool(result.truncated[0, car])
        self._ended = terminated or truncated
        outcome = self.batch.core.task.outcome_names[int(result.outcome[0, car])]
        self._last_outcome = outcome
        info = {
            "outcome": outcome,
            "reward_terms": {k: float(v[0, car]) for k, v in result.terms.items()},
            "episode_step": int(self.batch.core.episode_step[0]),
            "spawn": self.batch.core.spawn[0],
        }
        for key, value in self.batch.core.task.episode_stats().items():
            info[key] = value[0, car].item()
        obs = self.batch.observe(result.obs[0, car])
        return obs, float(result.rewards[0, car]), terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        core = self.batch.core
        text = f"step {core.episode_step[0]}  v {core.state[0, self.batch.learner, 3]:.2f} m/s"
        if self._last_outcome:
            text += f"  {self._last_outcome}"
        return self.batch.render(text)
