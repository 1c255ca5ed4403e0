"""PPO: bootstrap at truncation, schedules, KL early stop, exact resume, a CartPole learning smoke test."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from multi_agent_rl.agents.base import Transition
from multi_agent_rl.agents.gym_runner import evaluate, make_vector_env, train
from multi_agent_rl.agents.networks import StateDependentNoiseHead
from multi_agent_rl.agents.ppo import PPO, PPOConfig

from .helpers import assert_exact_resume

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACTIONS = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def _transition(obs, actions, next_obs, terminated, truncated):
    return Transition(
        obs, actions, np.ones(len(obs), np.float32), next_obs, np.array(terminated), np.array(truncated)
    )


def test_store_records_final_value_only_for_truncated_envs():
    agent = PPO(OBS, ACTIONS, PPOConfig(num_steps=4), num_envs=3, seed=0)
    obs = np.zeros((3, 3), np.float32)
    final_obs = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], np.float32)
    actions = agent.act(obs)
    agent.store(_transition(obs, actions, final_obs, [False, True, True], [True, False, True]))
    with torch.no_grad():
        expected = agent.critic(torch.from_numpy(final_obs[:1])).squeeze(-1).numpy()
    # env 0 truncated: V(final obs); env 1 terminated and env 2 terminated+truncated: no bootstrap value
    np.testing.assert_allclose(agent.buffer.final_values[0], [expected[0], 0.0, 0.0], rtol=1e-6)


def test_store_without_act_is_refused():
    agent = PPO(OBS, ACTIONS, PPOConfig(num_steps=4), num_envs=1)
    obs = np.zeros((1, 3), np.float32)
    with pytest.raises(RuntimeError, match="must follow act"):
        agent.store(_transition(obs, np.zeros((1, 1), np.float32), obs, [False], [False]))


def test_actions_respect_bounds_and_deterministic_is_the_clipped_mean():
    agent = PPO(OBS, ACTIONS, PPOConfig(log_std_init=2.0), num_envs=64, seed=0)
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    actions = agent.act(obs)
    assert actions.shape == (64, 1) and actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 2.0) and np.any(np.abs(actions) == 2.0)  # std e^2: many samples clip
    raw_actions = agent._cache[0]
    assert np.any(np.abs(raw_actions) > 2.0)  # the buffer keeps the unclipped sample for the log-probability
    with torch.no_grad():
        mean = agent.actor_head(agent.actor_body(torch.from_numpy(obs)))[0].numpy()
    np.testing.assert_allclose(agent.act(obs, deterministic=True), np.clip(mean, -2, 2), rtol=1e-6)


def test_gsde_noise_has_the_variance_the_log_prob_assumes():
    torch.manual_seed(0)
    head = StateDependentNoiseHead(latent_dim=5, action_dim=2, log_std_init=-0.5)
    latent = torch.randn(1, 5)
    generator = torch.Generator().manual_seed(0)
    matrices = head.sample_exploration_matrices(20000, generator)
    noise = head.noise(latent.expand(20000, 5), matrices)
    _, std = head(latent)
    torch.testing.assert_close(noise.std(0), std[0], rtol=0.03, atol=0.0)


def test_linear_annealing_of_learning_rate_and_clip_range():
    config = PPOConfig(
        total_timesteps=64,
        num_steps=8,
        minibatch_size=8,
        update_epochs=1,
        anneal_lr=True,
        anneal_clip_coef=True,
        learning_rate=1e-3,
        clip_coef=0.2,
    )
    agent = PPO(OBS, ACTIONS, config, num_envs=2, seed=0)
    obs = np.zeros((2, 3), np.float32)
    for _ in range(8):
        agent.store(_transition(obs, agent.act(obs), obs, [False, False], [False, False]))
    metrics = agent.update()
    # progress remaining after 16 of 64 steps = 0.75 (SB3's convention: measured after the rollout)
    assert metrics["learning_rate"] == pytest.approx(0.75e-3)
    assert metrics["clip_range"] == pytest.approx(0.15)
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(0.75e-3)


def test_target_kl_stops_the_epochs_early():
    def gradient_steps(target_kl):
        config = PPOConfig(
            num_steps=64, minibatch_size=16, update_epochs=10, learning_rate=3e-2, target_kl=target_kl
        )
        agent = PPO(OBS, ACTIONS, config, num_envs=1, seed=0)
        rng = np.random.default_rng(0)
        for _ in range(64):
            obs = rng.normal(size=(1, 3)).astype(np.float32)
            agent.store(_transition(obs, agent.act(obs), obs, [False], [False]))
        agent.update()
        return agent.num_updates

    assert gradient_steps(None) == 40
    assert 0 < gradient_steps(1e-4) < 40


@pytest.mark.parametrize(
    ("env_id", "config"),
    [
        (
            "CartPole-v1",
            PPOConfig(
                num_steps=16,
                minibatch_size=32,
                update_epochs=2,
                hidden_sizes=(16,),
                anneal_lr=True,
                total_timesteps=400,
            ),
        ),
        (
            "Pendulum-v1",
            PPOConfig(
                num_steps=16,
                minibatch_size=32,
                update_epochs=2,
                hidden_sizes=(16,),
                use_sde=True,
                sde_sample_freq=4,
                clip_vloss=True,
            ),
        ),
    ],
    ids=["discrete", "continuous-gsde"],
)
def test_exact_resume(env_id, config):
    def make_agent(seed):
        env = gym.make(env_id)
        return PPO(env.observation_space, env.action_space, config, num_envs=2, seed=seed)

    # 16 steps per rollout: resume mid-rollout (first = 40) so the partial rollout must be restored too
    assert_exact_resume(make_agent, env_id, num_envs=2, first=40, second=40)


def test_learns_cartpole():
    """rl-zoo's tuned CartPole settings; 30k steps take seconds and lift the return far above random (~22)."""
    config = PPOConfig(
        total_timesteps=100_000,
        num_steps=32,
        minibatch_size=256,
        update_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        learning_rate=1e-3,
        anneal_lr=True,
        anneal_clip_coef=True,
    )
    env = make_vector_env("CartPole-v1", 8)
    agent = PPO(env.single_observation_space, env.single_action_space, config, num_envs=8, seed=0)
    train(agent, env, 30_000 // 8, seed=0)
    returns = evaluate(agent, gym.make("CartPole-v1"), episodes=5, seed=100)
    assert returns.mean() > 150, returns
