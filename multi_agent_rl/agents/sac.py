"""Soft Actor-Critic (Haarnoja et al. 2018) with automatic entropy tuning, for Box action spaces.

Read top to bottom: config, networks, acting (uniform random during warm-up, then a tanh-squashed Gaussian),
storing into replay, the update. The gradient step follows SB3's order: sample the policy on the batch, step
the entropy coefficient, step the critics towards the soft target, step the actor against the updated critics,
then move the target critics. Actions live in [-1, 1] internally and are mapped to the env's bounds on the way
out.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from .base import CONTINUOUS, Agent, Capabilities, Transition, load_module_state, module_state, seeded_torch
from .buffers import NStepAccumulator, ReplayBuffer, ReplaySample, load_replay_state, replay_state, store_through_window
from .networks import SquashedGaussianActor, TwinQCritic, freeze, polyak_update


@dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters (CleanRL names; SB3 name in brackets where it differs). Defaults are SB3's."""

    buffer_size: int = 1_000_000  # replay capacity in transitions
    policy_lr: float = 3e-4  # Adam step size of the actor [learning_rate]
    q_lr: float = 3e-4  # Adam step size of the critics and of the entropy coefficient [learning_rate]
    gamma: float = 0.99  # discount factor per env step
    n_step: int = 1  # length of the multi-step return stored in the replay (1 = one-step TD) [n_steps]
    tau: float = 0.005  # target network update rate (1 = hard copy)
    batch_size: int = 256  # transitions per gradient step
    learning_starts: int = 100  # env steps (summed over envs) of uniform random actions before learning
    train_freq: int = 1  # vector steps between training phases
    gradient_steps: int = 1  # gradient steps per training phase; -1 = one per env step collected
    policy_frequency: int = 1  # actor update every this many critic updates (SB3: 1)
    target_network_frequency: int = 1  # target update every this many gradient steps [target_update_interval]
    alpha: float = 1.0  # entropy coefficient; the initial value when autotune [ent_coef "auto_1.0"]
    autotune: bool = True  # learn alpha so the policy entropy tracks target_entropy [ent_coef "auto"]
    # nats; None = -action_dim (SB3's). Holding a squashed command at a bound of [-1, 1] costs entropy, so this
    # target keeps commands off their bounds: where the best command sits at one (gaplock's full throttle) use a
    # lower target or a fixed alpha (docs/results.md, "What the SAC attackers do")
    target_entropy: float | None = None
    hidden_sizes: tuple[int, ...] = (256, 256)  # hidden layers of the actor and of each critic
    activation: str = "relu"  # hidden activation


def soft_td_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    terminated: torch.Tensor,
    next_q_min: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: torch.Tensor | float,
) -> torch.Tensor:
    """y = r + discount * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s')), all (B,)."""
    return rewards + discounts * (1.0 - terminated) * (next_q_min - alpha * next_log_prob)


class SAC(Agent):
    """SAC: tanh-Gaussian actor, twin critics with target copies, learned entropy coefficient."""

    capabilities = Capabilities(on_policy=False, recurrent=False, action_kinds=frozenset({CONTINUOUS}))

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SACConfig = SACConfig(),  # noqa: B008 (frozen dataclass: an immutable default)
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, config, num_envs, device, seed)
        cfg = config
        self.action_dim = int(action_space.shape[0])
        self.action_low = action_space.low.astype(np.float32)
        self.action_high = action_space.high.astype(np.float32)
        hidden = tuple(cfg.hidden_sizes)
        with seeded_torch(seed):
            self.actor = SquashedGaussianActor(self.obs_dim, self.action_dim, hidden, cfg.activation)
            self.critic = TwinQCritic(self.obs_dim, self.action_dim, hidden, cfg.activation)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.critic_target = freeze(copy.deepcopy(self.critic))
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.q_lr, fused=True)
        self.log_alpha = torch.tensor([math.log(cfg.alpha)], device=self.device, requires_grad=cfg.autotune)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.q_lr) if cfg.autotune else None
        self.target_entropy = (
            float(-self.action_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        )
        self.replay = ReplayBuffer(cfg.buffer_size, self.obs_dim, (self.action_dim,), False, self.device)
        self.n_step = NStepAccumulator(cfg.n_step, cfg.gamma, self.num_envs)
        self._steps_since_train = 0  # vector steps stored since the last training phase

    # --- acting ---------------------------------------------------------------------------------------------

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(E, *obs_shape) -> (E, A) float32 actions within the Box bounds (tanh(mean) when deterministic)."""
        if not deterministic and self.num_timesteps < self.config.learning_starts:
            return self.np_rng.uniform(self.action_low, self.action_high, (len(obs), self.action_dim)).astype(
                np.float32
            )
        with torch.inference_mode():
            unit, _ = self.actor(self._obs_tensor(obs), self.torch_rng, deterministic)
        return self._to_env(unit.cpu().numpy())

    def _to_env(self, unit: np.ndarray) -> np.ndarray:
        return (self.action_low + (unit + 1.0) * 0.5 * (self.action_high - self.action_low)).astype(
            np.float32
        )

    def _to_unit(self, actions: np.ndarray) -> np.ndarray:
        return 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0

    # --- storing --------------------------------------------------------------------------------------------

    def store(self, transition: Transition) -> None:
        store_through_window(
            self.replay,
            self.n_step,
            transition.obs,
            self._to_unit(np.asarray(transition.action, dtype=np.float32)),
            transition.reward,
            transition.next_obs,
            transition.terminated,
            transition.truncated,
        )
        self.num_timesteps += len(transition.reward)
        self._steps_since_train += 1

    # --- learning -------------------------------------------------------------------------------------------

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def update(self) -> dict[str, float] | None:
        cfg = self.config
        if self._steps_since_train < cfg.train_freq:
            return None
        collected = self._steps_since_train * self.num_envs
        self._steps_since_train = 0
        if self.num_timesteps <= cfg.learning_starts or len(self.replay) == 0:  # n-step rows lag behind
            return None
        gradient_steps = cfg.gradient_steps if cfg.gradient_steps >= 0 else collected
        rows = [self._gradient_step(step) for step in range(gradient_steps)]
        means = torch.stack([torch.stack(row) for row in rows]).nanmean(0).tolist()
        metrics = dict(zip(("critic_loss", "actor_loss", "ent_coef", "ent_coef_loss"), means, strict=True))
        metrics["n_updates"] = float(self.num_updates)
        if not cfg.autotune:
            del metrics["ent_coef_loss"]
        return metrics

    def td_target(self, batch: ReplaySample, alpha: torch.Tensor) -> torch.Tensor:
        """Soft TD target from the target critics and a fresh policy sample at s', shape (B,)."""
        with torch.no_grad():
            next_actions, next_log_prob = self.actor(batch.next_obs, self.torch_rng)
            next_q_min = torch.minimum(*self.critic_target(batch.next_obs, next_actions))
            return soft_td_target(
                batch.rewards, batch.discounts, batch.terminated, next_q_min, next_log_prob, alpha
            )

    def _gradient_step(self, step_in_phase: int) -> list[torch.Tensor]:
        """One SAC gradient step; returns [critic loss, actor loss, alpha, alpha loss] (NaN where skipped)."""
        cfg = self.config
        batch = self.replay.sample(cfg.batch_size, self.np_rng)
        self.num_updates += 1
        nan = torch.tensor(float("nan"))
        update_actor = self.num_updates % cfg.policy_frequency == 0

        # the policy sample for the actor loss is drawn before any network moves (SB3's order)
        if update_actor or self.alpha_optimizer is not None:
            actions_pi, log_prob_pi = self.actor(batch.obs, self.torch_rng)
        alpha = self.alpha
        alpha_loss = nan
        if self.alpha_optimizer is not None:
            alpha_loss = -(self.log_alpha * (log_prob_pi.detach() + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()
            alpha_loss = alpha_loss.detach()

        target_q = self.td_target(batch, alpha)
        q1, q2 = self.critic(batch.obs, batch.actions)
        critic_loss = 0.5 * (F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        actor_loss = nan
        if update_actor:
            self.critic.requires_grad_(False)  # the actor loss needs dQ/da, not dQ/dtheta
            min_q_pi = torch.minimum(*self.critic(batch.obs, actions_pi))
            actor_loss = (alpha * log_prob_pi - min_q_pi).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            self.critic.requires_grad_(True)
            actor_loss = actor_loss.detach()

        if step_in_phase % cfg.target_network_frequency == 0:
            polyak_update(self.critic, self.critic_target, cfg.tau)
        return [critic_loss.detach(), actor_loss, alpha.squeeze(), alpha_loss]

    # --- state ----------------------------------------------------------------------------------------------

    def _modules(self) -> dict[str, Any]:
        modules = {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
        }
        if self.alpha_optimizer is not None:
            modules["alpha_optimizer"] = self.alpha_optimizer
        return modules

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            modules=module_state(self._modules()),
            log_alpha=self.log_alpha.detach().clone(),
            steps_since_train=self._steps_since_train,
        )
        if include_buffer:
            state.update(replay_state(self.replay, self.n_step))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_module_state(self._modules(), state["modules"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self._steps_since_train = int(state["steps_since_train"])
        load_replay_state(self.replay, self.n_step, state)
