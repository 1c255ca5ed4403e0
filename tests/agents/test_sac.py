"""SAC: the soft target by hand, entropy tuning direction, exact resume, a Pendulum learning smoke test."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from multi_agent_rl.agents.gym_runner import evaluate, make_vector_env, train
from multi_agent_rl.agents.sac import SAC, SACConfig, soft_td_target

from .helpers import Driver, assert_exact_resume, assert_stores_n_step_returns
from .test_td3 import ACTIONS, OBS, hand_batch, set_constant_output


def test_soft_target_by_hand():
    # y = r + discount * (1 - terminated) * (min Q' - alpha * log pi)
    target = soft_td_target(
        rewards=torch.tensor([1.0, 2.0, -1.0]),
        discounts=torch.tensor([0.9, 0.9, 0.81]),
        terminated=torch.tensor([0.0, 1.0, 0.0]),
        next_q_min=torch.tensor([3.0, 3.0, 10.0]),
        next_log_prob=torch.tensor([-1.0, 5.0, 2.0]),
        alpha=0.5,
    )
    torch.testing.assert_close(target, torch.tensor([1 + 0.9 * 3.5, 2.0, -1 + 0.81 * 9.0]))


def test_agent_target_takes_the_smaller_target_critic():
    agent = SAC(OBS, ACTIONS, SACConfig(hidden_sizes=(8,), autotune=False, alpha=1e-12), seed=0)
    set_constant_output(agent.critic_target.q1, 3.0)
    set_constant_output(agent.critic_target.q2, 5.0)
    expected = torch.tensor([1 + 0.9 * 3, 2.0, -1 + 0.81 * 3])
    torch.testing.assert_close(agent.td_target(hand_batch(), agent.alpha), expected, atol=1e-6, rtol=0)


def test_entropy_coefficient_falls_while_the_policy_is_more_random_than_the_target():
    config = SACConfig(learning_starts=50, batch_size=32, hidden_sizes=(16,), q_lr=1e-2, target_entropy=-3.0)
    env = make_vector_env("Pendulum-v1", 1)
    agent = SAC(env.single_observation_space, env.single_action_space, config, seed=0)
    driver = Driver(agent, env, seed=0)
    driver.run(80)
    # a fresh tanh-Gaussian on 1 action dim has entropy near 0 nats, far above -3: alpha must shrink from 1
    assert 0 < float(agent.alpha) < 0.9
    metrics = agent.update() or {}
    assert set(metrics) <= {"critic_loss", "actor_loss", "ent_coef", "ent_coef_loss", "n_updates"}


def test_deterministic_action_is_the_squashed_mean():
    agent = SAC(OBS, ACTIONS, SACConfig(hidden_sizes=(8,), learning_starts=0), seed=0)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    with torch.no_grad():
        mu = agent.actor.mu(agent.actor.trunk(torch.from_numpy(obs))).tanh().numpy()
    expected = ACTIONS.low + (mu + 1) * 0.5 * (ACTIONS.high - ACTIONS.low)
    np.testing.assert_allclose(agent.act(obs, deterministic=True), expected, rtol=1e-5)
    assert not np.allclose(agent.act(obs), expected)


def test_stores_n_step_returns():
    config = SACConfig(hidden_sizes=(8,), n_step=2, gamma=0.5, learning_starts=0, batch_size=4)
    agent = SAC(OBS, ACTIONS, config, num_envs=1, seed=0)
    assert_stores_n_step_returns(agent, np.array([[0.0, 0.5]], np.float32))


@pytest.mark.parametrize("n_step", [1, 3])
def test_exact_resume(n_step):
    config = SACConfig(
        n_step=n_step,
        learning_starts=30,
        batch_size=16,
        hidden_sizes=(16, 16),
        train_freq=2,
        gradient_steps=3,
        policy_frequency=2,
        target_network_frequency=2,
    )

    def make_agent(seed):
        env = gym.make("Pendulum-v1")
        return SAC(env.observation_space, env.action_space, config, num_envs=2, seed=seed)

    assert_exact_resume(make_agent, "Pendulum-v1", num_envs=2, first=41, second=40)


def test_learns_pendulum():
    """Small networks, 8k steps: the deterministic return rises from about -1300 to better than -600."""
    config = SACConfig(learning_starts=1000, hidden_sizes=(64, 64), batch_size=128, policy_lr=1e-3, q_lr=1e-3)
    env = make_vector_env("Pendulum-v1", 1)
    agent = SAC(env.single_observation_space, env.single_action_space, config, num_envs=1, seed=0)
    before = evaluate(agent, gym.make("Pendulum-v1"), episodes=5, seed=100).mean()
    train(agent, env, 8_000, seed=0)
    after = evaluate(agent, gym.make("Pendulum-v1"), episodes=5, seed=100).mean()
    assert after > -600 and after > before + 400, (before, after)


@pytest.mark.slow
def test_learns_pendulum_with_zoo_settings():
    """rl-zoo's tuned SAC Pendulum settings (256-256 networks, lr 1e-3, 20k steps) reach about -150."""
    config = SACConfig(policy_lr=1e-3, q_lr=1e-3)
    env = make_vector_env("Pendulum-v1", 1)
    agent = SAC(env.single_observation_space, env.single_action_space, config, num_envs=1, seed=0)
    train(agent, env, 20_000, seed=0)
    assert evaluate(agent, gym.make("Pendulum-v1"), episodes=10, seed=100).mean() > -300
