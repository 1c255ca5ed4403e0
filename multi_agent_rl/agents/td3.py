"""Twin Delayed DDPG (Fujimoto et al. 2018) for Box action spaces.

Read top to bottom: config, networks, acting (uniform random during warm-up, then the deterministic actor plus
Gaussian noise), storing into replay, the update. Schedules follow SB3: every ``train_freq`` vector steps,
once more than ``learning_starts`` env steps were collected, take ``gradient_steps`` gradient steps; the actor
and both target networks move every ``policy_frequency``-th gradient step.

Internally actions live in [-1, 1] (the actor's tanh range); they are mapped to the env's bounds on the way
out and back on the way in, so the noise scales are fractions of half the action range.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from .base import CONTINUOUS, Agent, Capabilities, Transition, load_module_state, module_state, seeded_torch
from .buffers import NStepAccumulator, ReplayBuffer, ReplaySample, load_replay_state, replay_state, store_through_window
from .networks import DeterministicActor, TwinQCritic, freeze, polyak_update


@dataclass(frozen=True)
class TD3Config:
    """TD3 hyperparameters (CleanRL names; SB3 name in brackets where it differs). Defaults are SB3's."""

    buffer_size: int = 1_000_000  # replay capacity in transitions
    learning_rate: float = 1e-3  # Adam step size of actor and critics
    gamma: float = 0.99  # discount factor per env step
    n_step: int = 1  # length of the multi-step return stored in the replay (1 = one-step TD) [n_steps]
    tau: float = 0.005  # target network update rate (1 = hard copy)
    batch_size: int = 256  # transitions per gradient step
    learning_starts: int = 100  # env steps (summed over envs) of uniform random actions before learning
    train_freq: int = 1  # vector steps between training phases
    gradient_steps: int = 1  # gradient steps per training phase; -1 = one per env step collected
    policy_frequency: int = 2  # actor and target updates every this many critic updates [policy_delay]
    exploration_noise: float = 0.1  # std of the Gaussian acting noise, fraction of half the action range
    policy_noise: float = 0.2  # std of the target smoothing noise, same units [target_policy_noise]
    noise_clip: float = 0.5  # target smoothing noise clipped to +-noise_clip [target_noise_clip]
    hidden_sizes: tuple[int, ...] = (400, 300)  # hidden layers of the actor and of each critic
    activation: str = "relu"  # hidden activation


class TD3(Agent):
    """TD3: deterministic actor, twin critics, target policy smoothing, delayed actor updates."""

    capabilities = Capabilities(on_policy=False, recurrent=False, action_kinds=frozenset({CONTINUOUS}))

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: TD3Config = TD3Config(),  # noqa: B008 (frozen dataclass: an immutable default)
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
            self.actor = DeterministicActor(self.obs_dim, self.action_dim, hidden, cfg.activation).to(
                self.device
            )
            self.critic = TwinQCritic(self.obs_dim, self.action_dim, hidden, cfg.activation).to(self.device)
        self.actor_target = freeze(copy.deepcopy(self.actor))
        self.critic_target = freeze(copy.deepcopy(self.critic))
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.learning_rate, fused=True)
        self.replay = ReplayBuffer(cfg.buffer_size, self.obs_dim, (self.action_dim,), False, self.device)
        self.n_step = NStepAccumulator(cfg.n_step, cfg.gamma, self.num_envs)
        self._steps_since_train = 0  # vector steps stored since the last training phase

    # --- acting ---------------------------------------------------------------------------------------------

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(E, *obs_shape) -> (E, A) float32 actions within the Box bounds."""
        if not deterministic and self.num_timesteps < self.config.learning_starts:
            return self.np_rng.uniform(self.action_low, self.action_high, (len(obs), self.action_dim)).astype(
                np.float32
            )
        with torch.inference_mode():
            unit = self.actor(self._obs_tensor(obs)).cpu().numpy()
        if not deterministic:
            noise = self.np_rng.normal(0.0, self.config.exploration_noise, unit.shape)
            unit = np.clip(unit + noise, -1.0, 1.0)
        return self._to_env(unit)

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

    def update(self) -> dict[str, float] | None:
        cfg = self.config
        if self._steps_since_train < cfg.train_freq:
            return None
        collected = self._steps_since_train * self.num_envs
        self._steps_since_train = 0
        if self.num_timesteps <= cfg.learning_starts or len(self.replay) == 0:  # n-step rows lag behind
            return None
        gradient_steps = cfg.gradient_steps if cfg.gradient_steps >= 0 else collected
        critic_losses, actor_losses = [], []
        for _ in range(gradient_steps):
            critic_loss, actor_loss = self._gradient_step()
            critic_losses.append(critic_loss)
            if actor_loss is not None:
                actor_losses.append(actor_loss)
        metrics = {
            "critic_loss": float(torch.stack(critic_losses).mean()),
            "n_updates": float(self.num_updates),
        }
        if actor_losses:
            metrics["actor_loss"] = float(torch.stack(actor_losses).mean())
        return metrics

    def td_target(self, batch: ReplaySample) -> torch.Tensor:
        """y = r + discount (1 - terminated) min_i Q'_i(s', clip(pi'(s') + clipped noise, -1, 1)), (B,)."""
        cfg = self.config
        with torch.no_grad():
            noise = (
                torch.randn(batch.actions.shape, generator=self.torch_rng, device=self.device)
                * cfg.policy_noise
            )
            noise = noise.clamp(-cfg.noise_clip, cfg.noise_clip)
            next_actions = (self.actor_target(batch.next_obs) + noise).clamp(-1.0, 1.0)
            next_q = torch.minimum(*self.critic_target(batch.next_obs, next_actions))
            return batch.rewards + batch.discounts * (1.0 - batch.terminated) * next_q

    def _gradient_step(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        batch = self.replay.sample(cfg.batch_size, self.np_rng)
        self.num_updates += 1
        target_q = self.td_target(batch)
        q1, q2 = self.critic(batch.obs, batch.actions)
        critic_loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        if self.num_updates % cfg.policy_frequency != 0:
            return critic_loss.detach(), None
        self.critic.requires_grad_(False)  # the actor loss needs dQ/da, not dQ/dtheta
        actor_loss = -self.critic.first(batch.obs, self.actor(batch.obs)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.critic.requires_grad_(True)
        polyak_update(self.critic, self.critic_target, cfg.tau)
        polyak_update(self.actor, self.actor_target, cfg.tau)
        return critic_loss.detach(), actor_loss.detach()

    # --- state ----------------------------------------------------------------------------------------------

    def _modules(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
            "actor_optimizer": self.actor_optimizer,
            "critic_optimizer": self.critic_optimizer,
        }

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        state = super().state_dict()
        state.update(modules=module_state(self._modules()), steps_since_train=self._steps_since_train)
        if include_buffer:
            state.update(replay_state(self.replay, self.n_step))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_module_state(self._modules(), state["modules"])
        self._steps_since_train = int(state["steps_since_train"])
        load_replay_state(self.replay, self.n_step, state)
