"""Discrete SAC: the soft target and the losses by hand, entropy tuning, action sets, exact resume, CartPole."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from multi_agent_rl.agents.base import IncompatibleSpaceError, Transition, check_spaces
from multi_agent_rl.agents.gym_runner import evaluate, make_vector_env, train
from multi_agent_rl.agents.sac_discrete import SACDiscrete, SACDiscreteConfig, discrete_soft_td_target

from .helpers import Driver, assert_exact_resume, assert_stores_n_step_returns
from .test_td3 import hand_batch, set_constant_output

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
STEER_SPEED = gym.spaces.Box(np.array([-0.4, -1.0], np.float32), np.array([0.4, 1.0], np.float32))


def test_soft_target_by_hand():
    # V(s') = sum_a p(a) (Q(a) - alpha log p(a)); row 0: p = (1/2, 1/2), Q = (2, 4), alpha = 0.5:
    #   0.5 (2 + 0.5 log 2) + 0.5 (4 + 0.5 log 2) = 3 + 0.5 log 2;  y = 1 + 0.9 V
    # row 1 is terminal (y = r); row 2: p = (1, 0), Q = (-2, 100): V = -2 (log 0 never counts: p = 0)
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    log_probs = torch.tensor([[math.log(0.5)] * 2, [math.log(0.5)] * 2, [0.0, -50.0]])
    target = discrete_soft_td_target(
        rewards=torch.tensor([1.0, 2.0, -1.0]),
        discounts=torch.tensor([0.9, 0.9, 0.81]),
        terminated=torch.tensor([0.0, 1.0, 0.0]),
        next_probs=probs,
        next_log_probs=log_probs,
        next_q_min=torch.tensor([[2.0, 4.0], [7.0, 7.0], [-2.0, 100.0]]),
        alpha=0.5,
    )
    expected = torch.tensor([1 + 0.9 * (3 + 0.5 * math.log(2)), 2.0, -1 + 0.81 * -2.0])
    torch.testing.assert_close(target, expected)


def test_agent_target_takes_the_smaller_target_critic_and_the_policy_at_the_next_state():
    config = SACDiscreteConfig(hidden_sizes=(8,), autotune=False, alpha=0.5)
    agent = SACDiscrete(OBS, gym.spaces.Discrete(4), config, seed=0)
    set_constant_output(agent.q1_target, 3.0)
    set_constant_output(agent.q2_target, 5.0)
    set_constant_output(agent.actor, 0.0)  # equal logits: the uniform policy, entropy log 4
    value = 3.0 + 0.5 * math.log(4)
    expected = torch.tensor([1 + 0.9 * value, 2.0, -1 + 0.81 * value])
    torch.testing.assert_close(agent.td_target(hand_batch(), agent.alpha), expected)


def test_actor_loss_and_gradient_by_hand():
    """Two actions, logits (0, 0), min Q = (0, 1), alpha = 1: loss = sum_a p (log p - Q) = log(1/2) - 1/2, and its
    gradient moves probability towards the better action."""
    config = SACDiscreteConfig(hidden_sizes=(4,), autotune=False, alpha=1.0, learning_starts=0, batch_size=2,
                               policy_lr=0.1, tau=0.0)
    agent = SACDiscrete(OBS, gym.spaces.Discrete(2), config, seed=0)
    set_constant_output(agent.actor, 0.0)
    for network in (agent.q1, agent.q2, agent.q1_target, agent.q2_target):
        set_constant_output(network, 0.0)
        with torch.no_grad():
            network[-1].bias.copy_(torch.tensor([0.0, 1.0]))
    agent.critic_optimizer.param_groups[0]["lr"] = 0.0  # keep the critics at their hand values
    obs = np.zeros((1, 3), np.float32)
    for _ in range(2):
        agent.store(Transition(obs, np.array([0]), np.zeros(1), obs, np.ones(1, bool), np.zeros(1, bool)))
    metrics = agent.update()
    assert metrics["actor_loss"] == pytest.approx(math.log(0.5) - 0.5, abs=1e-6)
    assert metrics["entropy"] == pytest.approx(math.log(2), abs=1e-6)
    probs, _ = agent.policy(torch.zeros(1, 3))
    assert probs[0, 1] > 0.5  # one Adam step of 0.1 towards the action worth 1 more


def test_entropy_coefficient_falls_while_the_policy_is_more_random_than_the_target():
    config = SACDiscreteConfig(learning_starts=50, batch_size=32, hidden_sizes=(16,), q_lr=1e-2,
                               target_entropy_scale=0.2)
    env = make_vector_env("CartPole-v1", 1)
    agent = SACDiscrete(env.single_observation_space, env.single_action_space, config, seed=0)
    assert agent.target_entropy == pytest.approx(0.2 * math.log(2))
    Driver(agent, env, seed=0).run(80)
    # a fresh policy is near uniform (entropy log 2), far above 0.2 log 2: alpha must shrink from 1
    assert 0 < float(agent.alpha) < 0.9


def test_action_set_drives_a_box_space():
    config = SACDiscreteConfig(hidden_sizes=(8,), action_set=((-0.4, 1.0), (0.0, 1.0), (0.4, 1.0)), learning_starts=0)
    agent = SACDiscrete(OBS, STEER_SPEED, config, num_envs=6, seed=0)
    obs = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    table = np.array(config.action_set, np.float32)
    for deterministic in (False, True):
        actions = agent.act(obs, deterministic)
        assert actions.shape == (6, 2) and all(any(np.array_equal(a, row) for row in table) for a in actions)
    with torch.no_grad():
        greedy = agent.actor(torch.from_numpy(obs)).argmax(-1).numpy()
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), table[greedy])
    with pytest.raises(IncompatibleSpaceError, match="SACDiscrete needs a discrete action space or an `action_set`"):
        check_spaces(SACDiscrete, OBS, STEER_SPEED, SACDiscreteConfig())


def test_stores_n_step_returns():
    config = SACDiscreteConfig(hidden_sizes=(8,), n_step=2, gamma=0.5, learning_starts=0, batch_size=4)
    agent = SACDiscrete(OBS, gym.spaces.Discrete(2), config, num_envs=1)
    assert_stores_n_step_returns(agent, np.array([1]))


@pytest.mark.parametrize("n_step", [1, 3])
def test_exact_resume(n_step):
    config = SACDiscreteConfig(
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
        env = gym.make("CartPole-v1")
        return SACDiscrete(env.observation_space, env.action_space, config, num_envs=2, seed=seed)

    assert_exact_resume(make_agent, "CartPole-v1", num_envs=2, first=41, second=40)


def test_learns_cartpole():
    """20k steps: the deterministic return rises from under 50 to over 150 (the cap is 500; seeds 0-2 reach 230-310)."""
    config = SACDiscreteConfig(learning_starts=1000, hidden_sizes=(64, 64), batch_size=64, policy_lr=1e-3,
                               q_lr=1e-3, target_entropy_scale=0.3, train_freq=4)
    env = make_vector_env("CartPole-v1", 1)
    agent = SACDiscrete(env.single_observation_space, env.single_action_space, config, num_envs=1, seed=0)
    before = evaluate(agent, gym.make("CartPole-v1"), episodes=5, seed=100).mean()
    train(agent, env, 20_000, seed=0)
    after = evaluate(agent, gym.make("CartPole-v1"), episodes=5, seed=100).mean()
    assert before < 50 and after > 150, (before, after)
