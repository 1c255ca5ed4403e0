"""Proximal Policy Optimization (Schulman et al. 2017) for Box and Discrete action spaces.

Read top to bottom: config, networks, acting (which caches what the update needs), storing, the update.
Matches SB3's PPO in losses and schedules (MSE value loss, per-minibatch advantage normalisation, linear
annealing from ``progress_remaining = 1 - timesteps / total_timesteps`` measured after each rollout, target-KL
early stop at 1.5 x target_kl before the gradient step), with optional gSDE exploration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from .base import (
    CONTINUOUS,
    DISCRETE,
    Agent,
    Capabilities,
    Transition,
    load_module_state,
    module_state,
    seeded_torch,
)
from .buffers import RolloutBuffer, explained_variance
from .networks import (
    DiagGaussianHead,
    StateDependentNoiseHead,
    categorical_log_prob_entropy,
    clip_grad_norm,
    gaussian_log_prob,
    gaussian_log_prob_entropy,
    layer_init,
    mlp,
    output_size,
    sample_categorical,
)


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (CleanRL names; SB3 name in brackets where it differs)."""

    total_timesteps: int = 1_000_000  # env steps of the whole run, summed over envs: the annealing horizon
    learning_rate: float = 3e-4  # Adam step size (initial value when annealed)
    anneal_lr: bool = False  # decay the learning rate linearly to 0 over total_timesteps
    num_steps: int = 2048  # rollout length per env between updates [n_steps]
    gamma: float = 0.99  # discount factor per env step
    gae_lambda: float = 0.95  # GAE trace decay
    minibatch_size: int = 64  # transitions per gradient step [batch_size]
    update_epochs: int = 10  # passes over each rollout [n_epochs]
    norm_adv: bool = True  # normalise advantages per minibatch [normalize_advantage]
    clip_coef: float = 0.2  # policy ratio clip range [clip_range]
    anneal_clip_coef: bool = False  # decay clip_coef linearly to 0 over total_timesteps (SB3 "lin_0.2")
    clip_vloss: bool = False  # clip the value update around the old values (PPO2 style, max of both losses)
    vf_clip_coef: float = 0.2  # value clip range in reward units, used when clip_vloss [clip_range_vf]
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global gradient norm clip
    target_kl: float | None = None  # stop the update's epochs once approx KL > 1.5 * target_kl; None = never
    hidden_sizes: tuple[int, ...] = (64, 64)  # hidden layers of the actor and of the (separate) critic
    activation: str = "tanh"  # hidden activation: tanh, relu, elu, gelu, leaky_relu
    ortho_init: bool = True  # orthogonal init (gain sqrt 2 hidden, 0.01 policy output, 1 value output)
    log_std_init: float = 0.0  # initial log std of the Gaussian policy (or of the gSDE noise weights)
    use_sde: bool = False  # generalized state-dependent exploration instead of independent Gaussian noise
    sde_sample_freq: int = -1  # redraw the gSDE noise matrix every this many steps; -1 = once per rollout
    adam_eps: float = 1e-5  # Adam epsilon


STAT_NAMES = ("policy_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction")


def clipped_ppo_loss(
    cfg: PPOConfig,
    clip_coef: float,
    batch: dict[str, torch.Tensor],
    new_log_probs: torch.Tensor,
    entropy: torch.Tensor,
    new_values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The PPO objective on a minibatch of B transitions (all tensors (B,)).

    ``batch`` holds the rollout's ``log_probs``, ``values``, ``advantages`` and ``returns``. Returns the loss
    to minimise and its parts [policy, value, entropy loss, approx KL, clip fraction] (detached), or None when
    ``cfg.target_kl`` is set and the KL estimate already exceeds 1.5 x target_kl (SB3's stop).
    """
    log_ratio = new_log_probs - batch["log_probs"]
    ratio = log_ratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()  # low-variance estimator (Schulman 2020)
        clip_fraction = ((ratio - 1.0).abs() > clip_coef).float().mean()
    if cfg.target_kl is not None and float(approx_kl) > 1.5 * cfg.target_kl:
        return None

    advantages = batch["advantages"]
    if cfg.norm_adv and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = torch.max(
        -advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)
    ).mean()

    value_error = (new_values - batch["returns"]).square()
    if cfg.clip_vloss:
        change = (new_values - batch["values"]).clamp(-cfg.vf_clip_coef, cfg.vf_clip_coef)
        value_error = torch.max(value_error, (batch["values"] + change - batch["returns"]).square())
    value_loss = value_error.mean()
    entropy_loss = -entropy.mean()

    loss = policy_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
    stats = torch.stack(
        [policy_loss.detach(), value_loss.detach(), entropy_loss.detach(), approx_kl, clip_fraction]
    )
    return loss, stats


def summarise_update(stats: list[torch.Tensor], values: np.ndarray, returns: np.ndarray) -> dict[str, float]:
    """Mean of the per-minibatch stats plus the explained variance of the rollout's value predictions."""
    means = torch.stack(stats).mean(0).tolist() if stats else [float("nan")] * len(STAT_NAMES)
    metrics = dict(zip(STAT_NAMES, means, strict=True))
    metrics["explained_variance"] = explained_variance(values, returns)
    return metrics


class PPO(Agent):
    """Clipped-objective PPO with a separate actor and critic MLP; batched acting over E envs."""

    capabilities = Capabilities(
        on_policy=True, recurrent=False, action_kinds=frozenset({CONTINUOUS, DISCRETE})
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: PPOConfig = PPOConfig(),  # noqa: B008 (frozen dataclass: an immutable default)
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, config, num_envs, device, seed)
        cfg = config
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if cfg.use_sde and self.discrete:
            raise ValueError("PPO's use_sde (gSDE) needs a continuous action space.")
        hidden = tuple(cfg.hidden_sizes)
        latent_dim = output_size(hidden, self.obs_dim)
        with seeded_torch(seed):
            self.actor_body = mlp(self.obs_dim, hidden, activation=cfg.activation, ortho_init=cfg.ortho_init)
            if self.discrete:
                self.actor_head: nn.Module = nn.Linear(latent_dim, int(action_space.n))
                if cfg.ortho_init:
                    layer_init(self.actor_head, 0.01)
            else:
                head_class = StateDependentNoiseHead if cfg.use_sde else DiagGaussianHead
                self.actor_head = head_class(
                    latent_dim, action_space.shape[0], cfg.log_std_init, cfg.ortho_init
                )
            self.critic = mlp(self.obs_dim, hidden, 1, activation=cfg.activation, ortho_init=cfg.ortho_init)
        self.actor_body.to(self.device)
        self.actor_head.to(self.device)
        self.critic.to(self.device)
        self.params = [
            *self.actor_body.parameters(),
            *self.actor_head.parameters(),
            *self.critic.parameters(),
        ]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
        if self.discrete:
            action_shape: tuple[int, ...] = ()
        else:
            action_shape = tuple(action_space.shape)
            self.action_low = action_space.low.astype(np.float32)
            self.action_high = action_space.high.astype(np.float32)
        self.buffer = RolloutBuffer(cfg.num_steps, self.num_envs, self.obs_dim, action_shape, self.discrete)
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # raw action, log-prob, value
        self._last_next_obs: np.ndarray | None = None  # successor obs of the last stored step (bootstrap)
        self._sde_matrices: torch.Tensor | None = None  # gSDE noise weights, one matrix per env

    # --- acting ---------------------------------------------------------------------------------------------

    def _distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Policy parameters: (logits, None, latent) for discrete, (mean, std, latent) for continuous."""
        latent = self.actor_body(obs)
        if self.discrete:
            return self.actor_head(latent), None, latent
        mean, std = self.actor_head(latent)
        return mean, std, latent

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(E, *obs_shape) -> (E,) int64 or (E, A) float32 actions clipped to the Box bounds.

        Stochastic calls cache the raw sample and its log-probability for :meth:`store`. State values are not
        computed here: the critic does not change during a rollout, so :meth:`update` evaluates all of them in
        one batched pass.
        """
        obs_t = self._obs_tensor(obs)
        with torch.inference_mode():
            params, std, latent = self._distribution(obs_t)
            if self.discrete:
                if deterministic:
                    return params.argmax(-1).cpu().numpy()
                actions = sample_categorical(params, self.torch_rng)
                log_probs, _ = categorical_log_prob_entropy(params, actions)
            else:
                if deterministic:
                    return np.clip(params.cpu().numpy(), self.action_low, self.action_high)
                if self.config.use_sde:
                    noise = self.actor_head.noise(latent, self._exploration_matrices(len(obs_t)))
                else:
                    noise = std * torch.randn(params.shape, generator=self.torch_rng, device=self.device)
                actions = params + noise
                log_probs = gaussian_log_prob(actions, params, std)
        actions_np = actions.cpu().numpy()
        self._cache = (actions_np, log_probs.cpu().numpy())
        return actions_np if self.discrete else np.clip(actions_np, self.action_low, self.action_high)

    def _exploration_matrices(self, batch: int) -> torch.Tensor:
        """gSDE noise weights, redrawn at each rollout start and every ``sde_sample_freq`` steps (as SB3)."""
        step = self.buffer.pos
        freq = self.config.sde_sample_freq
        stale = self._sde_matrices is None or len(self._sde_matrices) != batch
        if stale or step == 0 or (freq > 0 and step % freq == 0):
            self._sde_matrices = self.actor_head.sample_exploration_matrices(batch, self.torch_rng)
        return self._sde_matrices

    # --- storing --------------------------------------------------------------------------------------------

    def store(self, transition: Transition) -> None:
        """Append the step to the rollout, paired with the sample cached by the preceding stochastic act()."""
        if self._cache is None:
            raise RuntimeError(
                "PPO.store() must follow act(obs, deterministic=False) on the same observations."
            )
        actions, log_probs = self._cache
        self._cache = None
        self.buffer.add(
            transition.obs,
            actions,
            log_probs,
            0.0,  # V(obs) is filled in for the whole rollout at update time
            transition.reward,
            transition.terminated,
            transition.truncated,
        )
        truncated_only = np.asarray(transition.truncated, bool) & ~np.asarray(transition.terminated, bool)
        if truncated_only.any():
            self.buffer.add_final_values(truncated_only, self._values(transition.next_obs[truncated_only]))
        self._last_next_obs = transition.next_obs
        self.num_timesteps += self.num_envs

    def _values(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.critic(self._obs_tensor(obs)).squeeze(-1).cpu().numpy()

    # --- learning -------------------------------------------------------------------------------------------

    def update(self) -> dict[str, float] | None:
        """Run ``update_epochs`` passes of minibatch PPO once the rollout is full; None otherwise."""
        if not self.buffer.full:
            return None
        cfg = self.config
        # V of every stored observation and of the last successors, in one pass of the (unchanged) critic
        rollout_obs = self.buffer.obs.reshape(-1, self.obs_dim)
        values = self._values(np.concatenate([rollout_obs, self._last_next_obs.reshape(self.num_envs, -1)]))
        self.buffer.values[:] = values[: len(rollout_obs)].reshape(self.buffer.values.shape)
        self.buffer.compute_returns_and_advantages(values[len(rollout_obs) :], cfg.gamma, cfg.gae_lambda)
        progress_remaining = max(0.0, 1.0 - self.num_timesteps / cfg.total_timesteps)
        learning_rate = cfg.learning_rate * (progress_remaining if cfg.anneal_lr else 1.0)
        clip_coef = cfg.clip_coef * (progress_remaining if cfg.anneal_clip_coef else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

        data = self.buffer.flat_tensors(self.device)
        batch_size = len(data["obs"])
        stats: list[torch.Tensor] = []  # per minibatch: policy, value, entropy loss, approx kl, clip fraction
        stop_early = False
        for _ in range(cfg.update_epochs):
            # one gather per field and epoch; the minibatches are then contiguous slices (views)
            if cfg.minibatch_size >= batch_size:  # one full-batch step: the order does not matter
                shuffled = data
            else:
                order = torch.from_numpy(self.np_rng.permutation(batch_size))
                shuffled = {name: tensor[order] for name, tensor in data.items()}
            for start in range(0, batch_size, cfg.minibatch_size):
                end = start + cfg.minibatch_size
                step_stats = self._minibatch_step({k: v[start:end] for k, v in shuffled.items()}, clip_coef)
                if step_stats is None:
                    stop_early = True
                    break
                stats.append(step_stats)
            if stop_early:
                break
        self.buffer.reset()
        return self._summarise(stats, data, learning_rate, clip_coef)

    def _minibatch_step(self, batch: dict[str, torch.Tensor], clip_coef: float) -> torch.Tensor | None:
        """One clipped-PPO gradient step; returns its stats (5,), or None if the KL limit stopped it."""
        params, std, _ = self._distribution(batch["obs"])
        if self.discrete:
            new_log_probs, entropy = categorical_log_prob_entropy(params, batch["actions"])
        else:
            new_log_probs, entropy = gaussian_log_prob_entropy(batch["actions"], params, std)
        new_values = self.critic(batch["obs"]).squeeze(-1)
        result = clipped_ppo_loss(self.config, clip_coef, batch, new_log_probs, entropy, new_values)
        if result is None:
            return None
        loss, stats = result
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.num_updates += 1
        return stats

    def _summarise(
        self, stats: list[torch.Tensor], data: dict[str, torch.Tensor], learning_rate: float, clip_coef: float
    ) -> dict[str, float]:
        metrics = summarise_update(stats, data["values"].cpu().numpy(), data["returns"].cpu().numpy())
        metrics.update(learning_rate=learning_rate, clip_range=clip_coef, n_updates=float(self.num_updates))
        if not self.discrete:
            metrics["std"] = float(self.actor_head.log_std.detach().exp().mean())
        return metrics

    # --- state ----------------------------------------------------------------------------------------------

    def _modules(self) -> dict[str, Any]:
        return {
            "actor_body": self.actor_body,
            "actor_head": self.actor_head,
            "critic": self.critic,
            "optimizer": self.optimizer,
        }

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        """Networks, optimizer, counters, RNGs, the partial rollout (always: PPO cannot resume without it)."""
        state = super().state_dict()
        state.update(
            modules=module_state(self._modules()),
            rollout=self.buffer.state_dict(),
            last_next_obs=None if self._last_next_obs is None else self._last_next_obs.copy(),
            sde_matrices=None if self._sde_matrices is None else self._sde_matrices.clone(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_module_state(self._modules(), state["modules"])
        self.buffer.load_state_dict(state["rollout"])
        self._last_next_obs = state["last_next_obs"]
        self._sde_matrices = state["sde_matrices"]
        self._cache = None
