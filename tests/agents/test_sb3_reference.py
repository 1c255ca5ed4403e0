"""Our PPO, TD3, SAC and DQN updates against Stable-Baselines3's, the most-used reference implementation.

Both sides start from the same weights, see the same stored transitions (with terminations and time-limit
truncations), draw the same minibatches and the same policy / smoothing noise, and take several gradient steps
(PPO: a whole update of several epochs); every parameter must then agree to 2e-5. This pins
everything an update does (returns and advantages, targets, losses, the entropy-coefficient update and which
alpha the losses use, the order of critic, actor and target updates, policy delay, the KL stop, gradient
clipping, Adam) to the reference, where the hand-computed tests pin single targets.
"""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal

from multi_agent_rl.agents import networks
from multi_agent_rl.agents import ppo as ppo_module
from multi_agent_rl.agents.base import Transition
from multi_agent_rl.agents.dqn import DQN, DQNConfig
from multi_agent_rl.agents.ppo import PPO, PPOConfig
from multi_agent_rl.agents.sac import SAC, SACConfig
from multi_agent_rl.agents.td3 import TD3, TD3Config

sb3 = pytest.importorskip("stable_baselines3")
from stable_baselines3.common.logger import Logger  # noqa: E402 (after the importorskip)

HIDDEN = (64, 64)
ROWS, BATCH, STEPS = 300, 64, 6


@pytest.fixture(autouse=True, params=["default", "onednn"])
def kernel(request, monkeypatch):
    """Every comparison twice: on torch's default matrix kernel, and with every product of our layers on the
    oneDNN path (forward and both backward products through ``networks._onednn_linear``), which large layers take
    on non-Intel CPUs (the AMD machine of the SB3 table) and these small test layers otherwise never reach."""
    if request.param == "onednn":
        if not networks.ONEDNN_AVAILABLE:
            pytest.skip("this torch build has no oneDNN")
        monkeypatch.setattr(networks, "ONEDNN_LINEAR", True)
        monkeypatch.setattr(networks, "ONEDNN_MIN_MACS", 0)
    return request.param


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
    ours_slots, reference_slots = deque(slots), deque(slots)
    ours.replay.sample = lambda batch_size, np_rng: ours.replay.gather(ours_slots.popleft())
    reference.replay_buffer.sample = lambda batch_size, env=None: reference.replay_buffer._get_samples(
        reference_slots.popleft(), env=env)


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
    model.set_logger(Logger(None, []))  # no outputs and, unlike configure(), no $TMPDIR/SB3-* directory
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
    ours_noise, reference_noise = deque(noise), deque(noise)
    start_actor = snapshot(ours.actor.parameters())
    start_critic = snapshot(ours.critic.parameters())
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn", lambda *args, **kwargs: ours_noise.popleft().clone())
        stats = [ours._gradient_step(step) for step in range(STEPS)]
    with monkeypatch.context() as patch:
        patch.setattr(Normal, "rsample", lambda self, *shape: self.loc + self.scale * reference_noise.popleft())
        reference.train(gradient_steps=STEPS, batch_size=BATCH)
    assert not ours_noise and not reference_noise  # every draw used
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
    ours_noise, reference_noise = deque(noise), deque(noise)
    start_actor = snapshot(ours.actor.parameters())
    start_critic = snapshot(ours.critic.parameters())
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn", lambda *args, **kwargs: ours_noise.popleft().clone())
        stats = [ours._gradient_step() for _ in range(STEPS)]
    with monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "normal_", lambda self, mean=0.0, std=1.0: self.copy_(
            reference_noise.popleft() * std + mean))
        reference.train(gradient_steps=STEPS, batch_size=BATCH)
    assert not ours_noise and not reference_noise  # every draw used
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


# --- PPO: one rollout, then the whole update (epochs, shuffled minibatches, the KL stop) -----------------------

PPO_STEPS, PPO_MINIBATCH, PPO_EPOCHS = 96, 32, 3


def ppo_pair(env: gym.Env, **overrides):
    """Our PPO and SB3's with the same settings and our initial weights (separate 64-64 tanh actor and critic)."""
    settings = {"learning_rate": 3e-4, "ent_coef": 0.01, "target_kl": None, **overrides}
    ours = PPO(env.observation_space, env.action_space, PPOConfig(
        num_steps=PPO_STEPS, minibatch_size=PPO_MINIBATCH, update_epochs=PPO_EPOCHS, hidden_sizes=HIDDEN,
        total_timesteps=10 * PPO_STEPS, **settings), seed=0)
    reference = sb3.PPO("MlpPolicy", env, n_steps=PPO_STEPS, batch_size=PPO_MINIBATCH, n_epochs=PPO_EPOCHS,
                        seed=0, device="cpu", policy_kwargs={"net_arch": {"pi": list(HIDDEN), "vf": list(HIDDEN)}},
                        **settings)
    reference.set_logger(Logger(None, []))  # no outputs and, unlike configure(), no $TMPDIR/SB3-* directory
    policy = reference.policy
    critic = ours.critic.state_dict()
    with torch.no_grad():
        policy.mlp_extractor.policy_net.load_state_dict(ours.actor_body.state_dict())
        policy.mlp_extractor.value_net.load_state_dict({k: v for k, v in critic.items() if not k.startswith("4.")})
        policy.value_net.load_state_dict({"weight": critic["4.weight"], "bias": critic["4.bias"]})
        if ours.discrete:
            policy.action_net.load_state_dict(ours.actor_head.state_dict())
        else:
            policy.action_net.load_state_dict(ours.actor_head.mean.state_dict())
            policy.log_std.copy_(ours.actor_head.log_std)
    return ours, reference


def ppo_parameters(ours, reference) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    policy = reference.policy
    mine = [*ours.actor_body.parameters(), *ours.actor_head.parameters(), *ours.critic.parameters()]
    # our Gaussian head lists its own log_std before the mean layer's weights
    head = [*policy.action_net.parameters()] if ours.discrete else [policy.log_std, *policy.action_net.parameters()]
    theirs = [*policy.mlp_extractor.policy_net.parameters(), *head, *policy.mlp_extractor.value_net.parameters(),
              *policy.value_net.parameters()]
    return mine, theirs


def fill_rollouts(ours, reference, rng: np.random.Generator) -> None:
    """The same rollout for both: actions from our policy, terminations and time-limit truncations. SB3 folds a
    truncated step's bootstrap gamma V(final obs) into its reward (``collect_rollouts``), we keep it apart."""
    policy, obs_dim = reference.policy, ours.obs_dim
    episode_start = np.ones(1, bool)
    for _ in range(PPO_STEPS):
        obs = rng.uniform(-1, 1, (1, obs_dim)).astype(np.float32)
        ours.act(obs)  # samples the action and caches it with its log-probability, as in training
        actions = ours._cache[0]
        kind = rng.random()
        terminated, truncated = np.array([kind < 0.05]), np.array([0.05 <= kind < 0.1])
        reward = rng.uniform(-1, 1, 1).astype(np.float32)
        next_obs = rng.uniform(-1, 1, (1, obs_dim)).astype(np.float32)
        ours.store(Transition(obs=obs, action=actions, reward=reward, next_obs=next_obs, terminated=terminated,
                              truncated=truncated))
        with torch.no_grad():
            values, log_prob, _ = policy.evaluate_actions(torch.as_tensor(obs), torch.as_tensor(actions))
            if truncated[0]:
                reward = reward + reference.gamma * policy.predict_values(torch.as_tensor(next_obs))[0].numpy()
        reference.rollout_buffer.add(obs, actions, reward, episode_start, values, log_prob)
        episode_start = terminated | truncated
    with torch.no_grad():
        last_values = policy.predict_values(torch.as_tensor(next_obs))
    reference.rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=episode_start)


@pytest.mark.parametrize(("env_id", "overrides"), [
    ("Pendulum-v1", {}),
    ("CartPole-v1", {}),
    # the KL stop ends the update after 7 of 9 minibatches: their KLs run 0 ... 1.8e-3, 4.1e-3, 7.6e-3, so the
    # stop point moves if the 1.5 x target_kl threshold does (at 2 x it would come one minibatch later)
    ("Pendulum-v1", {"learning_rate": 3e-3, "target_kl": 0.0024}),
], ids=["gaussian", "categorical", "target_kl"])
def test_ppo_update_matches_stable_baselines3(monkeypatch, env_id, overrides):
    env = gym.make(env_id)
    ours, reference = ppo_pair(env, **overrides)
    rng = np.random.default_rng(4)
    fill_rollouts(ours, reference, rng)
    np.testing.assert_allclose(ours.buffer.log_probs.ravel(), reference.rollout_buffer.log_probs.ravel(), atol=1e-6)
    orders = [rng.permutation(PPO_STEPS) for _ in range(PPO_EPOCHS)]
    ours_orders, reference_orders = deque(orders), deque(orders)
    monkeypatch.setattr(ours, "np_rng", SimpleNamespace(permutation=lambda n: ours_orders.popleft()))
    monkeypatch.setattr(np.random, "permutation", lambda n: reference_orders.popleft())
    start = snapshot(ppo_parameters(ours, reference)[0])
    kls: list[float] = []  # per minibatch, the estimate the KL stop reads
    loss = ppo_module.clipped_ppo_loss

    def recording_kl(config, clip_coef, batch, new_log_probs, *rest):
        log_ratio = (new_log_probs - batch["log_probs"]).detach()
        kls.append(float((log_ratio.exp() - 1 - log_ratio).mean()))
        return loss(config, clip_coef, batch, new_log_probs, *rest)

    monkeypatch.setattr(ppo_module, "clipped_ppo_loss", recording_kl)
    metrics = ours.update()
    reference.train()
    np.testing.assert_allclose(ours.buffer.advantages.ravel(), reference.rollout_buffer.advantages.ravel(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.buffer.returns.ravel(), reference.rollout_buffer.returns.ravel(),
                               rtol=1e-5, atol=1e-5)
    steps = PPO_EPOCHS * PPO_STEPS // PPO_MINIBATCH
    if overrides.get("target_kl"):  # stopped early; the equal parameters below say SB3 stopped there too
        threshold = overrides["target_kl"]
        assert ours.num_updates == len(kls) - 1 and max(kls[:-1]) <= 1.5 * threshold < kls[-1] <= 2 * threshold
    else:
        assert (ours.num_updates, reference._n_updates) == (steps, PPO_EPOCHS)  # SB3 counts epochs
        # means over every minibatch on both sides (SB3 logs approx_kl of the last epoch only, so not compared)
        logged = reference.logger.name_to_value
        for ours_name, name in (("policy_loss", "policy_gradient_loss"), ("value_loss", "value_loss"),
                                ("entropy_loss", "entropy_loss"), ("clip_fraction", "clip_fraction")):
            assert metrics[ours_name] == pytest.approx(logged[f"train/{name}"], rel=1e-4, abs=1e-6), ours_name
    assert_same(*ppo_parameters(ours, reference), start)
