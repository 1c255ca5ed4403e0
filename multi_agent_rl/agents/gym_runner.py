"""A minimal driver for one agent on a gymnasium vector env: the SB3 comparison and the agent tests use it.

It is deliberately small (no logging, checkpoints or multi-agent dicts; those belong to ``training/``) but
shows the protocol end to end: act on the batch, step, rebuild the true successor observations from
gymnasium's same-step autoreset ``final_obs``, store, update, reset recurrent memory of finished envs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from .base import Agent, Transition


def make_vector_env(
    env_id: str | Callable[[], gym.Env], num_envs: int, wrappers: Sequence[Callable[[gym.Env], gym.Env]] = ()
) -> gym.vector.SyncVectorEnv:
    """E copies of an env stepped in-process, resetting finished copies within the same step.

    With same-step autoreset the returned observation of a finished env is already the next episode's first
    one and the finished episode's last observation is in ``info["final_obs"]``;
    :func:`successor_observations` puts it back.
    """

    def make_one() -> gym.Env:
        env = env_id() if callable(env_id) else gym.make(env_id)
        for wrap in wrappers:
            env = wrap(env)
        return env

    return gym.vector.SyncVectorEnv(
        [make_one for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def successor_observations(
    next_obs: np.ndarray, info: dict, done: np.ndarray, final_key: str = "final_obs"
) -> np.ndarray:
    """The true successor of each env's last observation: ``info[final_key]`` (the ended episode's last
    observation, e.g. ``final_obs``, or ``final_raw_obs`` before normalisation) where the episode ended, the
    returned observation elsewhere."""
    if not done.any():
        return next_obs
    successors = next_obs.copy()
    for index in np.flatnonzero(done):
        successors[index] = info[final_key][index]
    return successors


@dataclass
class RunStats:
    """What a training run produced."""

    env_steps: int = 0
    wall_time_s: float = 0.0
    episode_returns: list[float] = field(default_factory=list)
    updates: list[dict[str, float]] = field(default_factory=list)

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.wall_time_s if self.wall_time_s > 0 else float("nan")


def train(
    agent: Agent,
    env: gym.vector.VectorEnv,
    num_vector_steps: int,
    seed: int,
    keep_updates: bool = False,
) -> RunStats:
    """Step ``env`` (E copies) ``num_vector_steps`` times with ``agent`` learning online."""
    stats = RunStats()
    returns = np.zeros(env.num_envs)
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    for _ in range(num_vector_steps):
        actions = agent.act(obs)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        agent.store(
            Transition(
                obs, actions, rewards, successor_observations(next_obs, info, done), terminated, truncated
            )
        )
        metrics = agent.update()
        if keep_updates and metrics is not None:
            stats.updates.append(metrics)
        returns += rewards
        if done.any():
            stats.episode_returns.extend(returns[done].tolist())
            returns[done] = 0.0
        obs = next_obs
    stats.wall_time_s = time.perf_counter() - start
    stats.env_steps = num_vector_steps * env.num_envs
    return stats


def evaluate(agent: Agent, env: gym.Env, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``episodes`` deterministic episodes on a single (unbatched) env."""
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        agent.reset(None, deterministic=True)
        done = False
        while not done:
            action = agent.act(obs[None], deterministic=True)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[episode] += reward
            done = terminated or truncated
    return returns
