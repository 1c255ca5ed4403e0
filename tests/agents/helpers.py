"""Shared drivers for the agent tests: run an agent on a gymnasium vector env, check exact resume."""

from __future__ import annotations

import io
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from multi_agent_rl.agents.base import Agent, Transition
from multi_agent_rl.agents.gym_runner import make_vector_env, successor_observations


class Driver:
    """Steps one vector env with one agent, remembering the current observation between calls."""

    def __init__(self, agent: Agent, env: gym.vector.VectorEnv, seed: int):
        self.agent, self.env = agent, env
        self.obs, _ = env.reset(seed=seed)
        self.updates = 0

    def run(self, vector_steps: int) -> None:
        for _ in range(vector_steps):
            actions = self.agent.act(self.obs)
            next_obs, rewards, terminated, truncated, info = self.env.step(actions)
            done = terminated | truncated
            successors = successor_observations(next_obs, info, done)
            self.agent.store(Transition(self.obs, actions, rewards, successors, terminated, truncated))
            if self.agent.update() is not None:
                self.updates += 1
            self.obs = next_obs


def round_trip(state: dict) -> dict:
    """Serialise like a checkpoint does (torch.save / torch.load) to catch unpicklable or aliased state."""
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    return torch.load(stream, weights_only=False)


def parameters(agent: Agent) -> dict[str, torch.Tensor]:
    """Every tensor of every network of the agent, by dotted name."""
    tensors = {}
    for name, value in vars(agent).items():
        if isinstance(value, torch.nn.Module):
            for key, tensor in value.state_dict().items():
                tensors[f"{name}.{key}"] = tensor
    return tensors


def assert_exact_resume(
    make_agent: Callable[[int], Agent], env_id: str, num_envs: int, first: int, second: int
) -> None:
    """Training first+second vector steps in one go equals first, save, load into a fresh agent, second more.

    The fresh agent is built with another seed, so anything the state dict forgets shows up as a difference.
    Both phases must contain updates, or the test proves nothing.
    """
    straight = Driver(make_agent(1), make_vector_env(env_id, num_envs), seed=7)
    straight.run(first + second)

    resumed = Driver(make_agent(1), make_vector_env(env_id, num_envs), seed=7)
    resumed.run(first)
    updates_before = resumed.updates
    state = round_trip(resumed.agent.state_dict(include_buffer=True))
    resumed.agent = make_agent(12345)
    resumed.agent.load_state_dict(state)
    resumed.run(second)
    assert 0 < updates_before < resumed.updates, (updates_before, resumed.updates)

    expected, actual = parameters(straight.agent), parameters(resumed.agent)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), f"{name} differs after resume"
    obs = straight.obs
    np.testing.assert_array_equal(straight.agent.act(obs), resumed.agent.act(obs))
    assert straight.agent.num_timesteps == resumed.agent.num_timesteps
    assert straight.agent.num_updates == resumed.agent.num_updates


def assert_stores_n_step_returns(agent: Agent, action: np.ndarray) -> None:
    """An agent configured with n_step=2, gamma=0.5, one env, learning_starts=0 and a training phase every
    step stores two episodes as the 2-step transitions worked out by hand.

    Episode 1, rewards 1, 2, 4, terminated at its third step: (1 + .5*2, gamma^2), (2 + .5*4, gamma^2,
    terminated), (4, gamma, terminated). Episode 2, rewards 8, 16, truncated at its second step: (8 + .5*16,
    gamma^2) and (16, gamma), both bootstrapping from the final observation. Before the first 2-step row
    exists, ``update()`` must return None instead of sampling an empty replay. ``action`` is one env action
    (leading axis 1) the agent accepts.
    """
    zeros = np.zeros((1, 3), np.float32)
    steps = [(0, 1.0, False, False), (1, 2.0, False, False), (2, 4.0, True, False), (10, 8.0, False, False),
             (11, 16.0, False, True)]  # (observation value, reward, terminated, truncated)
    for k, (value, reward, terminated, truncated) in enumerate(steps):
        agent.store(Transition(zeros + value, action, np.array([reward]), zeros + value + 1,
                               np.array([terminated]), np.array([truncated])))
        if k == 0:
            assert len(agent.replay) == 0 and agent.update() is None
    assert len(agent.replay) == 5
    order = np.argsort(agent.replay.obs[:5, 0])
    np.testing.assert_array_equal(agent.replay.obs[order, 0], [0, 1, 2, 10, 11])
    np.testing.assert_array_equal(agent.replay.next_obs[order, 0], [2, 3, 3, 12, 12])
    np.testing.assert_allclose(agent.replay.rewards[order], [2.0, 4.0, 4.0, 16.0, 16.0])
    np.testing.assert_allclose(agent.replay.discounts[order], [0.25, 0.25, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(agent.replay.terminated[order], [0, 1, 1, 0, 0])
