"""Our TD3, SAC and DQN updates against Stable-Baselines3's, the most-used reference implementation.

Both sides start from the same weights, see the same stored transitions (with terminations and time-limit
truncations), draw the same minibatches and the same policy / smoothing noise, and take several gradient steps;
every parameter must then agree to float32 rounding. This pins everything a gradient step does (targets, losses,
the entropy-coefficient update and which alpha the losses use, the order of critic, actor and target updates,
policy delay, gradient clipping, Adam) to the reference, where the hand-computed tests pin single targets.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal

from multi_agent_rl.agents.dqn import DQN, DQNConfig
from multi_agent_rl.agents.sac import SAC, SACConfig
from multi_agent_rl.agents.td3 import TD3, TD3Config

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.logger import configure  # noqa: E402 (after the importorskip)

HIDDEN = (64, 64)
ROWS, BATCH, STEPS = 300, 64, 6


class Queue:
    """Tensors handed out in order: the minibatch slots and noise draws both sides must share."""

    def __init__(self, items: list) -> None:
        self.items = list(items)

    def pop(self):
        return self.items.pop(0)


def transitions(rng: np.random.Generator, obs_dim: int, actions: np.ndarray) -> dict[str, np.ndarray]:
    """ROWS stored steps: 5 % terminated, another 5 % cut by the time limit (bootstrapped on both sides)."""
    kind = rng.random(ROWS)
    return {
        "obs": rng.uniform(-1, 1, (ROWS, obs_dim)).astype(np.float32),
        "next_obs": rng.uniform(-1, 1, (ROWS, obs_dim)).astype(np.float32),
        "actions": actions,
        "rewards": rng.uniform(-2, 1, ROWS).astype(np.float32),
        "terminated": kind < 0.05,
        "truncated": (kind >= 0.05) & (kind < 0.1),
    }


def fill(ours, reference, data: dict[str, np.ndarray], gamma: float) -> None:
    for i in range(ROWS):
        row = slice(i, i + 1)
        ours.replay.add(data["obs"][row], data["actions"][row], data["rewards"][row], data["next_obs"][row],
                        data["terminated"][row].astype(np.float32), np.full(1, gamma, np.float32))
        done = bool(data["terminated"][i] or data["truncated"][i])
        info = {"TimeLimit.truncated": True} if data["truncated"][i] else {}
        reference.replay_buffer.add(data["obs"][row], data["next_obs"][row], data["actions"][row],
                                    data["rewards"][row], np.array([done]), [info])


def share_minibatches(ours, reference, rng: np.random.Generator) -> None:
    slots = [rng.integers(0, ROWS, BATCH) for _ in range(STEPS)]
    ours_slots, reference_slots = Queue(slots), Queue(slots)
    ours.replay.sample = lambda batch_size, np_rng: ours.replay.gather(ours_slots.pop())
    reference.replay_buffer.sample = lambda batch_size, env=None: reference.replay_buffer._get_samples(
        reference_slots.pop(), env=env)


def assert_same(ours, reference, start: list[torch.Tensor] | None = None) -> None:
    """Equal parameters; with ``start`` (ours before the steps) also that the steps moved them."""
    ours, reference = list(ours), list(reference)
    assert [p.shape for p in ours] == [p.shape for p in reference]
    if start is not None:
        moved = max((p.detach() - s).abs().max().item() for p, s in zip(ours, start, strict=True))
        assert moved > 1e-3  # the steps changed the weights, so agreement says something
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=2e-5)


def assert_logged(reference, values: dict[str, list[torch.Tensor]]) -> None:
    """Our per-step losses, averaged, equal what SB3 logged for its steps (``train/<name>``): unlike the
    parameters after Adam, these scale with every constant inside the losses."""
    for name, ours in values.items():
        mean = torch.stack([value for value in ours if value is not None]).mean().item()
        assert mean == pytest.approx(reference.logger.name_to_value[f"train/{name}"], rel=1e-5, abs=1e-6), name


def share_twin_critics_and_pendulum_data(ours, reference, rng: np.random.Generator) -> None:
    """SB3's critics and target critics take our weights; both replays get the same Pendulum-shaped rows."""
    with torch.no_grad():
        for theirs, mine in ((reference.critic, ours.critic), (reference.critic_target, ours.critic_target)):
            theirs.qf0.load_state_dict(mine.q1.state_dict())
            theirs.qf1.load_state_dict(mine.q2.state_dict())
    fill(ours, reference, transitions(rng, 3, rng.uniform(-1, 1, (ROWS, 1)).astype(np.float32)), 0.99)
    share_minibatches(ours, reference, rng)


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def reference_model(cls, env: gym.Env, **kwargs):
    model = cls("MlpPolicy", env, seed=0, device="cpu", learning_starts=0,
                policy_kwargs={"net_arch": list(HIDDEN)}, **kwargs)
    model.set_logger(configure(None, []))
    return model


def test_sac_steps_match_stable_baselines3(monkeypatch):
    env = gym.make("Pendulum-v1")
    ours = SAC(env.observation_space, env.action_space, SACConfig(policy_lr=1e-3, q_lr=1e-3, hidden_sizes=HIDDEN),
               seed=0)
    reference = reference_model(sb3.SAC, env, learning_rate=1e-3)
    # Adam's steps hardly depend on a loss's scale, so the constants inside the losses are compared directly
    assert ours.target_entropy == reference.target_entropy
    torch.testing.assert_close(ours.log_alpha.detach(), reference.log_ent_coef.detach())
    with torch.no_grad():
        reference.actor.latent_pi.load_state_dict(ours.actor.trunk.state_dict())
        reference.actor.mu.load_state_dict(ours.actor.mu.state_dict())
        reference.actor.log_std.load_state_dict(ours.actor.log_std.state_dict())
    rng = np.random.default_rng(1)
    share_twin_critics_and_pendulum_data(ours, reference, rng)
    # two policy samples per step (s for the actor and alpha losses, s' for the target), in the same order
    noise = [torch.from_numpy(rng.standard_normal((BATCH, 1)).astype(np.float32)) for _ in range(2 * STEPS)]
    ours_noise, reference_noise = Queue(noise), Queue(noise)
    start_actor = snapshot(ours.actor.parameters())
    start_critic = snapshot(ours.critic.parameters())
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn", lambda *args, **kwargs: ours_noise.pop().clone())
        stats = [ours._gradient_step(step) for step in range(STEPS)]
    with monkeypatch.context() as patch:
        patch.setattr(Normal, "rsample", lambda self, *shape: self.loc + self.scale * reference_noise.pop())
        reference.train(gradient_steps=STEPS, batch_size=BATCH)
    assert not ours_noise.items and not reference_noise.items
    torch.testing.assert_close(ours.log_alpha.detach(), reference.log_ent_coef.detach(), rtol=0, atol=1e-6)
    assert_logged(reference, {name: [row[i] for row in stats]
                              for i, name in enumerate(("critic_loss", "actor_loss", "ent_coef", "ent_coef_loss"))})
    assert_same(ours.actor.parameters(), [*reference.actor.latent_pi.parameters(), *reference.actor.mu.parameters(),
                                          *reference.actor.log_std.parameters()], start_actor)
    assert_same(ours.critic.parameters(), [*reference.critic.qf0.parameters(), *reference.critic.qf1.parameters()],
                start_critic)
    assert_same(ours.critic_target.parameters(),
                [*reference.critic_target.qf0.parameters(), *reference.critic_target.qf1.parameters()])


def test_td3_steps_match_stable_baselines3(monkeypatch):
    env = gym.make("Pendulum-v1")
    ours = TD3(env.observation_space, env.action_space, TD3Config(learning_rate=1e-3, hidden_sizes=HIDDEN), seed=0)
    reference = reference_model(sb3.TD3, env, learning_rate=1e-3)
    assert (reference.policy_delay, reference.target_policy_noise, reference.target_noise_clip) == (
        ours.config.policy_frequency, ours.config.policy_noise, ours.config.noise_clip)
    with torch.no_grad():
        for theirs, mine in ((reference.actor, ours.actor), (reference.actor_target, ours.actor_target)):
            theirs.mu.load_state_dict(mine.net.state_dict())
    rng = np.random.default_rng(2)
    share_twin_critics_and_pendulum_data(ours, reference, rng)
    # the target smoothing noise, large enough that the +-0.5 clip is hit
    noise = [torch.from_numpy(rng.standard_normal((BATCH, 1)).astype(np.float32) * 2) for _ in range(STEPS)]
    ours_noise, reference_noise = Queue(noise), Queue(noise)
    start_actor = snapshot(ours.actor.parameters())
    start_critic = snapshot(ours.critic.parameters())
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn", lambda *args, **kwargs: ours_noise.pop().clone())
        stats = [ours._gradient_step() for _ in range(STEPS)]
    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "normal_", lambda self, mean=0.0, std=1.0: self.copy_(
            reference_noise.pop() * std + mean))
        reference.train(gradient_steps=STEPS, batch_size=BATCH)
    assert not ours_noise.items and not reference_noise.items
    assert_logged(reference, {"critic_loss": [row[0] for row in stats], "actor_loss": [row[1] for row in stats]})
    assert_same(ours.actor.parameters(), reference.actor.mu.parameters(), start_actor)
    assert_same(ours.actor_target.parameters(), reference.actor_target.mu.parameters())
    assert_same(ours.critic.parameters(), [*reference.critic.qf0.parameters(), *reference.critic.qf1.parameters()],
                start_critic)
    assert_same(ours.critic_target.parameters(),
                [*reference.critic_target.qf0.parameters(), *reference.critic_target.qf1.parameters()])


def test_dqn_steps_match_stable_baselines3():
    """SB3's DQN is vanilla (max over the target network), so ours runs with ``double_q`` off."""
    env = gym.make("CartPole-v1")
    config = DQNConfig(learning_rate=1e-3, hidden_sizes=HIDDEN, double_q=False, max_grad_norm=0.5)
    ours = DQN(env.observation_space, env.action_space, config, seed=0)
    reference = reference_model(sb3.DQN, env, learning_rate=1e-3, max_grad_norm=0.5)
    with torch.no_grad():
        reference.q_net.q_net.load_state_dict(ours.q_network.state_dict())
        reference.q_net_target.q_net.load_state_dict(ours.target_network.state_dict())
    rng = np.random.default_rng(3)
    fill(ours, reference, transitions(rng, 4, rng.integers(0, 2, ROWS)), 0.99)
    share_minibatches(ours, reference, rng)
    start = snapshot(ours.q_network.parameters())
    losses = [ours._gradient_step()[0] for _ in range(STEPS)]
    reference.train(gradient_steps=STEPS, batch_size=BATCH)
    assert_logged(reference, {"loss": losses})
    assert_same(ours.q_network.parameters(), reference.q_net.q_net.parameters(), start)
