"""The multi-agent environment: a PettingZoo ``ParallelEnv`` whose agents are the cars ``car_0 ... car_{n-1}``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from multi_agent_rl.envs.batched import BatchedEnv
from multi_agent_rl.envs.config import EnvConfig
from multi_agent_rl.envs.render import Renderer
from multi_agent_rl.sim.maps import TrackMap


class RacingEnv(ParallelEnv):
    """Every car is an agent; the task (gaplock or racing) gives rewards, terminations, truncations, outcomes.

    Observations: each agent's (D,) float32 vector (``ObservationConfig``); actions (2,) in [-1, 1] (or
    physical units with ``ActionConfig.normalized=False``). ``reset(seed, options={"poses": (N, 3), "speeds":
    (N,)})``. An agent leaves ``agents`` after the step that terminated or truncated it (the two are never
    merged); a done car stays on the track, braking to a stop. ``infos[agent]`` holds ``outcome`` ("" while
    running, else the task's outcome name), ``reward_terms`` (name -> float, summing to the reward),
    ``episode_step``, ``spawn`` and task statistics (racing: laps, progress_m, last/best lap times).

    Args:
        config: the environment (default: gaplock on line_track).
        render_mode: None or "rgb_array".
        seed: seeds the first reset when ``reset`` gets none.
        track: a loaded map to share.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "name": "racing_v0",
        "is_parallelizable": True,
        "render_fps": 50,
    }

    def __init__(
        self,
        config: EnvConfig | None = None,
        render_mode: str | None = None,
        seed: int | None = None,
        track: TrackMap | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config or EnvConfig()
        if self.config.learner_action_repeat != 1:
            raise ValueError(
                "EnvConfig.learner_action_repeat holds the learner's action in the single-learner views only; "
                f"RacingEnv gives every car an action every sim step, so set it to 1 (got "
                f"{self.config.learner_action_repeat}) or use sim.action_repeat"
            )
        self.core = BatchedEnv(self.config, 1, seed, track)
        self.render_mode = render_mode
        self.possible_agents = [f"car_{i}" for i in range(self.core.num_cars)]
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        b = self.core.obs_builder
        self._obs_space = gym.spaces.Box(b.low, b.high, (b.size,), np.float32)
        if self.config.action.normalized:
            self._act_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            low, high = self.core.action_low.astype(np.float32), self.core.action_high.astype(np.float32)
            self._act_space = gym.spaces.Box(low, high, (2,), np.float32)
        self._actions = np.zeros((1, self.core.num_cars, 2))
        self._renderer: Renderer | None = None
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.core.env_timestep_s / 2)}

    def observation_space(self, agent: str) -> gym.spaces.Box:
        """The same Box object on every call (PettingZoo requires it; no cache that would keep envs alive)."""
        self._check_agent(agent)
        return self._obs_space

    def action_space(self, agent: str) -> gym.spaces.Box:
        self._check_agent(agent)
        return self._act_space

    def _check_agent(self, agent: str) -> None:
        if agent not in self._index:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        options = options or {}
        obs = self.core.reset(
            None, None if seed is None else [seed], options.get("poses"), options.get("speeds")
        )
        self.agents = list(self.possible_agents)
        spawn = self.core.spawn[0]
        observations = {a: obs[0, i].copy() for i, a in enumerate(self.agents)}
        infos = {a: {"spawn": spawn, "outcome": ""} for a in self.agents}
        return observations, infos

    def step(self, actions: dict[str, np.ndarray]):
        if not self.agents:
            raise RuntimeError("every agent is done: call reset() before step()")
        self._actions[:] = 0.0
        for agent, action in actions.items():
            i = self._index.get(agent)
            if i is None:
                raise KeyError(f"action for unknown agent {agent!r}; agents are {self.possible_agents}")
            self._actions[0, i] = np.asarray(action, dtype=np.float64).reshape(2)
        live = [(a, self._index[a]) for a in self.agents]
        physical = self.core.to_physical(self._actions)
        result = self.core.step(physical)
        names = self.core.task.outcome_names
        stats = self.core.task.episode_stats()
        step, spawn = int(self.core.episode_step[0]), self.core.spawn[0]
        obs, rew, term, trunc, infos = {}, {}, {}, {}, {}
        for agent, i in live:
            obs[agent] = result.obs[0, i].copy()
            rew[agent] = float(result.rewards[0, i])
            term[agent] = bool(result.terminated[0, i])
            trunc[agent] = bool(result.truncated[0, i])
            info = {
                "outcome": names[int(result.outcome[0, i])] if term[agent] or trunc[agent] else "",
                "reward_terms": {k: float(v[0, i]) for k, v in result.terms.items()},
                "episode_step": step,
                "spawn": spawn,
            }
            for key, value in stats.items():
                info[key] = value[0, i].item()
            infos[agent] = info
        self.agents = [a for a, _ in live if not (term[a] or trunc[a])]
        return obs, rew, term, trunc, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        core = self.core
        if self._renderer is None:
            self._renderer = Renderer.for_env(core)
        outcome = core.outcome_name(core.last_outcome[0].max())
        text = f"step {core.episode_step[0]}" + (f"  {outcome}" if outcome else "")
        return self._renderer.frame(core.state[0], core.scans[0], core.collided[0], text)

    def close(self) -> None:
        """Nothing to release."""

    def state(self) -> np.ndarray:
        """The global state: (N, 7) car states [x, y, steer, v, yaw, yaw_rate, slip] of every car (a copy)."""
        return np.array(self.core.state[0])
