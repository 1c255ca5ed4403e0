"""TD3: the target on a hand batch, warm-up, action scaling, exact resume, a Pendulum learning smoke test."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from multi_agent_rl.agents.base import Transition
from multi_agent_rl.agents.buffers import ReplaySample
from multi_agent_rl.agents.gym_runner import evaluate, make_vector_env, train
from multi_agent_rl.agents.td3 import TD3, TD3Config

from .helpers import assert_exact_resume, assert_stores_n_step_returns

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTIONS = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def set_constant_output(mlp: torch.nn.Sequential, value: float) -> None:
    """Make an MLP output ``value`` for every input (zero weights, last bias = value)."""
    with torch.no_grad():
        for parameter in mlp.parameters():
            parameter.zero_()
        mlp[-1].bias.fill_(value)


def hand_batch() -> ReplaySample:
    return ReplaySample(
        obs=torch.zeros(3, 3),
        actions=torch.zeros(3, 2),
        rewards=torch.tensor([1.0, 2.0, -1.0]),
        next_obs=torch.ones(3, 3),
        terminated=torch.tensor([0.0, 1.0, 0.0]),
        discounts=torch.tensor([0.9, 0.9, 0.81]),  # the last row is a 2-step transition
    )


def test_td_target_on_a_hand_batch():
    agent = TD3(OBS, ACTIONS, TD3Config(hidden_sizes=(8,)), seed=0)
    set_constant_output(agent.critic_target.q1, 3.0)
    set_constant_output(agent.critic_target.q2, 5.0)
    # y = r + discount * (1 - terminated) * min(3, 5)
    torch.testing.assert_close(agent.td_target(hand_batch()), torch.tensor([1 + 0.9 * 3, 2.0, -1 + 0.81 * 3]))


def test_warm_up_is_uniform_in_bounds_and_learning_waits_for_it():
    agent = TD3(
        OBS, ACTIONS, TD3Config(learning_starts=20, batch_size=4, hidden_sizes=(8,)), num_envs=4, seed=0
    )
    obs = np.zeros((4, 3), np.float32)
    seen = []
    for _ in range(5):  # 20 env steps: still warm-up
        actions = agent.act(obs)
        seen.append(actions)
        agent.store(Transition(obs, actions, np.zeros(4), obs, np.zeros(4, bool), np.zeros(4, bool)))
        assert agent.update() is None
    seen = np.concatenate(seen)
    assert np.all(seen >= ACTIONS.low) and np.all(seen <= ACTIONS.high)
    assert (
        seen[:, 0].std() > 0.8
    )  # uniform on [-2, 2] has std 1.15; the untrained actor would be near-constant
    # the replay holds actions mapped to [-1, 1]
    np.testing.assert_allclose(
        agent.replay.actions[:20],
        2 * (seen - ACTIONS.low) / (ACTIONS.high - ACTIONS.low) - 1,
        rtol=1e-5,
        atol=1e-6,
    )
    actions = agent.act(obs)
    agent.store(Transition(obs, actions, np.zeros(4), obs, np.zeros(4, bool), np.zeros(4, bool)))
    assert agent.update() is not None


def test_truncation_is_stored_as_bootstrappable():
    agent = TD3(OBS, ACTIONS, TD3Config(hidden_sizes=(8,)), num_envs=2, seed=0)
    obs = np.zeros((2, 3), np.float32)
    agent.store(
        Transition(obs, agent.act(obs), np.zeros(2), obs, np.array([True, False]), np.array([False, True]))
    )
    np.testing.assert_array_equal(agent.replay.terminated[:2], [1.0, 0.0])


def test_stores_n_step_returns():
    config = TD3Config(hidden_sizes=(8,), n_step=2, gamma=0.5, learning_starts=0, batch_size=4)
    agent = TD3(OBS, ACTIONS, config, num_envs=1, seed=0)
    assert_stores_n_step_returns(agent, np.array([[0.0, 0.5]], np.float32))


@pytest.mark.parametrize("n_step", [1, 3])
def test_exact_resume(n_step):
    """With n_step 3 the checkpoint must also carry the window of steps not yet stored."""
    config = TD3Config(
        learning_starts=30, batch_size=16, hidden_sizes=(16, 16), train_freq=2, gradient_steps=3, n_step=n_step
    )

    def make_agent(seed):
        env = gym.make("Pendulum-v1")
        return TD3(env.observation_space, env.action_space, config, num_envs=2, seed=seed)

    assert_exact_resume(make_agent, "Pendulum-v1", num_envs=2, first=41, second=40)


def test_learns_pendulum():
    """Small networks, 8k steps: the deterministic return rises from about -1300 to better than -600 (seeds
    0-3 reached -166, -327, -253, -163)."""
    config = TD3Config(learning_starts=1000, gamma=0.98, hidden_sizes=(64, 64), batch_size=128)
    env = make_vector_env("Pendulum-v1", 1)
    agent = TD3(env.single_observation_space, env.single_action_space, config, num_envs=1, seed=0)
    before = evaluate(agent, gym.make("Pendulum-v1"), episodes=5, seed=100).mean()
    train(agent, env, 8_000, seed=0)
    after = evaluate(agent, gym.make("Pendulum-v1"), episodes=5, seed=100).mean()
    assert after > -600 and after > before + 400, (before, after)


@pytest.mark.slow
def test_learns_pendulum_with_zoo_settings():
    """rl-zoo's tuned TD3 Pendulum settings (400-300 networks, 20k steps) reach about -150."""
    config = TD3Config(learning_starts=10_000, gamma=0.98, buffer_size=200_000, hidden_sizes=(400, 300))
    env = make_vector_env("Pendulum-v1", 1)
    agent = TD3(env.single_observation_space, env.single_action_space, config, num_envs=1, seed=0)
    train(agent, env, 20_000, seed=0)
    assert evaluate(agent, gym.make("Pendulum-v1"), episodes=10, seed=100).mean() > -300
