"""Experience storage shared by the agents: GAE rollouts, replay, prioritized replay on a sum tree, n-step
returns.

All buffers are preallocated numpy arrays written a whole vector step (E envs) at a time. Each array is also
exposed as a torch tensor sharing its memory (``torch.from_numpy``), so minibatches are gathered with one
torch index per field and never round-trip through Python lists.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from numba import njit

# --- generalized advantage estimation -----------------------------------------------------------------------


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and value targets by GAE(lambda), all arrays of shape (T, E).

    ``next_values[t]`` is V of the true successor of step t: the next stored observation, or, where the
    episode ended at t, the value of its final observation. The TD error bootstraps from it unless the step
    terminated (so truncation bootstraps, termination does not); the lambda-trace is cut at every episode end
    either way.

    Returns:
        (advantages, returns), both (T, E) float32, with returns = advantages + values.
    """
    terminated = terminated.astype(bool)
    episode_continues = ~(terminated | truncated.astype(bool))
    deltas = rewards + gamma * next_values * (~terminated) - values
    trace_decay = gamma * gae_lambda * episode_continues
    advantages = np.zeros_like(deltas, dtype=np.float32)
    running = np.zeros(deltas.shape[1:], dtype=np.float32)
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + trace_decay[t] * running
        advantages[t] = running
    return advantages, (advantages + values).astype(np.float32)


class RolloutBuffer:
    """Fixed-length on-policy rollout of T vector steps over E envs, with GAE that handles truncation.

    Per step it keeps the observation, the raw (unclipped) action, its log-probability and value at act time,
    the reward and the two episode-end flags. Where an episode was truncated, the value of its final
    observation is recorded too (``add_final_values``), so the advantage bootstraps from the true successor.
    """

    def __init__(
        self, num_steps: int, num_envs: int, obs_dim: int, action_shape: tuple[int, ...], discrete: bool
    ):
        self.num_steps, self.num_envs = num_steps, num_envs
        shape = (num_steps, num_envs)
        self.obs = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.actions = np.zeros((*shape, *action_shape), dtype=np.int64 if discrete else np.float32)
        self.log_probs = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.truncated = np.zeros(shape, dtype=bool)
        self.final_values = np.zeros(shape, dtype=np.float32)  # V(final obs) where truncated, else unused
        self.advantages = np.zeros(shape, dtype=np.float32)
        self.returns = np.zeros(shape, dtype=np.float32)
        self.pos = 0

    @property
    def full(self) -> bool:
        return self.pos == self.num_steps

    def add(self, obs, actions, log_probs, values, rewards, terminated, truncated) -> None:
        """Append one vector step; every argument has leading axis E."""
        t = self.pos
        self.obs[t] = obs.reshape(self.num_envs, -1)
        self.actions[t] = actions
        self.log_probs[t] = log_probs
        self.values[t] = values
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        self.final_values[t] = 0.0
        self.pos += 1

    def add_final_values(self, env_mask: np.ndarray, final_values: np.ndarray) -> None:
        """Values of the final observations of the envs in ``env_mask`` whose episode was truncated at the
        last added step."""
        self.final_values[self.pos - 1, env_mask] = final_values

    def compute_returns_and_advantages(
        self, last_next_values: np.ndarray, gamma: float, gae_lambda: float
    ) -> None:
        """Fill ``advantages`` and ``returns``; ``last_next_values`` (E,) = V(next_obs) of the last step."""
        next_values = np.empty_like(self.values)
        next_values[:-1] = self.values[1:]
        next_values[-1] = last_next_values
        cut = self.truncated & ~self.terminated
        next_values[cut] = self.final_values[cut]
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, next_values, self.terminated, self.truncated, gamma, gae_lambda
        )

    def flat_tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The rollout flattened to T*E rows, as tensors (sharing the buffer's memory on CPU)."""
        rows = self.num_steps * self.num_envs
        arrays = {
            "obs": self.obs.reshape(rows, -1),
            "actions": self.actions.reshape(rows, *self.actions.shape[2:]),
            "log_probs": self.log_probs.reshape(rows),
            "values": self.values.reshape(rows),
            "advantages": self.advantages.reshape(rows),
            "returns": self.returns.reshape(rows),
        }
        return {name: torch.from_numpy(array).to(device) for name, array in arrays.items()}

    def reset(self) -> None:
        self.pos = 0

    def state_dict(self) -> dict[str, Any]:
        names = (
            "obs",
            "actions",
            "log_probs",
            "values",
            "rewards",
            "terminated",
            "truncated",
            "final_values",
        )
        state = {name: getattr(self, name)[: self.pos].copy() for name in names}
        state["pos"] = self.pos
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = int(state["pos"])
        for name, array in state.items():
            if name != "pos":
                getattr(self, name)[: self.pos] = array


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var[target - predicted] / Var[target]; 1 is perfect, 0 no better than a constant, NaN if Var=0."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1.0 - np.var(target - predicted) / variance)


# --- replay -------------------------------------------------------------------------------------------------


class ReplaySample(NamedTuple):
    """A minibatch of transitions as tensors (B rows).

    ``discounts`` is the factor applied to the bootstrap value: gamma for 1-step transitions, gamma**k for a
    k-step return. Targets are ``rewards + discounts * (1 - terminated) * next_value``.
    """

    obs: torch.Tensor  # (B, obs_dim) float32
    actions: torch.Tensor  # (B, act_dim) float32, or (B,) int64 action indices
    rewards: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, obs_dim) float32
    terminated: torch.Tensor  # (B,) float32, 1.0 where the episode terminated
    discounts: torch.Tensor  # (B,) float32


_REPLAY_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "discounts")
_OBS_FIELDS = ("obs", "next_obs")


class ReplayBuffer:
    """Circular buffer of transitions, preallocated, filled a vector step (or an n-step batch) at a time.

    ``obs_transform`` (None, or (K, obs_dim) float32 -> (K, obs_dim) float32), when set, is applied to the
    stored ``obs`` and ``next_obs`` of every sampled minibatch: a running normaliser's current statistics
    (see ``Agent.set_observation_transform``). Storage and checkpoints keep what was stored.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        action_shape: tuple[int, ...],
        discrete: bool,
        device: torch.device | str = "cpu",
    ):
        self.capacity = int(capacity)
        self.device = torch.device(device)  # where sampled minibatches go; the storage stays in host memory
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, *action_shape), dtype=np.int64 if discrete else np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self._tensors = {name: torch.from_numpy(getattr(self, name)) for name in _REPLAY_FIELDS}
        self.obs_transform: Callable[[np.ndarray], np.ndarray] | None = None
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, actions, rewards, next_obs, terminated, discounts) -> np.ndarray:
        """Append N rows (N <= capacity); returns the slots written, shape (N,)."""
        count = len(obs)
        slots = (self.pos + np.arange(count)) % self.capacity
        self.obs[slots] = obs.reshape(count, -1)
        self.next_obs[slots] = next_obs.reshape(count, -1)
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.terminated[slots] = terminated
        self.discounts[slots] = discounts
        self.pos = int((self.pos + count) % self.capacity)
        self.size = min(self.size + count, self.capacity)
        return slots

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplaySample:
        """Uniform minibatch (with replacement, like SB3 and CleanRL)."""
        return self.gather(rng.integers(0, self.size, size=batch_size))

    def gather(self, slots: np.ndarray) -> ReplaySample:
        index = torch.from_numpy(slots)
        if self.obs_transform is None:
            return ReplaySample(*(self._tensors[name][index].to(self.device) for name in _REPLAY_FIELDS))
        fields = {name: self._tensors[name][index] for name in _REPLAY_FIELDS if name not in _OBS_FIELDS}
        for name in _OBS_FIELDS:
            fields[name] = torch.from_numpy(self.obs_transform(getattr(self, name)[slots]))
        return ReplaySample(**{name: fields[name].to(self.device) for name in _REPLAY_FIELDS})

    def state_dict(self) -> dict[str, Any]:
        state = {name: getattr(self, name)[: self.size].copy() for name in _REPLAY_FIELDS}
        state.update(pos=self.pos, size=self.size)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for name in _REPLAY_FIELDS:
            getattr(self, name)[: self.size] = state[name]


# --- prioritized replay -------------------------------------------------------------------------------------


@njit(cache=True)
def _sum_tree_update(sums, mins, leaves, priorities, num_leaves):  # pragma: no cover (compiled)
    """Write leaf priorities in order (a repeated leaf keeps its last value), then refresh each ancestor."""
    for i in range(len(leaves)):
        node = leaves[i] + num_leaves
        sums[node] = priorities[i]
        mins[node] = priorities[i]
        node //= 2
        while node >= 1:
            left, right = sums[2 * node], sums[2 * node + 1]
            sums[node] = left + right
            mins[node] = min(mins[2 * node], mins[2 * node + 1])
            node //= 2


@njit(cache=True)
def _sum_tree_find(sums, prefix_sums, num_leaves):  # pragma: no cover (compiled)
    """Descend from the root for each prefix sum: left if it falls inside the left subtree's mass."""
    leaves = np.empty(len(prefix_sums), dtype=np.int64)
    for i in range(len(prefix_sums)):
        remaining = prefix_sums[i]
        node = 1
        while node < num_leaves:
            left = 2 * node
            if remaining >= sums[left]:
                remaining -= sums[left]
                node = left + 1
            else:
                node = left
        leaves[i] = node - num_leaves
    return leaves


class SumTree:
    """Binary tree over ``capacity`` leaf priorities holding subtree sums and minima, in flat arrays.

    Node 1 is the root, node i has children 2i and 2i+1, leaves start at ``num_leaves`` (a power of two). An
    update walks from each changed leaf to the root and a search from the root to a leaf: O(log n) each,
    compiled with numba so a batch of 32-256 costs microseconds rather than one numpy call per tree level.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.num_leaves = 1 << max(0, int(np.ceil(np.log2(max(capacity, 1)))))
        self.sums = np.zeros(2 * self.num_leaves, dtype=np.float64)
        self.mins = np.full(2 * self.num_leaves, np.inf, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.sums[1])

    @property
    def min(self) -> float:
        return float(self.mins[1])

    def update(self, leaves: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaf priorities (for a leaf given twice, the last value wins) and refresh their ancestors."""
        leaves = np.ascontiguousarray(leaves, dtype=np.int64)
        priorities = np.ascontiguousarray(priorities, dtype=np.float64)
        _sum_tree_update(self.sums, self.mins, leaves, priorities, self.num_leaves)

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Leaf index i for each prefix sum s with sum(p[:i]) <= s < sum(p[:i+1])."""
        return _sum_tree_find(self.sums, np.ascontiguousarray(prefix_sums, dtype=np.float64), self.num_leaves)

    def leaf_values(self, leaves: np.ndarray) -> np.ndarray:
        return self.sums[np.asarray(leaves) + self.num_leaves]

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums.copy(), "mins": self.mins.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums[:] = state["sums"]
        self.mins[:] = state["mins"]


class PrioritizedSample(NamedTuple):
    batch: ReplaySample
    slots: np.ndarray  # (B,) buffer slots, to pass back to update_priorities
    weights: torch.Tensor  # (B,) importance-sampling weights, max over the buffer = 1


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016): P(i) = p_i^alpha / sum_k p_k^alpha.

    New transitions get the largest priority seen so far, so each is replayed at least once with high
    probability. Sampling is stratified: the total mass is cut into B equal segments and one prefix sum is
    drawn per segment.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        action_shape: tuple[int, ...],
        discrete: bool,
        alpha: float,
        device: torch.device | str = "cpu",
    ):
        super().__init__(capacity, obs_dim, action_shape, discrete, device)
        self.alpha = float(alpha)
        self.tree = SumTree(capacity)
        self.max_priority = 1.0  # raw priority (before ** alpha)

    def add(self, obs, actions, rewards, next_obs, terminated, discounts) -> np.ndarray:
        slots = super().add(obs, actions, rewards, next_obs, terminated, discounts)
        self.tree.update(slots, np.full(len(slots), self.max_priority**self.alpha))
        return slots

    def sample_prioritized(self, batch_size: int, beta: float, rng: np.random.Generator) -> PrioritizedSample:
        total = self.tree.total
        bounds = np.arange(batch_size) * (total / batch_size)
        prefix = bounds + rng.random(batch_size) * (total / batch_size)
        slots = np.minimum(self.tree.find(prefix), self.size - 1)
        probabilities = self.tree.leaf_values(slots) / total
        min_probability = self.tree.min / total
        # w_i = (N P(i))^-beta normalised by the largest weight in the buffer, (N P_min)^-beta
        weights = (probabilities / min_probability) ** (-beta)
        weights_t = torch.from_numpy(weights.astype(np.float32)).to(self.device)
        return PrioritizedSample(self.gather(slots), slots, weights_t)

    def update_priorities(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        """Set raw priorities (e.g. |TD error| or the distributional loss) of sampled slots."""
        priorities = np.asarray(priorities, dtype=np.float64)
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(slots, priorities**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(tree=self.tree.state_dict(), max_priority=self.max_priority)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tree.load_state_dict(state["tree"])
        self.max_priority = float(state["max_priority"])


# --- n-step returns -----------------------------------------------------------------------------------------


class NStepBatch(NamedTuple):
    """k-step transitions ready for a replay buffer (N rows, k <= n)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray  # discounted sum of the k rewards
    next_obs: np.ndarray  # observation k steps later (the final observation if the episode ended)
    terminated: np.ndarray  # the episode terminated within the k steps: no bootstrap
    discounts: np.ndarray  # gamma**k


class NStepAccumulator:
    """Turns 1-step vector transitions into n-step ones, per environment copy, all copies in lockstep.

    A transition starting at step t is emitted once n further steps exist (R = sum_i gamma^i r_{t+i},
    bootstrap from s_{t+n} with gamma^n), or earlier when its episode ends at step t+k-1 < t+n-1 (R over k
    rewards, bootstrap from the final observation with gamma^k unless terminated).
    """

    def __init__(self, n_step: int, gamma: float, num_envs: int):
        if int(n_step) < 1:
            raise ValueError(f"n_step must be a whole number of env steps >= 1 (1 = one-step TD), got {n_step}")
        self.n_step, self.gamma, self.num_envs = int(n_step), float(gamma), int(num_envs)
        self.window: deque[tuple[np.ndarray, ...]] = deque(maxlen=self.n_step)  # (obs, actions, rewards)
        self._gamma_powers = self.gamma ** np.arange(self.n_step, dtype=np.float64)  # 1, gamma, ..., gamma^(n-1)
        self.pending = np.zeros(
            num_envs, dtype=np.int64
        )  # steps of the current run not yet emitted as a start

    def push(self, obs, actions, rewards, next_obs, terminated, truncated) -> NStepBatch:
        """Add one vector step; returns the n-step transitions completed by it (possibly none)."""
        if self.n_step == 1:  # every step is complete as it is: no window, no copies
            count = len(rewards)
            return NStepBatch(
                obs,
                actions,
                np.asarray(rewards, dtype=np.float32),
                next_obs,
                np.asarray(terminated, bool),
                np.full(count, self.gamma, dtype=np.float32),
            )
        # copies: a caller may reuse its arrays for the next step while these wait in the window
        self.window.append((np.array(obs), np.array(actions), np.array(rewards, dtype=np.float64)))
        self.pending += 1
        done = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        parts: list[NStepBatch] = []
        any_done = bool(done.any())
        window_rewards: np.ndarray | None = None  # (len(window), E), oldest first, stacked when first needed
        for k in range(1, min(self.n_step, len(self.window)) + 1):
            if k < self.n_step:  # a start k-1 steps back is emitted early only when its episode ends now
                if not any_done:
                    continue
                emit = done & (self.pending >= k)
            else:  # a run of n steps emits its oldest start, whether or not it ends now (pending <= n)
                emit = self.pending == self.n_step
            if not emit.any():
                continue
            start_obs, start_actions, _ = self.window[-k]
            if window_rewards is None:
                window_rewards = np.stack([step[2] for step in self.window])
            # R = r_start + gamma r_start+1 + ... + gamma^(k-1) r_now over the k most recent steps
            discounted = self._gamma_powers[:k] @ window_rewards[-k:]
            parts.append(
                NStepBatch(
                    start_obs[emit],
                    start_actions[emit],
                    discounted[emit].astype(np.float32),
                    next_obs[emit],
                    np.asarray(terminated, bool)[emit],
                    np.full(int(emit.sum()), self.gamma**k, dtype=np.float32),
                )
            )
        self.pending = np.where(done, 0, np.minimum(self.pending, self.n_step - 1))
        if not parts:
            return _empty_like_step(obs, actions, next_obs)
        if len(parts) == 1:  # the common case: only the n-step starts
            return parts[0]
        return NStepBatch(*(np.concatenate(field) for field in zip(*parts, strict=True)))

    def state_dict(self) -> dict[str, Any]:
        return {
            "window": [tuple(a.copy() for a in step) for step in self.window],
            "pending": self.pending.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pending = np.array(state["pending"], dtype=np.int64)
        if len(state["window"]) > self.n_step or (len(pending) and pending.max() >= self.n_step):
            raise ValueError(
                f"the saved n-step window ({len(state['window'])} steps, up to {pending.max()} pending) was "
                f"written with a longer n_step than {self.n_step}: resume with the checkpoint's n_step"
            )
        self.window = deque((tuple(step) for step in state["window"]), maxlen=self.n_step)
        self.pending = pending


def store_through_window(
    replay: ReplayBuffer, window: NStepAccumulator, obs, actions, rewards, next_obs, terminated, truncated
) -> None:
    """Store one vector step (E rows) in ``replay`` as the n-step transitions it completes (n = 1: as it is)."""
    ready = window.push(obs, actions, rewards, next_obs, terminated, truncated)
    if len(ready.rewards):
        replay.add(ready.obs, ready.actions, ready.rewards, ready.next_obs, ready.terminated, ready.discounts)


def replay_state(replay: ReplayBuffer, window: NStepAccumulator) -> dict[str, Any]:
    """A checkpoint's ``replay`` and ``n_step`` entries: the stored transitions and the open n-step windows."""
    return {"replay": replay.state_dict(), "n_step": window.state_dict()}


def load_replay_state(replay: ReplayBuffer, window: NStepAccumulator, state: dict[str, Any]) -> None:
    """Restore what :func:`replay_state` saved into ``state``; nothing when the checkpoint was written without
    its buffer. Checkpoints from before n-step returns hold no window (n = 1: an empty one is the same)."""
    if "replay" in state:
        replay.load_state_dict(state["replay"])
        if "n_step" in state:
            window.load_state_dict(state["n_step"])


def _empty_like_step(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> NStepBatch:
    return NStepBatch(
        obs[:0],
        actions[:0],
        np.zeros(0, np.float32),
        next_obs[:0],
        np.zeros(0, bool),
        np.zeros(0, np.float32),
    )


# --- recurrent rollouts -------------------------------------------------------------------------------------


class RecurrentRolloutBuffer(RolloutBuffer):
    """A rollout that also keeps, per step, whether memory was reset before it and the LSTM states fed in.

    ``lstm_states[t, e]`` holds K tensors of size H (h and c of the actor LSTM, then of the critic LSTM) as
    they were *after* any episode-start reset, i.e. exactly the state the step was computed from. Training
    cuts each env's T steps into chunks of ``seq_len`` and replays every chunk from its stored initial state.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        obs_dim: int,
        action_shape: tuple[int, ...],
        discrete: bool,
        num_states: int,
        hidden_size: int,
    ):
        super().__init__(num_steps, num_envs, obs_dim, action_shape, discrete)
        self.episode_starts = np.zeros((num_steps, num_envs), dtype=bool)
        self.lstm_states = np.zeros((num_steps, num_envs, num_states, hidden_size), dtype=np.float32)

    def add_memory(self, episode_starts: np.ndarray, lstm_states: np.ndarray) -> None:
        """Memory of the last added step: (E,) reset flags and (K, E, H) states."""
        self.episode_starts[self.pos - 1] = episode_starts
        self.lstm_states[self.pos - 1] = lstm_states.transpose(1, 0, 2)

    def chunks(self, seq_len: int) -> dict[str, np.ndarray]:
        """The rollout as C = E*T/seq_len chunks of consecutive steps of one env: arrays (C, seq_len, ...)
        plus ``initial_states`` (C, K, H), the stored state at each chunk's first step."""
        if self.num_steps % seq_len:
            raise ValueError(f"num_steps ({self.num_steps}) must be a multiple of seq_len ({seq_len})")
        count = self.num_envs * self.num_steps // seq_len

        def split(array: np.ndarray) -> np.ndarray:
            per_env = np.swapaxes(array, 0, 1)  # (E, T, ...)
            return np.ascontiguousarray(per_env).reshape(count, seq_len, *array.shape[2:])

        names = ("obs", "actions", "log_probs", "values", "advantages", "returns", "episode_starts")
        data = {name: split(getattr(self, name)) for name in names}
        data["initial_states"] = split(self.lstm_states)[:, 0]
        return data

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["episode_starts"] = self.episode_starts[: self.pos].copy()
        state["lstm_states"] = self.lstm_states[: self.pos].copy()
        return state


class SegmentLayout(NamedTuple):
    """How M chunks of L steps split into S segments that never cross an episode start.

    ``index`` (S, Lmax) holds flat step indices into the M*L minibatch (0 where padded), ``valid`` marks the
    real steps; reading ``valid`` row by row visits the M*L steps in their flat order. ``from_stored`` marks
    segments that begin a chunk (they start from the chunk's stored state; the others from zeros) and
    ``chunk`` gives each segment's chunk.
    """

    index: np.ndarray
    valid: np.ndarray
    from_stored: np.ndarray
    chunk: np.ndarray


def segment_layout(episode_starts: np.ndarray) -> SegmentLayout:
    """Segments of a (M, L) block of episode-start flags: a new segment at every chunk start and reset."""
    chunks, length = episode_starts.shape
    starts = episode_starts.copy()
    starts[:, 0] = True
    first = np.flatnonzero(starts.reshape(-1))
    lengths = np.diff(np.append(first, chunks * length))
    steps = np.arange(lengths.max())
    valid = steps[None, :] < lengths[:, None]
    index = np.where(valid, first[:, None] + steps[None, :], 0)
    return SegmentLayout(index, valid, first % length == 0, first // length)
