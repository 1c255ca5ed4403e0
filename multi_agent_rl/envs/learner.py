"""Single-learner views: one car is the learner's, configured drivers (FTG by default) drive the others.

:class:`LearnerBatch` is the shared machinery (E copies); :class:`SingleAgentEnv` is the ``gymnasium.Env`` on
one copy. The vector form, with autoreset, is ``multi_agent_rl.envs.vector.VectorRacingEnv``.

Decisions and sim steps: one learner step (a *decision*) is ``config.learner_action_repeat`` = R sim steps of
the batched core (each ``sim.action_repeat`` physics steps of ``sim.timestep_s``). The learner's action is held
for the R sim steps, while the drivers act and the task scores every sim step. A decision's reward (and each
reward term) is the sum over the sim steps the learner's car was still running in; its termination, truncation
and outcome are those of the sim step where the learner's episode ended, and a copy that ended mid-decision
reports its observation, car states and task statistics as they were at that sim step (the copy waits, braking,
for the views to reset it). With R = 1 (the default) a decision is one sim step, exactly as the core steps.
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

    ``step`` takes one decision of the learner (``config.learner_action_repeat`` sim steps, see the module
    docstring). Per-copy counters, valid after every step: ``episode_decisions`` (E,) decisions taken in the
    episode; ``episode_sim_steps`` (E,) sim steps it lasted (up to the sim step it ended at); ``final_state``
    (E, N, 7) every car's state after the decision, or at the sim step the learner's episode ended;
    ``task_stats`` likewise.

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
        self.repeat = config.learner_action_repeat
        self.decision_timestep_s = self.core.env_timestep_s * self.repeat
        """Seconds of simulated time per decision."""
        self.episode_decisions = np.zeros(num_envs, dtype=np.int64)
        self.episode_sim_steps = np.zeros(num_envs, dtype=np.int64)
        self.final_state = np.zeros((num_envs, n, self.core.state.shape[-1]))
        self._result = self._decision_buffers(num_envs, n, size)
        self._stats = {k: np.zeros_like(v) for k, v in self.core.task.episode_stats().items()}
        self._was_active = np.zeros((num_envs, n), dtype=bool)
        self._all_copies = np.ones(num_envs, dtype=bool)
        # The learner looks at its LiDAR only when it decides, or where its episode ends: the sim steps inside a
        # decision scan the other cars only (when they are exact to skip: single-frame observations).
        self._inner_scan: np.ndarray | None = None
        if self.repeat > 1 and config.observation.frame_stack == 1 and config.sim.lidar.num_beams > 0:
            self._inner_scan = np.ones((num_envs, n), dtype=bool)
            self._inner_scan[:, self.learner] = False
        self._rescan = np.zeros((num_envs, n), dtype=bool)
        self._renderer: Renderer | None = None

    def _decision_buffers(self, num_envs: int, num_cars: int, obs_size: int) -> BatchedStep:
        """The arrays ``step`` fills with a decision's aggregate (reused by every step)."""
        shape = (num_envs, num_cars)
        return BatchedStep(
            obs=np.zeros((*shape, obs_size), dtype=np.float32),
            rewards=np.zeros(shape),
            terminated=np.zeros(shape, dtype=bool),
            truncated=np.zeros(shape, dtype=bool),
            outcome=np.zeros(shape, dtype=np.int16),
            terms={name: np.zeros(shape) for name in self.core.task.term_names},
        )

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
        self.episode_decisions[ids] = 0
        self.episode_sim_steps[ids] = 0
        self.final_state[ids] = self.core.state[ids]
        return obs[:, self.learner]

    def step(self, learner_actions: np.ndarray) -> BatchedStep:
        """One decision of every copy: the learner's actions (E, 2) in its action space, held for
        ``learner_action_repeat`` sim steps (fewer when every copy's learner episode ends sooner); the drivers
        act every sim step.

        Returns the decision's aggregate as (E, N) arrays (reused by the next call; copy what you keep):
        rewards and terms summed over the sim steps each car was running in, terminated / truncated set when
        the car's episode ended during the decision, outcome and observations of the sim step it ended at (the
        learner's column; other cars' observations are those of the same sim step as the learner's).
        """
        held = self.core.to_physical(learner_actions)
        result = self._sim_step(held, last=self.repeat == 1)
        self._snapshot(self._all_copies)
        if self.repeat > 1:  # aggregate only when a decision has more than one sim step
            result = self._repeat(result, held)
        self.episode_decisions += 1
        self.episode_return += result.rewards[:, self.learner]
        return result

    def _sim_step(self, learner_physical: np.ndarray, last: bool) -> BatchedStep:
        """One sim step of the core: the drivers act on the current states and scans, the learner's command
        (E, 2) (physical units) is held. Unless it is the ``last`` sim step of the decision, the learner's LiDAR
        is cast only in the copies whose learner episode ends at this step (see ``_inner_scan``)."""
        core = self.core
        state, scans, obs = core.state, core.scans, core.observations
        for j, m in enumerate(self.others):
            self._actions[:, m] = self.drivers[j].act(state[:, m], scans[:, m], obs[:, m])
        self._actions[:, self.learner] = learner_physical
        if last or self._inner_scan is None:
            return core.step(self._actions)
        result = core.step(self._actions, self._inner_scan)
        ended = self._rescan[:, self.learner]
        np.logical_or(result.terminated[:, self.learner], result.truncated[:, self.learner], out=ended)
        if ended.any():
            core.rescan(self._rescan)  # rebuilds result.obs (the core's buffer) in place
        return result

    def _repeat(self, first: BatchedStep, held: np.ndarray) -> BatchedStep:
        """Sim steps 2..R of a decision after ``first``, aggregated into the reused ``_result`` buffers."""
        out = self._result
        for mine, theirs in zip(out[:5], first[:5], strict=True):
            np.copyto(mine, theirs)
        for name, values in first.terms.items():
            np.copyto(out.terms[name], values)
        for k in range(1, self.repeat):
            np.copyto(self._was_active, self.core.active)
            if not self._was_active[:, self.learner].any():
                break
            self._accumulate(self._sim_step(held, last=k == self.repeat - 1), self._was_active)
        return out

    def _accumulate(self, result: BatchedStep, was_active: np.ndarray) -> None:
        """A later sim step of a decision; ``was_active`` (E, N): the cars running before it."""
        out = self._result
        np.add(out.rewards, result.rewards, out=out.rewards)  # the core already pays done cars nothing
        np.logical_or(out.terminated, result.terminated, out=out.terminated)
        np.logical_or(out.truncated, result.truncated, out=out.truncated)
        np.copyto(out.outcome, result.outcome, where=was_active)
        for name, values in result.terms.items():
            out.terms[name] += values * was_active
        running = was_active[:, self.learner]
        np.copyto(out.obs, result.obs, where=running[:, None, None])
        self._snapshot(running)

    def _snapshot(self, running: np.ndarray) -> None:
        """Record car states, sim-step count and task statistics of the copies whose learner was ``running``
        (E,) bool before this sim step."""
        core = self.core
        np.copyto(self.final_state, core.state, where=running[:, None, None])
        np.copyto(self.episode_sim_steps, core.episode_step, where=running)
        for name, values in core.task.episode_stats().items():
            np.copyto(self._stats[name], values, where=running[:, None])

    def step_info(self, result: BatchedStep, rows: np.ndarray | slice = slice(None)) -> dict[str, Any]:
        """Per-copy info arrays of the learner for copies ``rows``: outcome names, reward terms (summed over the
        decision), ``episode_step`` (decisions), ``episode_sim_steps`` and the task's statistics (counted in sim
        steps)."""
        car = self.learner
        names = np.asarray(self.core.task.outcome_names, dtype=object)
        info = {
            "outcome": names[result.outcome[rows, car]],
            "reward_terms": {k: v[rows, car].copy() for k, v in result.terms.items()},
            "episode_step": self.episode_decisions[rows].copy(),
            "episode_sim_steps": self.episode_sim_steps[rows].copy(),
        }
        for key, value in self._stats.items():
            info[key] = np.array(value[rows, car])
        return info

    @property
    def task_stats(self) -> dict[str, np.ndarray]:
        """The task's statistics (name -> (E, N), in sim steps where they count steps) after the last decision,
        or at the sim step a copy's learner episode ended."""
        return self._stats

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
    ``reward_terms`` (name -> float, summing to the reward), ``episode_step`` (decisions taken),
    ``episode_sim_steps`` (sim steps simulated), ``spawn`` and task statistics (counted in sim steps). One
    ``step`` is one decision: ``config.learner_action_repeat`` sim steps with the action held (see the module
    docstring); frames are rendered once per decision.

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
        self.metadata = {**self.metadata, "render_fps": max(1, round(1.0 / self.batch.decision_timestep_s / 2))}
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
        batch = self.batch
        outcome = batch.core.task.outcome_names[int(result.outcome[0, car])]
        self._last_outcome = outcome
        info = {
            "outcome": outcome,
            "reward_terms": {k: float(v[0, car]) for k, v in result.terms.items()},
            "episode_step": int(batch.episode_decisions[0]),
            "episode_sim_steps": int(batch.episode_sim_steps[0]),
            "spawn": batch.core.spawn[0],
        }
        for key, value in batch.task_stats.items():
            info[key] = value[0, car].item()
        obs = batch.observe(result.obs[0, car])
        return obs, float(result.rewards[0, car]), terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        core = self.batch.core
        text = f"step {self.batch.episode_decisions[0]}  v {core.state[0, self.batch.learner, 3]:.2f} m/s"
        if self._last_outcome:
            text += f"  {self._last_outcome}"
        return self.batch.render(text)
