"""Recurrent PPO: sequence replay reproduces acting exactly, memories, exact resume, a memory task."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from multi_agent_rl.agents.base import Transition
from multi_agent_rl.agents.buffers import segment_layout
from multi_agent_rl.agents.gym_runner import evaluate, make_vector_env, successor_observations, train
from multi_agent_rl.agents.recurrent_ppo import RecurrentPPO, RecurrentPPOConfig

from .helpers import assert_exact_resume


class CueRecall(gym.Env):
    """Shows a cue (+1 or -1) at the first step, then zeros; the last of ``length`` actions must name the cue.

    Reward +1 for the right answer at the last step, -1 for the wrong one, 0 before. A memoryless policy
    averages 0; remembering the cue earns 1 per episode.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 4):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))
        self.t = 0
        return np.array([2.0 * self.cue - 1.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        last = self.t == self.length
        reward = (1.0 if int(action) == self.cue else -1.0) if last else 0.0
        return np.zeros(2, np.float32), reward, last, False, {}


def collect_without_update(agent: RecurrentPPO, env: gym.vector.VectorEnv, steps: int) -> None:
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        actions = agent.act(obs)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        successors = successor_observations(next_obs, info, terminated | truncated)
        agent.store(Transition(obs, actions, rewards, successors, terminated, truncated))
        obs = next_obs


def small_config(**overrides) -> RecurrentPPOConfig:
    base = dict(
        num_steps=16, seq_len=4, minibatch_size=8, update_epochs=2, lstm_hidden_size=8, hidden_sizes=(8,)
    )
    return RecurrentPPOConfig(**{**base, **overrides})


def test_sequence_replay_reproduces_the_log_probs_and_values_seen_while_acting():
    """With unchanged weights, training's chunked, reset-aware LSTM replay must give back exactly the numbers
    computed step by step during the rollout, across chunk boundaries and episode ends inside chunks."""
    env = make_vector_env("Pendulum-v1", 3, wrappers=[lambda e: gym.wrappers.TimeLimit(e, 7)])
    for critic_lstm in (True, False):
        agent = RecurrentPPO(
            env.single_observation_space, env.single_action_space, small_config(critic_lstm=critic_lstm), 3
        )
        collect_without_update(agent, env, 16)  # 7-step episodes: resets land inside 4-step chunks
        agent.buffer.compute_returns_and_advantages(np.zeros(3), 0.99, 0.95)
        chunks = agent.buffer.chunks(4)
        assert chunks["episode_starts"][:, 1:].any()
        tensors = {name: torch.from_numpy(array) for name, array in chunks.items()}
        layout = segment_layout(chunks["episode_starts"])
        obs = tensors["obs"].reshape(-1, 3)
        with torch.no_grad():
            latent = agent._run_segments(
                agent.actor_lstm, obs, tensors["initial_states"], layout, slice(0, 2)
            )
            mean, std, _ = agent._policy_params(latent)
            log_probs = -0.5 * ((tensors["actions"].reshape(-1, 1) - mean) / std) ** 2 - std.log()
            log_probs = (log_probs - 0.5 * np.log(2 * np.pi)).sum(-1)
            if critic_lstm:
                latent_vf = agent._run_segments(
                    agent.critic_lstm, obs, tensors["initial_states"], layout, slice(2, 4)
                )
                values = agent.critic(latent_vf).squeeze(-1)
            else:
                values = agent.critic(obs).squeeze(-1)
        torch.testing.assert_close(log_probs, tensors["log_probs"].reshape(-1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values, tensors["values"].reshape(-1), atol=1e-5, rtol=1e-5)


def test_evaluation_memory_is_separate_from_training_memory():
    env = gym.make("Pendulum-v1")
    agent = RecurrentPPO(env.observation_space, env.action_space, small_config(), num_envs=2, seed=0)
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    agent.act(obs)
    training_states = agent.memory[False].states.clone()
    first = agent.act(obs[:1], deterministic=True)
    for _ in range(3):
        agent.act(obs[:1], deterministic=True)
    assert torch.equal(agent.memory[False].states, training_states)
    assert agent.memory[True].states.shape[1] == 1
    assert not torch.equal(agent.memory[True].states, torch.zeros_like(agent.memory[True].states))
    agent.reset(deterministic=True)  # a new evaluation episode starts from zero memory
    np.testing.assert_array_equal(agent.act(obs[:1], deterministic=True), first)


def test_exact_resume():
    def make_agent(seed):
        env = gym.make("Pendulum-v1")
        config = small_config(use_sde=True, sde_sample_freq=3, anneal_lr=True, total_timesteps=400)
        return RecurrentPPO(env.observation_space, env.action_space, config, num_envs=2, seed=seed)

    assert_exact_resume(make_agent, "Pendulum-v1", num_envs=2, first=40, second=40)


def test_remembers_a_cue():
    """The cue task is unsolvable without memory (mean return 0); the LSTM agent must approach 1."""
    config = RecurrentPPOConfig(
        num_steps=32,
        seq_len=8,
        minibatch_size=64,
        update_epochs=4,
        lstm_hidden_size=16,
        hidden_sizes=(16,),
        learning_rate=3e-3,
        ent_coef=0.01,
        gamma=0.9,
    )
    env = make_vector_env(CueRecall, 8)
    agent = RecurrentPPO(env.single_observation_space, env.single_action_space, config, num_envs=8, seed=0)
    train(agent, env, 32 * 40, seed=0)
    returns = evaluate(agent, CueRecall(), episodes=40, seed=1000)
    assert returns.mean() > 0.8, returns.mean()


def test_the_cue_task_needs_memory():
    """Control for the test above: feed-forward PPO with the same budget cannot beat chance by much."""
    from multi_agent_rl.agents.ppo import PPO, PPOConfig

    config = PPOConfig(
        num_steps=32,
        minibatch_size=64,
        update_epochs=4,
        hidden_sizes=(16,),
        learning_rate=3e-3,
        ent_coef=0.01,
        gamma=0.9,
    )
    env = make_vector_env(CueRecall, 8)
    agent = PPO(env.single_observation_space, env.single_action_space, config, num_envs=8, seed=0)
    train(agent, env, 32 * 40, seed=0)
    assert abs(evaluate(agent, CueRecall(), episodes=40, seed=1000).mean()) < 0.5
