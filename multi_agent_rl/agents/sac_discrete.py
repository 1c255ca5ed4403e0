"""Soft Actor-Critic for discrete actions (Christodoulou 2019, "Soft Actor-Critic for Discrete Action Settings").

Read top to bottom: config, the soft target, networks (a categorical policy over n actions and two Q-networks
that output Q(s, .) for every action), acting (uniform random during warm-up, then sampled from the policy;
argmax when deterministic), storing into replay, the update. On a Box action space (the racing envs' [steer,
speed]) it picks one row of a configured ``action_set``, as DQN does.

What changes against continuous SAC: with every action's Q-value and probability at hand, the expectations
over the policy are computed exactly instead of from one reparameterised sample, both in the soft value of the
next state, V(s') = sum_a pi(a|s') (min_i Q'_i(s', a) - alpha log pi(a|s')), and in the actor loss,
sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a)). The entropy target is a fraction of the uniform policy's
entropy log(n) (CleanRL's ``target_entropy_scale``), since -dim(A) has no meaning here.
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

from .base import DISCRETE, Agent, Capabilities, Transition, load_module_state, module_state, seeded_torch
from .buffers import NStepAccumulator, ReplayBuffer, ReplaySample, load_replay_state, replay_state, store_through_window
from .dqn import DiscreteActionMap
from .networks import freeze, mlp, polyak_update, sample_categorical


@dataclass(frozen=True)
class SACDiscreteConfig:
    """Discrete SAC hyperparameters (CleanRL's ``sac_atari`` names). Defaults follow continuous SAC's (SB3)."""

    buffer_size: int = 1_000_000  # replay capacity in transitions
    policy_lr: float = 3e-4  # Adam step size of the actor
    q_lr: float = 3e-4  # Adam step size of the critics and of the entropy coefficient
    gamma: float = 0.99  # discount factor per env step
    n_step: int = 1  # length of the multi-step return stored in the replay (1 = one-step TD)
    tau: float = 0.005  # target network update rate (1 = hard copy)
    batch_size: int = 256  # transitions per gradient step
    learning_starts: int = 100  # env steps (summed over envs) of uniform random actions before learning
    train_freq: int = 1  # vector steps between training phases
    gradient_steps: int = 1  # gradient steps per training phase; -1 = one per env step collected
    policy_frequency: int = 1  # actor (and entropy coefficient) update every this many critic updates
    target_network_frequency: int = 1  # target update every this many gradient steps
    alpha: float = 1.0  # entropy coefficient; the initial value when autotune
    autotune: bool = True  # learn alpha so the policy entropy tracks target_entropy_scale * log(n)
    target_entropy_scale: float = 0.89  # entropy target as a fraction of the uniform policy's log(n) nats
    hidden_sizes: tuple[int, ...] = (256, 256)  # hidden layers of the actor and of each critic
    activation: str = "relu"  # hidden activation
    # concrete actions for a Box action space, e.g. ((-0.4, 1.0), (0.0, 1.0), (0.4, 1.0)) as [steer, speed]
    action_set: tuple[tuple[float, ...], ...] | None = None


def discrete_soft_td_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    terminated: torch.Tensor,
    next_probs: torch.Tensor,
    next_log_probs: torch.Tensor,
    next_q_min: torch.Tensor,
    alpha: torch.Tensor | float,
) -> torch.Tensor:
    """y = r + discount (1 - terminated) sum_a pi(a|s') (min_i Q'_i(s', a) - alpha log pi(a|s')).

    rewards, discounts, terminated: (B,); next_probs, next_log_probs, next_q_min: (B, n). Returns (B,).
    """
    next_value = (next_probs * (next_q_min - alpha * next_log_probs)).sum(-1)
    return rewards + discounts * (1.0 - terminated) * next_value


class SACDiscrete(Agent):
    """SAC over n discrete actions: categorical actor, twin Q-networks with target copies, learned alpha."""

    capabilities = Capabilities(
        on_policy=False, recurrent=False, action_kinds=frozenset({DISCRETE}), box_via_action_set=True
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: SACDiscreteConfig = SACDiscreteConfig(),  # noqa: B008 (frozen dataclass: an immutable default)
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, config, num_envs, device, seed)
        cfg = config
        self.actions = DiscreteActionMap(action_space, cfg.action_set)
        n = self.actions.num_actions
        hidden = tuple(cfg.hidden_sizes)
        with seeded_torch(seed):
            self.actor = mlp(self.obs_dim, hidden, n, activation=cfg.activation).to(self.device)
            self.q1 = mlp(self.obs_dim, hidden, n, activation=cfg.activation).to(self.device)
            self.q2 = mlp(self.obs_dim, hidden, n, activation=cfg.activation).to(self.device)
        self.q1_target = freeze(copy.deepcopy(self.q1))
        self.q2_target = freeze(copy.deepcopy(self.q2))
        self.critic_params = [*self.q1.parameters(), *self.q2.parameters()]
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic_params, lr=cfg.q_lr, fused=True)
        self.log_alpha = torch.tensor([math.log(cfg.alpha)], device=self.device, requires_grad=cfg.autotune)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.q_lr) if cfg.autotune else None
        self.target_entropy = cfg.target_entropy_scale * math.log(n)  # nats; log(n) is the uniform policy's
        self.replay = ReplayBuffer(cfg.buffer_size, self.obs_dim, (), True, self.device)
        self.n_step = NStepAccumulator(cfg.n_step, cfg.gamma, self.num_envs)
        self._steps_since_train = 0  # vector steps stored since the last training phase

    # --- acting ---------------------------------------------------------------------------------------------

    def policy(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, obs_dim) -> action probabilities and their logs, each (B, n)."""
        log_probs = F.log_softmax(self.actor(obs), dim=-1)
        return log_probs.exp(), log_probs

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(E, *obs_shape) -> (E,) int64 actions, or (E, *action_shape) entries of the action set."""
        count = len(obs)
        if not deterministic and self.num_timesteps < self.config.learning_starts:
            return self.actions.to_env(self.np_rng.integers(0, self.actions.num_actions, count))
        with torch.inference_mode():
            logits = self.actor(self._obs_tensor(obs))
            indices = logits.argmax(dim=-1) if deterministic else sample_categorical(logits, self.torch_rng)
        return self.actions.to_env(indices.cpu().numpy())

    # --- storing --------------------------------------------------------------------------------------------

    def store(self, transition: Transition) -> None:
        store_through_window(
            self.replay,
            self.n_step,
            transition.obs,
            self.actions.to_index(transition.action),
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
        names = ("critic_loss", "actor_loss", "ent_coef", "ent_coef_loss", "entropy")
        metrics = dict(zip(names, means, strict=True))
        metrics["n_updates"] = float(self.num_updates)
        if not cfg.autotune:
            del metrics["ent_coef_loss"]
        return metrics

    def td_target(self, batch: ReplaySample, alpha: torch.Tensor | float) -> torch.Tensor:
        """Soft TD target, exact expectation over the policy at s', shape (B,)."""
        with torch.no_grad():
            next_probs, next_log_probs = self.policy(batch.next_obs)
            next_q_min = torch.minimum(self.q1_target(batch.next_obs), self.q2_target(batch.next_obs))
            return discrete_soft_td_target(
                batch.rewards, batch.discounts, batch.terminated, next_probs, next_log_probs, next_q_min, alpha
            )

    def _gradient_step(self, step_in_phase: int) -> list[torch.Tensor]:
        """One gradient step; returns [critic loss, actor loss, alpha, alpha loss, entropy] (NaN where skipped)."""
        cfg = self.config
        batch = self.replay.sample(cfg.batch_size, self.np_rng)
        self.num_updates += 1
        nan = torch.tensor(float("nan"))
        alpha = self.alpha

        target_q = self.td_target(batch, alpha)
        taken = batch.actions.unsqueeze(1)
        q1, q2 = self.q1(batch.obs).gather(1, taken).squeeze(1), self.q2(batch.obs).gather(1, taken).squeeze(1)
        critic_loss = 0.5 * (F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        actor_loss = alpha_loss = entropy = nan
        if self.num_updates % cfg.policy_frequency == 0:
            with torch.no_grad():  # the actor follows the critics as they are after this step's update
                min_q = torch.minimum(self.q1(batch.obs), self.q2(batch.obs))
            probs, log_probs = self.policy(batch.obs)
            actor_loss = (probs * (alpha * log_probs - min_q)).sum(-1).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            entropy = -(probs.detach() * log_probs.detach()).sum(-1)
            if self.alpha_optimizer is not None:
                # descend while the entropy is above the target: alpha shrinks, and grows below it
                alpha_loss = (self.log_alpha * (entropy - self.target_entropy)).mean()
                self.alpha_optimizer.zero_grad(set_to_none=True)
                alpha_loss.backward()
                self.alpha_optimizer.step()
                alpha_loss = alpha_loss.detach()
            actor_loss, entropy = actor_loss.detach(), entropy.mean()

        if step_in_phase % cfg.target_network_frequency == 0:
            polyak_update(self.q1, self.q1_target, cfg.tau)
            polyak_update(self.q2, self.q2_target, cfg.tau)
        return [critic_loss.detach(), actor_loss, alpha.squeeze(), alpha_loss, entropy]

    # --- state ----------------------------------------------------------------------------------------------

    def _modules(self) -> dict[str, Any]:
        modules = {
            "actor": self.actor,
            "q1": self.q1,
            "q2": self.q2,
            "q1_target": self.q1_target,
            "q2_target": self.q2_target,
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
