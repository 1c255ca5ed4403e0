"""Recurrent PPO: PPO with an LSTM memory in the actor (and, by default, in the critic), for partially
observed tasks. Box or Discrete actions.

Read top to bottom: config, networks, acting (one LSTM step per call for all E envs, memory reset where an
episode just started), storing (the memory each step started from is kept), the update. Training replays each
env's rollout in chunks of ``seq_len`` steps from the stored state at the chunk's start; a chunk that contains
an episode start is cut there and the new segment starts from zeros, so memory never leaks across episodes.
All segments of a minibatch are padded to one length and run through the LSTM in a single call.

The PPO objective, schedules and gSDE option are those of ``ppo.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from .buffers import RecurrentRolloutBuffer, segment_layout
from .networks import (
    DiagGaussianHead,
    LSTMCore,
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
from .ppo import clipped_ppo_loss, summarise_update


@dataclass(frozen=True)
class RecurrentPPOConfig:
    """Recurrent PPO hyperparameters: PPO's (see ``PPOConfig``) plus the memory; sb3-contrib defaults."""

    total_timesteps: int = 1_000_000  # env steps of the whole run, summed over envs: the annealing horizon
    learning_rate: float = 3e-4  # Adam step size (initial value when annealed)
    anneal_lr: bool = False  # decay the learning rate linearly to 0 over total_timesteps
    num_steps: int = 128  # rollout length per env between updates, a multiple of seq_len [n_steps]
    gamma: float = 0.99  # discount factor per env step
    gae_lambda: float = 0.95  # GAE trace decay
    minibatch_size: int = 128  # env steps per gradient step, a multiple of seq_len [batch_size]
    seq_len: int = 32  # length of the training chunks (steps through time per backpropagation)
    update_epochs: int = 10  # passes over each rollout [n_epochs]
    norm_adv: bool = True  # normalise advantages per minibatch [normalize_advantage]
    clip_coef: float = 0.2  # policy ratio clip range [clip_range]
    anneal_clip_coef: bool = False  # decay clip_coef linearly to 0 over total_timesteps
    clip_vloss: bool = False  # clip the value update around the old values (PPO2 style)
    vf_clip_coef: float = 0.2  # value clip range in reward units, used when clip_vloss [clip_range_vf]
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global gradient norm clip
    target_kl: float | None = None  # stop the update's epochs once approx KL > 1.5 * target_kl; None = never
    lstm_hidden_size: int = 256  # LSTM state size H
    critic_lstm: bool = (
        True  # the critic has its own LSTM; False = a memoryless MLP critic [enable_critic_lstm]
    )
    hidden_sizes: tuple[int, ...] = (64, 64)  # MLP layers after the LSTM, in the actor and in the critic
    activation: str = "tanh"  # hidden activation of those MLPs
    ortho_init: bool = True  # orthogonal init of the MLPs and heads (the LSTMs keep PyTorch's init)
    log_std_init: float = 0.0  # initial log std of the Gaussian policy (or of the gSDE noise weights)
    use_sde: bool = False  # generalized state-dependent exploration
    sde_sample_freq: int = -1  # redraw the gSDE noise matrix every this many steps; -1 = once per rollout
    adam_eps: float = 1e-5  # Adam epsilon


@dataclass
class Memory:
    """LSTM states of E envs, (K, E, H) with K = [h_actor, c_actor, h_critic, c_critic], and which envs start
    an episode at the next call (their state is zeroed first)."""

    states: torch.Tensor
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


class RecurrentPPO(Agent):
    """Clipped-objective PPO on top of LSTM cores, trained on stored-state sequence chunks."""

    capabilities = Capabilities(
        on_policy=True, recurrent=True, action_kinds=frozenset({CONTINUOUS, DISCRETE})
    )

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: RecurrentPPOConfig = RecurrentPPOConfig(),  # noqa: B008 (frozen dataclass: an immutable default)
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(observation_space, action_space, config, num_envs, device, seed)
        cfg = config
        if cfg.num_steps % cfg.seq_len or cfg.minibatch_size % cfg.seq_len:
            raise ValueError("RecurrentPPO needs num_steps and minibatch_size to be multiples of seq_len.")
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if cfg.use_sde and self.discrete:
            raise ValueError("RecurrentPPO's use_sde (gSDE) needs a continuous action space.")
        hidden, size = tuple(cfg.hidden_sizes), cfg.lstm_hidden_size
        latent_dim = output_size(hidden, size)
        with seeded_torch(seed):
            self.actor_lstm = LSTMCore(self.obs_dim, size)
            self.actor_body = mlp(size, hidden, activation=cfg.activation, ortho_init=cfg.ortho_init)
            if self.discrete:
                self.actor_head: nn.Module = nn.Linear(latent_dim, int(action_space.n))
                if cfg.ortho_init:
                    layer_init(self.actor_head, 0.01)
            else:
                head_class = StateDependentNoiseHead if cfg.use_sde else DiagGaussianHead
                self.actor_head = head_class(
                    latent_dim, action_space.shape[0], cfg.log_std_init, cfg.ortho_init
                )
            self.critic_lstm = LSTMCore(self.obs_dim, size) if cfg.critic_lstm else None
            critic_in = size if cfg.critic_lstm else self.obs_dim
            self.critic = mlp(critic_in, hidden, 1, activation=cfg.activation, ortho_init=cfg.ortho_init)
        self.modules = [self.actor_lstm, self.actor_body, self.actor_head, self.critic]
        if self.critic_lstm is not None:
            self.modules.append(self.critic_lstm)
        for module in self.modules:
            module.to(self.device)
        self.params = [p for module in self.modules for p in module.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True)
        if self.discrete:
            action_shape: tuple[int, ...] = ()
        else:
            action_shape = tuple(action_space.shape)
            self.action_low = action_space.low.astype(np.float32)
            self.action_high = action_space.high.astype(np.float32)
        self.num_states = 4 if cfg.critic_lstm else 2
        self.buffer = RecurrentRolloutBuffer(
            cfg.num_steps, self.num_envs, self.obs_dim, action_shape, self.discrete, self.num_states, size
        )
        # one memory for stochastic (training) calls and one for deterministic (evaluation) calls, so that
        # evaluation episodes run between training steps leave the training envs' memory alone
        self.memory: dict[bool, Memory | None] = {False: None, True: None}
        self._cache: tuple[np.ndarray, ...] | None = None  # raw action, log-prob, value, starts, states
        self._last_next_obs: np.ndarray | None = None
        self._sde_matrices: torch.Tensor | None = None

    # --- memory ---------------------------------------------------------------------------------------------

    def _memory(self, deterministic: bool, batch: int) -> Memory:
        memory = self.memory[deterministic]
        if memory is None or memory.states.shape[1] != batch:
            states = torch.zeros(self.num_states, batch, self.config.lstm_hidden_size, device=self.device)
            memory = Memory(states, np.ones(batch, bool))
            self.memory[deterministic] = memory
        return memory

    def reset(self, env_mask: np.ndarray | None = None, deterministic: bool = False) -> None:
        """Start new episodes (zero memory at the next act) where ``env_mask`` is True, everywhere if None."""
        memory = self.memory[deterministic]
        if memory is not None:
            memory.starts = np.ones_like(memory.starts) if env_mask is None else memory.starts | env_mask

    # --- acting ---------------------------------------------------------------------------------------------

    def _policy_params(
        self, latent_lstm: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        latent = self.actor_body(latent_lstm)
        if self.discrete:
            return self.actor_head(latent), None, latent
        mean, std = self.actor_head(latent)
        return mean, std, latent

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """(E, *obs_shape) -> (E,) int64 or (E, A) float32 actions; advances the memory of all E envs."""
        obs_t = self._obs_tensor(obs)
        memory = self._memory(deterministic, len(obs_t))
        with torch.inference_mode():
            states_in = memory.states
            if memory.starts.any():
                states_in = states_in.clone()
                states_in[:, torch.from_numpy(memory.starts)] = 0.0
            latent_lstm, (h_pi, c_pi) = self.actor_lstm.step(obs_t, (states_in[0:1], states_in[1:2]))
            params, std, latent = self._policy_params(latent_lstm)
            if deterministic:
                memory.states = torch.cat([h_pi, c_pi, states_in[2:]])
                memory.starts = np.zeros_like(memory.starts)
                if self.discrete:
                    return params.argmax(-1).cpu().numpy()
                return np.clip(params.cpu().numpy(), self.action_low, self.action_high)
            if self.discrete:
                actions = sample_categorical(params, self.torch_rng)
                log_probs, _ = categorical_log_prob_entropy(params, actions)
            else:
                if self.config.use_sde:
                    noise = self.actor_head.noise(latent, self._exploration_matrices(len(obs_t)))
                else:
                    noise = std * torch.randn(params.shape, generator=self.torch_rng, device=self.device)
                actions = params + noise
                log_probs = gaussian_log_prob(actions, params, std)
            if self.critic_lstm is not None:
                latent_vf, (h_vf, c_vf) = self.critic_lstm.step(obs_t, (states_in[2:3], states_in[3:4]))
                values = self.critic(latent_vf).squeeze(-1)
                memory.states = torch.cat([h_pi, c_pi, h_vf, c_vf])
            else:
                values = self.critic(obs_t).squeeze(-1)
                memory.states = torch.cat([h_pi, c_pi])
        actions_np = actions.cpu().numpy()
        self._cache = (
            actions_np,
            log_probs.cpu().numpy(),
            values.cpu().numpy(),
            memory.starts,
            states_in.cpu().numpy(),
        )
        memory.starts = np.zeros_like(memory.starts)
        return actions_np if self.discrete else np.clip(actions_np, self.action_low, self.action_high)

    def _exploration_matrices(self, batch: int) -> torch.Tensor:
        """gSDE noise weights, redrawn at each rollout start and every ``sde_sample_freq`` steps (as SB3)."""
        step, freq = self.buffer.pos, self.config.sde_sample_freq
        stale = self._sde_matrices is None or len(self._sde_matrices) != batch
        if stale or step == 0 or (freq > 0 and step % freq == 0):
            self._sde_matrices = self.actor_head.sample_exploration_matrices(batch, self.torch_rng)
        return self._sde_matrices

    # --- storing --------------------------------------------------------------------------------------------

    def store(self, transition: Transition) -> None:
        """Append the step with the memory it started from; envs that finished start fresh at the next act."""
        if self._cache is None:
            raise RuntimeError("RecurrentPPO.store() must follow act(obs, deterministic=False).")
        actions, log_probs, values, starts, states_in = self._cache
        self._cache = None
        terminated = np.asarray(transition.terminated, bool)
        truncated = np.asarray(transition.truncated, bool)
        self.buffer.add(transition.obs, actions, log_probs, values, transition.reward, terminated, truncated)
        self.buffer.add_memory(starts, states_in)
        truncated_only = truncated & ~terminated
        if truncated_only.any():
            final = self._values(transition.next_obs, truncated_only)
            self.buffer.add_final_values(truncated_only, final)
        self._last_next_obs = transition.next_obs
        memory = self.memory[False]
        memory.starts = memory.starts | terminated | truncated
        self.num_timesteps += self.num_envs

    def _values(self, obs: np.ndarray, env_mask: np.ndarray) -> np.ndarray:
        """V of ``obs[env_mask]`` continuing each env's current (post-step) critic memory."""
        obs_t = self._obs_tensor(obs[env_mask])
        with torch.inference_mode():
            if self.critic_lstm is None:
                return self.critic(obs_t).squeeze(-1).cpu().numpy()
            states = self.memory[False].states[:, torch.from_numpy(env_mask)]
            latent, _ = self.critic_lstm.step(obs_t, (states[2:3], states[3:4]))
            return self.critic(latent).squeeze(-1).cpu().numpy()

    # --- learning -------------------------------------------------------------------------------------------

    def update(self) -> dict[str, float] | None:
        """PPO epochs over shuffled minibatches of sequence chunks once the rollout is full, else None."""
        if not self.buffer.full:
            return None
        cfg = self.config
        everyone = np.ones(self.num_envs, bool)
        self.buffer.compute_returns_and_advantages(
            self._values(self._last_next_obs, everyone), cfg.gamma, cfg.gae_lambda
        )
        progress_remaining = max(0.0, 1.0 - self.num_timesteps / cfg.total_timesteps)
        learning_rate = cfg.learning_rate * (progress_remaining if cfg.anneal_lr else 1.0)
        clip_coef = cfg.clip_coef * (progress_remaining if cfg.anneal_clip_coef else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate

        chunks = self.buffer.chunks(cfg.seq_len)
        tensors = {name: torch.from_numpy(array).to(self.device) for name, array in chunks.items()}
        num_chunks, per_minibatch = len(chunks["obs"]), cfg.minibatch_size // cfg.seq_len
        stats: list[torch.Tensor] = []
        stop_early = False
        for _ in range(cfg.update_epochs):
            order = self.np_rng.permutation(num_chunks)
            for start in range(0, num_chunks, per_minibatch):
                step_stats = self._minibatch_step(
                    chunks, tensors, order[start : start + per_minibatch], clip_coef
                )
                if step_stats is None:
                    stop_early = True
                    break
                stats.append(step_stats)
            if stop_early:
                break
        self.buffer.reset()
        metrics = summarise_update(stats, self.buffer.values.reshape(-1), self.buffer.returns.reshape(-1))
        metrics.update(learning_rate=learning_rate, clip_range=clip_coef, n_updates=float(self.num_updates))
        if not self.discrete:
            metrics["std"] = float(self.actor_head.log_std.detach().exp().mean())
        return metrics

    def _run_segments(
        self, core: LSTMCore, obs: torch.Tensor, initial: torch.Tensor, layout, state_rows: slice
    ) -> torch.Tensor:
        """LSTM outputs for every step of a minibatch: obs (M*L, obs_dim) -> (M*L, H), in flat order."""
        index = torch.from_numpy(layout.index)
        inputs = obs[index].transpose(0, 1)  # (Lmax, S, obs_dim)
        h0 = torch.zeros(2, len(layout.index), core.hidden_size, device=obs.device)
        stored = torch.from_numpy(layout.from_stored)
        h0[:, stored] = initial[torch.from_numpy(layout.chunk[layout.from_stored])][:, state_rows].transpose(
            0, 1
        )
        out = core.sequences(inputs, (h0[0:1].contiguous(), h0[1:2].contiguous()))  # (Lmax, S, H)
        return out.transpose(0, 1)[torch.from_numpy(layout.valid)]

    def _minibatch_step(
        self,
        chunks: dict[str, np.ndarray],
        tensors: dict[str, torch.Tensor],
        ids: np.ndarray,
        clip_coef: float,
    ) -> torch.Tensor | None:
        """One PPO gradient step on the chunks ``ids``; returns its stats, or None when the KL limit hit."""
        layout = segment_layout(chunks["episode_starts"][ids])
        index = torch.from_numpy(ids)
        batch = {
            name: tensors[name][index].reshape(-1, *tensors[name].shape[2:])
            for name in ("obs", "actions", "log_probs", "values", "advantages", "returns")
        }
        initial = tensors["initial_states"][index]  # (M, K, H)
        latent_pi = self._run_segments(self.actor_lstm, batch["obs"], initial, layout, slice(0, 2))
        params, std, _ = self._policy_params(latent_pi)
        if self.discrete:
            new_log_probs, entropy = categorical_log_prob_entropy(params, batch["actions"])
        else:
            new_log_probs, entropy = gaussian_log_prob_entropy(batch["actions"], params, std)
        if self.critic_lstm is not None:
            latent_vf = self._run_segments(self.critic_lstm, batch["obs"], initial, layout, slice(2, 4))
            new_values = self.critic(latent_vf).squeeze(-1)
        else:
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

    # --- state ----------------------------------------------------------------------------------------------

    def _named_modules(self) -> dict[str, Any]:
        named = {
            "actor_lstm": self.actor_lstm,
            "actor_body": self.actor_body,
            "actor_head": self.actor_head,
            "critic": self.critic,
            "optimizer": self.optimizer,
        }
        if self.critic_lstm is not None:
            named["critic_lstm"] = self.critic_lstm
        return named

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        """Networks, optimizer, counters, RNGs, both memories and the partial rollout."""
        state = super().state_dict()
        state.update(
            modules=module_state(self._named_modules()),
            rollout=self.buffer.state_dict(),
            last_next_obs=None if self._last_next_obs is None else self._last_next_obs.copy(),
            sde_matrices=None if self._sde_matrices is None else self._sde_matrices.clone(),
            memory={
                key: None if memory is None else (memory.states.clone(), memory.starts.copy())
                for key, memory in self.memory.items()
            },
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_module_state(self._named_modules(), state["modules"])
        self.buffer.load_state_dict(state["rollout"])
        self._last_next_obs = state["last_next_obs"]
        self._sde_matrices = state["sde_matrices"]
        self.memory = {
            key: None if saved is None else Memory(saved[0].clone(), saved[1].copy())
            for key, saved in state["memory"].items()
        }
        self._cache = None
