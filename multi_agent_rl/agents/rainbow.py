"""Rainbow DQN (Hessel et al. 2018): distributional C51 targets, dueling heads, noisy nets, n-step returns,
prioritized replay and double Q-learning, for Discrete action spaces (or a Box through an ``action_set``).

Read top to bottom: config, networks, acting (greedy on the expected return under the online network's current
noise, which every gradient step redraws, so acting holds one noise draw per training phase as Kaixhin's
reference implementation does), storing (1-step transitions become n-step ones before entering the prioritized
replay), the update (cross-entropy between the projected target distribution and the predicted one,
importance-weighted, whose per-sample values become the new priorities). Schedules (warm-up, train frequency,
target interval in env steps) match ``dqn.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .base import DISCRETE, Agent, Capabilities, Transition, load_module_state, module_state, seeded_torch
from .buffers import (
    NStepAccumulator,
    PrioritizedReplayBuffer,
    ReplaySample,
    load_replay_state,
    replay_state,
    store_through_window,
)
from .dqn import DiscreteActionMap, linear_schedule
from .networks import RainbowQNetwork, clip_grad_norm, freeze, polyak_update, project_distribution, reset_noise


@dataclass(frozen=True)
class RainbowConfig:
    """Rainbow hyperparameters (CleanRL-style names; Rainbow paper defaults where they fit an MLP)."""

    total_timesteps: int = 1_000_000  # env steps of the whole run: horizon of the beta and epsilon schedules
    buffer_size: int = 1_000_000  # replay capacity in (n-step) transitions
    learning_rate: float = 6.25e-5  # Adam step size
    adam_eps: float = 1.5e-4  # Adam epsilon
    gamma: float = 0.99  # discount factor per env step
    tau: float = 1.0  # target network update rate (1 = hard copy)
    target_network_frequency: int = 8_000  # env steps between target updates
    batch_size: int = 32  # transitions per gradient step
    learning_starts: int = 1_000  # env steps (summed over envs) of uniform random actions before learning
    train_frequency: int = 4  # vector steps between training phases
    gradient_steps: int = 1  # gradient steps per training phase; -1 = one per env step collected
    n_step: int = 3  # length of the multi-step return stored in the replay (1 = one-step TD) [n_steps]
    n_atoms: int = 51  # atoms of the return distribution's support
    v_min: float = -10.0  # lowest atom, in return units
    v_max: float = 10.0  # highest atom, in return units
    noisy: bool = True  # factorised-Gaussian noisy layers in the heads (the exploration mechanism)
    noisy_sigma: float = 0.5  # initial noise scale sigma_0 of the noisy layers
    dueling: bool = True  # separate value and advantage streams
    double_q: bool = (
        True  # pick the next action with the online network, take its distribution from the target
    )
    prioritized_replay_alpha: float = 0.5  # priority exponent (0 = uniform replay)
    prioritized_replay_beta0: float = 0.4  # importance-sampling exponent at the start, annealed to 1
    prioritized_replay_eps: float = 1e-6  # added to every priority so no transition becomes unreachable
    start_e: float = 0.0  # epsilon-greedy on top of the noise, initial value (0: rely on noisy nets)
    end_e: float = 0.0  # final epsilon
    exploration_fraction: float = 0.1  # fraction of total_timesteps over which epsilon decays linearly
    max_grad_norm: float = 10.0  # global gradient norm clip
    hidden_sizes: tuple[int, ...] = (64, 64)  # trunk layers, the last size is each stream's hidden layer
    # concrete actions for a Box action space, e.g. ((-0.4, 1.0), (0.0, 1.0), (0.4, 1.0)) as [steer, speed]
    action_set: tuple[tuple[float, ...], ...] | None = None


class Rainbow(Agent):
    """Rainbow DQN over a fixed support of ``n_atoms`` return atoms from v_min to v_max."""

    capabilities = Capabilities(
        on_policy=False, recurrent=False, action_kinds=frozenset({DISCRETE}), box_via_action_set=True
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: RainbowConfig = RainbowConfig(),  # noqa: B008 (frozen dataclass: an immutable default)
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, config, num_envs, device, seed)
        cfg = config
        self.actions = DiscreteActionMap(action_space, cfg.action_set)
        with seeded_torch(seed):
            self.q_network = RainbowQNetwork(
                self.obs_dim,
                self.actions.num_actions,
                tuple(cfg.hidden_sizes),
                cfg.n_atoms,
                noisy=cfg.noisy,
                dueling=cfg.dueling,
                noisy_sigma=cfg.noisy_sigma,
            ).to(self.device)
        self.target_network = freeze(copy.deepcopy(self.q_network))
        if cfg.noisy:  # the first acting noise; each gradient step redraws it
            self.q_network.reset_noise(self.torch_rng)
        # stream weights mu + sigma * noise of the current noise, built at the first acting call after a
        # gradient step (or a load) and reused until the next: acting then costs what a plain network does
        self._acting_weights: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None
        self.support = torch.linspace(cfg.v_min, cfg.v_max, cfg.n_atoms, device=self.device)
        self.params = list(self.q_network.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
        self.replay = PrioritizedReplayBuffer(
            cfg.buffer_size, self.obs_dim, (), True, cfg.prioritized_replay_alpha, self.device
        )
        self.n_step = NStepAccumulator(cfg.n_step, cfg.gamma, self.num_envs)
        self._steps_since_train = 0  # vector steps stored since the last training phase
        self._steps_since_target_update = 0  # vector steps stored since the last target update

    # --- acting ---------------------------------------------------------------------------------------------

    @property
    def epsilon(self) -> float:
        cfg = self.config
        duration = cfg.exploration_fraction * cfg.total_timesteps
        return linear_schedule(cfg.start_e, cfg.end_e, duration, self.num_timesteps)

    @property
    def beta(self) -> float:
        """Importance-sampling exponent, annealed linearly from beta0 to 1 over total_timesteps."""
        cfg = self.config
        return linear_schedule(cfg.prioritized_replay_beta0, 1.0, cfg.total_timesteps, self.num_timesteps)

    def expected_q(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(B, n_actions, n_atoms) log-probabilities -> (B, n_actions) expected returns."""
        return (log_probs.exp() * self.support).sum(-1)

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Greedy on the expected return: the current noise when stochastic, mean weights when deterministic.

        The noise is not redrawn per call: the online network's noise changes with each gradient step, so one
        draw drives all acting between two training phases (train_frequency vector steps), as in Kaixhin's
        Rainbow, where it is redrawn every replay_frequency steps. An agent that never trains (e.g. a frozen
        opponent with ``deterministic: false``) therefore acts on one fixed draw, the last one it was saved with.
        """
        count = len(obs)
        if not deterministic and self.num_timesteps < self.config.learning_starts:
            return self.actions.to_env(self.np_rng.integers(0, self.actions.num_actions, count))
        noisy = self.config.noisy and not deterministic
        with torch.no_grad():
            if noisy and self._acting_weights is None:
                self._acting_weights = self.q_network.stream_weights(noisy=True)
            weights = self._acting_weights if noisy else None
            log_probs = self.q_network(self._obs_tensor(obs), noisy, weights)
            greedy = self.expected_q(log_probs).argmax(dim=1).cpu().numpy()
        if not deterministic and self.epsilon > 0:
            explore = self.np_rng.random(count) < self.epsilon
            greedy = np.where(explore, self.np_rng.integers(0, self.actions.num_actions, count), greedy)
        return self.actions.to_env(greedy)

    # --- storing --------------------------------------------------------------------------------------------

    def store(self, transition: Transition) -> None:
        """Feed the n-step window; completed n-step transitions enter the replay with the max priority."""
        store_through_window(
            self.replay,
            self.n_step,
            np.asarray(transition.obs, dtype=np.float32).reshape(len(transition.obs), -1),
            self.actions.to_index(transition.action),
            transition.reward,
            np.asarray(transition.next_obs, dtype=np.float32).reshape(len(transition.obs), -1),
            transition.terminated,
            transition.truncated,
        )
        self.num_timesteps += len(transition.reward)
        self._steps_since_train += 1
        self._steps_since_target_update += 1

    # --- learning -------------------------------------------------------------------------------------------

    def update(self) -> dict[str, float] | None:
        cfg = self.config
        if self._steps_since_target_update * self.num_envs >= cfg.target_network_frequency:
            self._steps_since_target_update = 0
            polyak_update(self.q_network, self.target_network, cfg.tau)
        if self._steps_since_train < cfg.train_frequency:
            return None
        collected = self._steps_since_train * self.num_envs
        self._steps_since_train = 0
        if self.num_timesteps <= cfg.learning_starts or len(self.replay) == 0:
            return None
        gradient_steps = cfg.gradient_steps if cfg.gradient_steps >= 0 else collected
        stats = torch.stack([self._gradient_step() for _ in range(gradient_steps)]).mean(0).tolist()
        return {
            "loss": stats[0],
            "q_values": stats[1],
            "beta": self.beta,
            "n_updates": float(self.num_updates),
        }

    def target_distribution(
        self, batch: ReplaySample, next_log_p_online: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Projected distribution of r + discount Z'(s', a*), (B, n_atoms).

        a* is the greedy action of the online network's ``next_log_p_online`` (double Q; computed here when
        not given) or, with ``double_q`` off, of the target network itself.
        """
        with torch.no_grad():
            next_log_p_target = self.target_network(batch.next_obs)
            if not self.config.double_q:
                next_log_p_online = next_log_p_target
            elif next_log_p_online is None:
                next_log_p_online = self.q_network(batch.next_obs)
            next_actions = self.expected_q(next_log_p_online).argmax(dim=1)
            next_probs = next_log_p_target[torch.arange(len(next_actions)), next_actions].exp()
            bootstrap = batch.discounts * (1.0 - batch.terminated)
            return project_distribution(next_probs, batch.rewards, bootstrap, self.support)

    def _gradient_step(self) -> torch.Tensor:
        """One prioritized distributional step; returns [loss, mean expected Q of the taken actions]."""
        cfg = self.config
        sample = self.replay.sample_prioritized(cfg.batch_size, self.beta, self.np_rng)
        batch = sample.batch
        self.num_updates += 1
        self._acting_weights = None  # new noise and new parameters
        if cfg.noisy:  # online and target noise in one draw
            reset_noise((self.q_network, self.target_network), self.torch_rng)
        # the online weights (mu + sigma * noise) are built once, for the s pass with gradients and the s' pass
        # (double-Q action choice) without: two 64-row passes cost less than one 128-row pass whose backward
        # would also run through the s' rows, which get no gradient
        weights = self.q_network.stream_weights(noisy=cfg.noisy)
        log_probs = self.q_network(batch.obs, cfg.noisy, weights)[torch.arange(len(batch.actions)), batch.actions]
        next_log_p_online = None
        if cfg.double_q:
            with torch.no_grad():
                constant_weights = tuple((weight.detach(), bias.detach()) for weight, bias in weights)
                next_log_p_online = self.q_network(batch.next_obs, cfg.noisy, constant_weights)
        target = self.target_distribution(batch, next_log_p_online)
        cross_entropy = -(target * log_probs).sum(-1)  # (B,): the KL to the target up to a constant
        loss = (sample.weights * cross_entropy).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        priorities = cross_entropy.detach().cpu().numpy().astype(np.float64) + cfg.prioritized_replay_eps
        self.replay.update_priorities(sample.slots, priorities)
        q_taken = (log_probs.detach().exp() * self.support).sum(-1).mean()
        return torch.stack([loss.detach(), q_taken])

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
        self._acting_weights = None
        self._steps_since_train = int(state["steps_since_train"])
        self._steps_since_target_update = int(state["steps_since_target_update"])
        load_replay_state(self.replay, self.n_step, state)
