"""Deep Q-Network (Mnih et al. 2015) with double Q-learning (van Hasselt et al. 2016) and a Huber loss.

Read top to bottom: config, the discrete action map (so DQN can drive a Box action space through a list of
concrete actions such as [steer, speed] pairs), networks, acting (uniform random during warm-up, then
epsilon-greedy with a linear schedule), storing into replay, the update. Schedules follow SB3: the target
network moves every ``target_network_frequency`` env steps, training runs every ``train_frequency`` vector
steps once more than ``learning_starts`` env steps were collected.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from .base import DISCRETE, Agent, Capabilities, Transition, load_module_state, module_state, seeded_torch
from .buffers import NStepAccumulator, ReplayBuffer, ReplaySample, load_replay_state, replay_state, store_through_window
from .networks import clip_grad_norm, freeze, mlp, polyak_update


@dataclass(frozen=True)
class DQNConfig:
    """DQN hyperparameters (CleanRL names; SB3 name in brackets where it differs). Defaults are SB3's."""

    total_timesteps: int = 1_000_000  # env steps of the whole run: the exploration schedule's horizon
    buffer_size: int = 1_000_000  # replay capacity in transitions
    learning_rate: float = 1e-4  # Adam step size
    gamma: float = 0.99  # discount factor per env step
    n_step: int = 1  # length of the multi-step return stored in the replay (1 = one-step TD) [n_steps]
    tau: float = 1.0  # target network update rate (1 = hard copy)
    target_network_frequency: int = 10_000  # env steps between target updates [target_update_interval]
    batch_size: int = 32  # transitions per gradient step
    start_e: float = 1.0  # initial exploration probability [exploration_initial_eps]
    end_e: float = 0.05  # final exploration probability [exploration_final_eps]
    exploration_fraction: float = 0.1  # fraction of total_timesteps over which epsilon decays linearly
    learning_starts: int = 100  # env steps (summed over envs) of uniform random actions before learning
    train_frequency: int = 4  # vector steps between training phases [train_freq]
    gradient_steps: int = 1  # gradient steps per training phase; -1 = one per env step collected
    double_q: bool = True  # pick the next action with the online network, evaluate it with the target
    max_grad_norm: float = 10.0  # global gradient norm clip
    hidden_sizes: tuple[int, ...] = (64, 64)  # hidden layers of the Q-network
    activation: str = "relu"  # hidden activation
    # concrete actions for a Box action space, e.g. ((-0.4, 1.0), (0.0, 1.0), (0.4, 1.0)) as [steer, speed]
    action_set: tuple[tuple[float, ...], ...] | None = None


class DiscreteActionMap:
    """Maps action indices to env actions and back: the identity for Discrete, a lookup table for a Box.

    Env actions coming back through ``store`` are matched to the nearest table entry, so transitions produced
    by another policy (a scripted driver, demonstrations) can be stored too.
    """

    def __init__(self, action_space: gym.Space, action_set: Sequence[Sequence[float]] | None):
        self.table: np.ndarray | None = None
        if isinstance(action_space, gym.spaces.Discrete):
            self.num_actions = int(action_space.n)
        else:
            self.table = np.asarray(action_set, dtype=np.float32)
            self.num_actions = len(self.table)

    def to_env(self, indices: np.ndarray) -> np.ndarray:
        """(E,) int64 -> (E,) env actions for Discrete, (E, *action_shape) float32 for a Box."""
        return indices if self.table is None else self.table[indices]

    def to_index(self, actions: np.ndarray) -> np.ndarray:
        """Env actions -> (E,) int64 indices (nearest table entry for a Box)."""
        if self.table is None:
            return np.asarray(actions, dtype=np.int64).reshape(-1)
        actions = np.asarray(actions, dtype=np.float32).reshape(len(actions), 1, -1)
        return np.argmin(np.square(actions - self.table[None]).sum(-1), axis=1)


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """Linear interpolation from ``start`` at t = 0 to ``end`` at t = duration, constant afterwards."""
    if duration <= 0:
        return end
    return start + min(t / duration, 1.0) * (end - start)


def dqn_target(
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    terminated: torch.Tensor,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """y = r + discount (1 - terminated) Q'(s', a*), (B,).

    a* = argmax_a Q_online(s', a) (double DQN) when ``next_q_online`` (B, n) is given, else the argmax of the
    target network's own values ``next_q_target`` (B, n) (vanilla DQN).
    """
    if next_q_online is None:
        next_q = next_q_target.max(dim=1).values
    else:
        next_q = next_q_target.gather(1, next_q_online.argmax(dim=1, keepdim=True)).squeeze(1)
    return rewards + discounts * (1.0 - terminated) * next_q


class DQN(Agent):
    """Double DQN with a Huber loss, hard (or Polyak) target updates and linear epsilon-greedy exploration."""

    capabilities = Capabilities(
        on_policy=False, recurrent=False, action_kinds=frozenset({DISCRETE}), box_via_action_set=True
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: DQNConfig = DQNConfig(),  # noqa: B008 (frozen dataclass: an immutable default)
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, config, num_envs, device, seed)
        cfg = config
        self.actions = DiscreteActionMap(action_space, cfg.action_set)
        with seeded_torch(seed):
            self.q_network = mlp(
                self.obs_dim, tuple(cfg.hidden_sizes), self.actions.num_actions, activation=cfg.activation
            ).to(self.device)
        self.target_network = freeze(copy.deepcopy(self.q_network))
        self.params = list(self.q_network.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate, fused=True)
        self.replay = ReplayBuffer(cfg.buffer_size, self.obs_dim, (), True, self.device)
        self.n_step = NStepAccumulator(cfg.n_step, cfg.gamma, self.num_envs)
        self._steps_since_train = 0  # vector steps stored since the last training phase
        self._steps_since_target_update = 0  # vector steps stored since the last target update

    # --- acting ---------------------------------------------------------------------------------------------

    @property
    def epsilon(self) -> float:
        cfg = self.config
        duration = cfg.exploration_fraction * cfg.total_timesteps
        return linear_schedule(cfg.start_e, cfg.end_e, duration, self.num_timesteps)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(E, *obs_shape) -> (E,) int64 actions, or (E, *action_shape) entries of the action set."""
        count = len(obs)
        if not deterministic and self.num_timesteps < self.config.learning_starts:
            return self.actions.to_env(self.np_rng.integers(0, self.actions.num_actions, count))
        with torch.inference_mode():
            greedy = self.q_network(self._obs_tensor(obs)).argmax(dim=1).cpu().numpy()
        if not deterministic:
            explore = self.np_rng.random(count) < self.epsilon
            greedy = np.where(explore, self.np_rng.integers(0, self.actions.num_actions, count), greedy)
        return self.actions.to_env(greedy)

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
        self._steps_since_target_update += 1

    # --- learning -------------------------------------------------------------------------------------------

    def update(self) -> dict[str, float] | None:
        cfg = self.config
        # SB3 counts the target interval in env steps, checked once per vector step before any training
        if self._steps_since_target_update * self.num_envs >= cfg.target_network_frequency:
            self._steps_since_target_update = 0
            polyak_update(self.q_network, self.target_network, cfg.tau)
        if self._steps_since_train < cfg.train_frequency:
            return None
        collected = self._steps_since_train * self.num_envs
        self._steps_since_train = 0
        if self.num_timesteps <= cfg.learning_starts or len(self.replay) == 0:  # n-step rows lag behind
            return None
        gradient_steps = cfg.gradient_steps if cfg.gradient_steps >= 0 else collected
        stats = torch.stack([self._gradient_step() for _ in range(gradient_steps)]).mean(0).tolist()
        return {
            "loss": stats[0],
            "q_values": stats[1],
            "exploration_rate": self.epsilon,
            "n_updates": float(self.num_updates),
        }

    def td_target(self, batch: ReplaySample) -> torch.Tensor:
        with torch.no_grad():
            next_q_online = self.q_network(batch.next_obs) if self.config.double_q else None
            return dqn_target(
                batch.rewards,
                batch.discounts,
                batch.terminated,
                self.target_network(batch.next_obs),
                next_q_online,
            )

    def _gradient_step(self) -> torch.Tensor:
        """One Huber-loss step; returns [loss, mean Q of the taken actions]."""
        batch = self.replay.sample(self.config.batch_size, self.np_rng)
        self.num_updates += 1
        target_q = self.td_target(batch)
        q_taken = self.q_network(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q_taken, target_q)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        return torch.stack([loss.detach(), q_taken.detach().mean()])

    # --- state ----------------------------------------------------------------------------------------------

    def _modules(self) -> dict[str, Any]:
        return {
            "q_network": self.q_network,
            "target_network": self.target_network,
            "optimizer": self.optimizer,
        }

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            modules=module_state(self._modules()),
            steps_since_train=self._steps_since_train,
            steps_since_target_update=self._steps_since_target_update,
        )
        if include_buffer:
            state.update(replay_state(self.replay, self.n_step))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_module_state(self._modules(), state["modules"])
        self._steps_since_train = int(state["steps_since_train"])
        self._steps_since_target_update = int(state["steps_since_target_update"])
        load_replay_state(self.replay, self.n_step, state)
