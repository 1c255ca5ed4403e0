"""DQN: double-Q targets by hand, the action set for Box spaces, schedules, exact resume, CartPole smoke."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from multi_agent_rl.agents.base import IncompatibleSpaceError, Transition, check_spaces
from multi_agent_rl.agents.dqn import DQN, DQNConfig, dqn_target
from multi_agent_rl.agents.gym_runner import evaluate, make_vector_env, train

from .helpers import assert_exact_resume, assert_stores_n_step_returns

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
STEER_SPEED = gym.spaces.Box(np.array([-0.4, -1.0], np.float32), np.array([0.4, 1.0], np.float32))
ACTION_SET = ((-0.4, 1.0), (0.0, 1.0), (0.4, 1.0), (0.0, -0.5))


def test_double_and_vanilla_targets_by_hand():
    rewards, discounts = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5])
    terminated = torch.tensor([0.0, 0.0])
    next_q_target = torch.tensor([[1.0, 5.0], [2.0, 0.0]])
    next_q_online = torch.tensor([[3.0, 1.0], [0.0, 4.0]])  # online picks actions 0 and 1
    double = dqn_target(rewards, discounts, terminated, next_q_target, next_q_online)
    torch.testing.assert_close(double, torch.tensor([1 + 0.5 * 1.0, 2 + 0.5 * 0.0]))
    vanilla = dqn_target(rewards, discounts, terminated, next_q_target)
    torch.testing.assert_close(vanilla, torch.tensor([1 + 0.5 * 5.0, 2 + 0.5 * 2.0]))
    ended = dqn_target(rewards, discounts, torch.tensor([1.0, 0.0]), next_q_target)
    torch.testing.assert_close(ended, torch.tensor([1.0, 2 + 0.5 * 2.0]))


def test_agent_target_uses_online_argmax_and_target_values():
    agent = DQN(OBS, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,)), seed=0)
    with torch.no_grad():
        for network, values in ((agent.q_network, [3.0, 1.0]), (agent.target_network, [1.0, 5.0])):
            for parameter in network.parameters():
                parameter.zero_()
            network[-1].bias.copy_(torch.tensor(values))
    from .test_td3 import hand_batch

    torch.testing.assert_close(
        agent.td_target(hand_batch()), torch.tensor([1 + 0.9 * 1.0, 2.0, -1 + 0.81 * 1.0])
    )


def test_box_space_needs_an_action_set_sentence():
    message = (
        r"^DQN needs a discrete action space or an `action_set` of \[steer, speed\] pairs; got Box\(2,\)\.$"
    )
    with pytest.raises(IncompatibleSpaceError, match=message):
        check_spaces(DQN, OBS, STEER_SPEED, DQNConfig())
    with pytest.raises(IncompatibleSpaceError, match="lies outside the action bounds"):
        check_spaces(DQN, OBS, STEER_SPEED, DQNConfig(action_set=((0.0, 2.0),)))
    with pytest.raises(IncompatibleSpaceError, match="must each have the action shape"):
        check_spaces(DQN, OBS, STEER_SPEED, DQNConfig(action_set=((0.0,),)))


def test_action_set_drives_a_box_space_and_maps_actions_back():
    agent = DQN(OBS, STEER_SPEED, DQNConfig(action_set=ACTION_SET, learning_starts=0), num_envs=5, seed=0)
    obs = np.zeros((5, 3), np.float32)
    actions = agent.act(obs)
    assert actions.shape == (5, 2) and actions.dtype == np.float32
    table = np.array(ACTION_SET, np.float32)
    assert all(any(np.array_equal(a, row) for row in table) for a in actions)
    # a scripted driver's actions near table entries are stored as those entries' indices
    scripted = np.array([[0.39, 0.9], [-0.38, 1.0], [0.01, -0.4], [0.0, 0.95], [0.4, 1.0]], np.float32)
    agent.store(Transition(obs, scripted, np.zeros(5), obs, np.zeros(5, bool), np.zeros(5, bool)))
    np.testing.assert_array_equal(agent.replay.actions[:5], [2, 0, 3, 1, 2])


def test_epsilon_decays_linearly_then_stays():
    config = DQNConfig(total_timesteps=1000, exploration_fraction=0.5, start_e=1.0, end_e=0.1)
    agent = DQN(OBS, gym.spaces.Discrete(2), config)
    for steps, expected in ((0, 1.0), (250, 0.55), (500, 0.1), (900, 0.1)):
        agent.num_timesteps = steps
        assert agent.epsilon == pytest.approx(expected)


def test_target_network_is_copied_every_interval_of_env_steps():
    config = DQNConfig(
        target_network_frequency=8,
        learning_starts=0,
        train_frequency=1,
        batch_size=4,
        hidden_sizes=(8,),
        learning_rate=1e-2,
    )
    agent = DQN(OBS, gym.spaces.Discrete(2), config, num_envs=2, seed=0)
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)

    def snapshot(network):
        return [p.clone() for p in network.parameters()]

    def equal(a, b):
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

    copied_at = []
    for vector_step in range(1, 10):
        online_before = snapshot(agent.q_network)
        target_before = snapshot(agent.target_network)
        agent.store(Transition(obs, agent.act(obs), np.ones(2), obs, np.zeros(2, bool), np.zeros(2, bool)))
        agent.update()
        target_after = snapshot(agent.target_network)
        if not equal(target_before, target_after):
            # the copy runs before this step's training: it holds the online weights of the previous step
            assert equal(target_after, online_before)
            copied_at.append(vector_step * 2)
        assert not equal(snapshot(agent.q_network), online_before)  # the online network trains every step
    assert copied_at == [8, 16]


def test_stores_n_step_returns():
    config = DQNConfig(hidden_sizes=(8,), n_step=2, gamma=0.5, learning_starts=0, train_frequency=1, batch_size=4)
    agent = DQN(OBS, gym.spaces.Discrete(2), config, num_envs=1)
    assert_stores_n_step_returns(agent, np.array([1]))


@pytest.mark.parametrize("n_step", [1, 3])
def test_exact_resume_with_action_set(n_step):
    config = DQNConfig(
        n_step=n_step,
        learning_starts=30,
        batch_size=16,
        hidden_sizes=(16,),
        train_frequency=2,
        gradient_steps=3,
        target_network_frequency=20,
        total_timesteps=200,
        action_set=((-2.0,), (0.0,), (2.0,)),
    )

    def make_agent(seed):
        env = gym.make("Pendulum-v1")
        return DQN(env.observation_space, env.action_space, config, num_envs=2, seed=seed)

    assert_exact_resume(make_agent, "Pendulum-v1", num_envs=2, first=41, second=40)


def test_learns_cartpole():
    """20k steps on 4 envs: the greedy return rises from about 10 to above 100.

    Seeds 0-3 reached 171, 123, 128, 241.
    """
    config = DQNConfig(
        total_timesteps=20_000,
        learning_rate=1e-3,
        batch_size=64,
        buffer_size=50_000,
        learning_starts=1000,
        target_network_frequency=500,
        train_frequency=1,
        gradient_steps=1,
        exploration_fraction=0.3,
        end_e=0.02,
    )
    env = make_vector_env("CartPole-v1", 4)
    agent = DQN(env.single_observation_space, env.single_action_space, config, num_envs=4, seed=0)
    train(agent, env, 20_000 // 4, seed=0)
    assert evaluate(agent, gym.make("CartPole-v1"), episodes=5, seed=100).mean() > 100
