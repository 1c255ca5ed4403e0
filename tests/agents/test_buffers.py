"""Oracles for the shared buffers: GAE, replay, the sum tree and prioritized sampling, n-step returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from multi_agent_rl.agents.buffers import (
    NStepAccumulator,
    NStepBatch,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    RolloutBuffer,
    SumTree,
    compute_gae,
    segment_layout,
)

# --- GAE ----------------------------------------------------------------------------------------------------
# Two envs, three steps, gamma = lambda = 0.5, rewards 1, 2, 3, values 0.5, 1.0, 1.5, V(last next obs) = 2.
# env 0 is truncated at t=1 with V(final obs) = 4: bootstrap from 4, cut the trace.
#   deltas: 1 + .5*1 - .5 = 1;  2 + .5*4 - 1 = 3;  3 + .5*2 - 1.5 = 2.5
#   advantages: A2 = 2.5, A1 = 3 (trace cut), A0 = 1 + .25*3 = 1.75
# env 1 terminates at t=1 (the final value 100 must be ignored):
#   deltas: 1;  2 + 0 - 1 = 1;  2.5      advantages: 2.5, 1, 1 + .25*1 = 1.25
REWARDS = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=np.float32)
VALUES = np.array([[0.5, 0.5], [1.0, 1.0], [1.5, 1.5]], dtype=np.float32)
TERMINATED = np.array([[False, False], [False, True], [False, False]])
TRUNCATED = np.array([[False, False], [True, False], [False, False]])
EXPECTED_ADVANTAGES = np.array([[1.75, 1.25], [3.0, 1.0], [2.5, 2.5]], dtype=np.float32)


def test_gae_bootstraps_through_truncation_not_termination():
    next_values = np.array([[1.0, 1.0], [4.0, 100.0], [2.0, 2.0]], dtype=np.float32)
    advantages, returns = compute_gae(REWARDS, VALUES, next_values, TERMINATED, TRUNCATED, 0.5, 0.5)
    np.testing.assert_allclose(advantages, EXPECTED_ADVANTAGES, rtol=1e-6)
    np.testing.assert_allclose(returns, EXPECTED_ADVANTAGES + VALUES, rtol=1e-6)


def test_rollout_buffer_uses_final_values_only_where_truncated():
    buffer = RolloutBuffer(3, 2, obs_dim=1, action_shape=(), discrete=True)
    for t in range(3):
        buffer.add(
            np.zeros((2, 1)), np.zeros(2), np.zeros(2), VALUES[t], REWARDS[t], TERMINATED[t], TRUNCATED[t]
        )
        if t == 1:
            # the agent computes V(final obs) only for truncated envs; env 1 (terminated) gets nothing
            buffer.add_final_values(np.array([True, False]), np.array([4.0]))
    assert buffer.full
    buffer.compute_returns_and_advantages(np.array([2.0, 2.0]), gamma=0.5, gae_lambda=0.5)
    np.testing.assert_allclose(buffer.advantages, EXPECTED_ADVANTAGES, rtol=1e-6)
    flat = buffer.flat_tensors()
    assert flat["advantages"].shape == (6,)
    assert torch.equal(flat["advantages"], torch.from_numpy(EXPECTED_ADVANTAGES.reshape(6)))


# --- replay -------------------------------------------------------------------------------------------------


def test_replay_buffer_wraps_around_and_samples_stored_rows():
    buffer = ReplayBuffer(capacity=5, obs_dim=2, action_shape=(1,), discrete=False)
    for step in range(4):  # 4 vector steps of 2 envs = 8 rows into 5 slots
        rows = np.array([[10 * step, 0], [10 * step + 1, 0]], dtype=np.float32)
        buffer.add(rows, np.ones((2, 1)), rows[:, 0], rows + 100, np.array([0, 1]), 0.9)
    assert len(buffer) == 5 and buffer.pos == 3
    np.testing.assert_array_equal(buffer.obs[:, 0], [21, 30, 31, 11, 20])
    sample = buffer.sample(64, np.random.default_rng(0))
    assert set(sample.obs[:, 0].tolist()) <= {11.0, 20.0, 21.0, 30.0, 31.0}
    torch.testing.assert_close(sample.next_obs, sample.obs + 100)
    torch.testing.assert_close(sample.rewards, sample.obs[:, 0])
    assert sample.discounts.dtype == torch.float32 and torch.all(sample.discounts == 0.9)


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_replay_observation_transform_applies_when_sampling_only(prioritized):
    """A running normaliser's statistics move after a transition is stored: the buffer keeps what was stored
    and normalises obs and next_obs with the transform of the moment it samples."""
    args = (4, 2, (), True)
    buffer = PrioritizedReplayBuffer(*args, alpha=0.6) if prioritized else ReplayBuffer(*args)
    rows = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    buffer.add(rows, np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]), rows + 10, np.zeros(3), 0.9)
    slots = np.array([2, 0])
    buffer.obs_transform = lambda x: ((x - 1.0) / 2.0).astype(np.float32)  # today's mean 1, std 2
    sample = buffer.gather(slots)
    torch.testing.assert_close(sample.obs, torch.tensor([[2.0, 2.5], [0.0, 0.5]]))
    torch.testing.assert_close(sample.next_obs, torch.tensor([[7.0, 7.5], [5.0, 5.5]]))
    torch.testing.assert_close(sample.rewards, torch.tensor([3.0, 1.0]))
    assert sample.actions.tolist() == [2, 0]
    np.testing.assert_array_equal(buffer.obs[:3], rows)  # storage (and checkpoints) keep the raw rows
    buffer.obs_transform = None
    torch.testing.assert_close(buffer.gather(slots).obs, torch.from_numpy(rows[slots]))


# --- sum tree and prioritized replay ------------------------------------------------------------------------


def test_sum_tree_sums_minima_and_prefix_search_match_brute_force():
    rng = np.random.default_rng(0)
    tree = SumTree(37)  # not a power of two
    priorities = np.zeros(37)
    for _ in range(20):
        leaves = rng.integers(0, 37, size=9)  # duplicates included: the last write wins
        values = rng.uniform(0.1, 5.0, size=9)
        tree.update(leaves, values)
        for leaf, value in zip(leaves, values, strict=True):
            priorities[leaf] = value
    assert tree.total == pytest.approx(priorities.sum())
    assert tree.min == pytest.approx(priorities[priorities > 0].min())
    prefix = rng.uniform(0, tree.total, size=1000)
    expected = np.searchsorted(np.cumsum(priorities), prefix, side="right")
    np.testing.assert_array_equal(tree.find(prefix), expected)


def test_prioritized_sampling_frequencies_match_priorities():
    buffer = PrioritizedReplayBuffer(capacity=8, obs_dim=1, action_shape=(), discrete=True, alpha=0.7)
    buffer.add(
        np.arange(6, dtype=np.float32)[:, None], np.zeros(6), np.zeros(6), np.zeros((6, 1)), np.zeros(6), 1.0
    )
    raw = np.array([1.0, 2.0, 3.0, 0.5, 8.0, 4.0])
    buffer.update_priorities(np.arange(6), raw)
    rng = np.random.default_rng(1)
    counts = np.zeros(6)
    for _ in range(200):
        sample = buffer.sample_prioritized(100, beta=0.5, rng=rng)
        counts += np.bincount(sample.slots, minlength=8)[:6]
    expected_p = raw**0.7 / np.sum(raw**0.7)
    _, p_value = stats.chisquare(counts, expected_p * counts.sum())
    assert p_value > 1e-3, (counts / counts.sum(), expected_p)
    # importance weights: (p_i / p_min) ** -beta, so the rarest transition has weight 1
    sample = buffer.sample_prioritized(50, beta=0.5, rng=rng)
    p = raw[sample.slots] ** 0.7
    np.testing.assert_allclose(sample.weights.numpy(), (p / (0.5**0.7)) ** -0.5, rtol=1e-5)


def test_new_transitions_get_the_max_priority():
    buffer = PrioritizedReplayBuffer(capacity=4, obs_dim=1, action_shape=(), discrete=True, alpha=1.0)
    buffer.add(np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.zeros((2, 1)), np.zeros(2), 1.0)
    buffer.update_priorities(np.array([0, 1]), np.array([5.0, 0.5]))
    buffer.add(np.zeros((1, 1)), np.zeros(1), np.zeros(1), np.zeros((1, 1)), np.zeros(1), 1.0)
    np.testing.assert_allclose(buffer.tree.leaf_values(np.arange(3)), [5.0, 0.5, 5.0])


# --- n-step returns -----------------------------------------------------------------------------------------


def _push(acc, step, rewards, terminated, truncated):
    obs = np.array([[step], [step]], dtype=np.float32)
    return acc.push(obs, np.array([step, step]), np.asarray(rewards, float), obs + 1, terminated, truncated)


def _sorted(batch: NStepBatch) -> NStepBatch:
    """Rows ordered by start step (the emission order within a step is an implementation detail)."""
    order = np.argsort(batch.obs[:, 0], kind="stable")
    return NStepBatch(*(field[order] for field in batch))


def test_n_step_returns_by_hand():
    # n = 3, gamma = 0.5, two envs in lockstep; rewards 1, 2, 4, 8, ... (env 0) and 1, 1, 1 (env 1)
    acc = NStepAccumulator(n_step=3, gamma=0.5, num_envs=2)
    assert len(_push(acc, 0, [1, 1], [False, False], [False, False]).rewards) == 0
    # env 1 terminates at step 1: both of its pending starts are emitted with the rewards left in the episode
    out = _sorted(_push(acc, 1, [2, 1], [False, True], [False, False]))
    np.testing.assert_allclose(out.rewards, [1 + 0.5 * 1, 1])  # starts 0 and 1 of env 1
    np.testing.assert_array_equal(out.obs[:, 0], [0, 1])
    np.testing.assert_array_equal(out.terminated, [True, True])
    np.testing.assert_allclose(out.discounts, [0.25, 0.5])
    np.testing.assert_array_equal(out.next_obs[:, 0], [2, 2])  # the final observation of the episode
    # env 0 now has three steps: start 0 -> 1 + .5*2 + .25*4 = 3, bootstrap with gamma^3 from obs after step 2
    out = _push(acc, 2, [4, 1], [False, False], [False, False])
    np.testing.assert_allclose(out.rewards, [3.0])
    np.testing.assert_allclose(out.discounts, [0.125])
    np.testing.assert_array_equal(out.obs[:, 0], [0])
    np.testing.assert_array_equal(out.next_obs[:, 0], [3])
    assert not out.terminated.any()
    # env 0 truncated at step 3: starts 1, 2, 3 are emitted, bootstrapping (not terminated) from the final obs
    out = _sorted(_push(acc, 3, [8, 1], [False, False], [True, False]))
    np.testing.assert_array_equal(out.obs[:, 0], [1, 2, 3])
    np.testing.assert_allclose(out.rewards, [2 + 0.5 * 4 + 0.25 * 8, 4 + 0.5 * 8, 8])
    np.testing.assert_allclose(out.discounts, [0.125, 0.25, 0.5])
    assert not out.terminated.any()
    np.testing.assert_array_equal(out.next_obs[:, 0], [4, 4, 4])
    # env 1 restarted at step 2: its first n-step transition (start 2) appears at step 4
    out = _push(acc, 4, [16, 1], [False, False], [False, False])
    np.testing.assert_array_equal(out.obs[:, 0], [2])
    np.testing.assert_allclose(out.rewards, [1 + 0.5 + 0.25])


@pytest.mark.parametrize("n_step", [2, 5])
def test_n_step_window_matches_returns_from_whole_trajectories(n_step):
    """Random rewards, terminations and truncations in 3 envs over 60 steps: every emitted transition equals
    the one computed from the env's whole trajectory, and every start whose k-step window closed is emitted."""
    rng = np.random.default_rng(n_step)
    steps, envs, gamma = 60, 3, 0.9
    rewards = rng.normal(size=(steps, envs))
    terminated = rng.random((steps, envs)) < 0.06
    truncated = ~terminated & (rng.random((steps, envs)) < 0.06)
    acc = NStepAccumulator(n_step=n_step, gamma=gamma, num_envs=envs)
    emitted = {}
    for t in range(steps):
        obs = np.stack([[t, e] for e in range(envs)]).astype(np.float32)  # (time, env) identifies a start
        actions = t * envs + np.arange(envs)  # identifies the step the action was taken at
        out = acc.push(obs, actions, rewards[t], obs + [1, 0], terminated[t], truncated[t])
        for row in range(len(out.rewards)):
            start, env = int(out.obs[row, 0]), int(out.obs[row, 1])
            assert (start, env) not in emitted, "a start emitted twice"
            assert out.actions[row] == start * envs + env, "the action of another step"
            emitted[start, env] = (out.rewards[row], out.discounts[row], out.terminated[row], out.next_obs[row, 0])
    expected = {}
    for env in range(envs):
        for start in range(steps):
            k, end = 0, None
            while start + k < steps and k < n_step:
                k += 1
                if terminated[start + k - 1, env] or truncated[start + k - 1, env]:
                    end = start + k - 1
                    break
            if end is None and k < n_step:
                continue  # the run ends before its window closes: still pending
            ret = sum(gamma**i * rewards[start + i, env] for i in range(k))
            ends_terminal = end is not None and bool(terminated[end, env])
            expected[start, env] = (ret, gamma**k, ends_terminal, start + k)
    assert emitted.keys() == expected.keys()
    for key, (ret, discount, term, next_time) in expected.items():
        got = emitted[key]
        np.testing.assert_allclose(got[0], ret, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[1], discount, rtol=1e-6)
        assert got[2] == term and got[3] == next_time, key


def test_n_step_accumulator_state_round_trip():
    acc = NStepAccumulator(n_step=3, gamma=0.9, num_envs=2)
    _push(acc, 0, [1, 1], [False, False], [False, False])
    clone = NStepAccumulator(n_step=3, gamma=0.9, num_envs=2)
    clone.load_state_dict(acc.state_dict())
    a = _push(acc, 1, [1, 2], [True, False], [False, False])
    b = _push(clone, 1, [1, 2], [True, False], [False, False])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# --- recurrent sequence layout ------------------------------------------------------------------------------


def test_segment_layout_cuts_chunks_at_episode_starts():
    # two chunks of 4 steps; chunk 0 has a reset at step 2, chunk 1 starts an episode at step 0
    starts = np.array([[False, False, True, False], [True, False, False, False]])
    layout = segment_layout(starts)
    # segments: chunk 0 steps 0-1 (stored state), chunk 0 steps 2-3 (zeros), chunk 1 steps 0-3 (stored state)
    np.testing.assert_array_equal(layout.valid, [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(layout.index[layout.valid], np.arange(8))
    np.testing.assert_array_equal(layout.index[0, :2], [0, 1])
    np.testing.assert_array_equal(layout.index[1, :2], [2, 3])
    np.testing.assert_array_equal(layout.from_stored, [True, False, True])
    np.testing.assert_array_equal(layout.chunk, [0, 0, 1])


def test_one_step_window_passes_every_step_through():
    acc = NStepAccumulator(n_step=1, gamma=0.9, num_envs=2)
    out = _push(acc, 0, [1.0, 2.0], [True, False], [False, True])
    np.testing.assert_array_equal(out.obs[:, 0], [0, 0])
    np.testing.assert_allclose(out.rewards, [1.0, 2.0])
    np.testing.assert_allclose(out.discounts, [0.9, 0.9])
    np.testing.assert_array_equal(out.terminated, [True, False])
    assert out.rewards.dtype == np.float32


def test_window_keeps_copies_of_the_callers_arrays():
    acc = NStepAccumulator(n_step=2, gamma=0.5, num_envs=1)
    obs = np.zeros((1, 2), np.float32)
    acc.push(obs, np.array([0]), np.array([1.0]), obs + 1, np.zeros(1, bool), np.zeros(1, bool))
    obs[:] = 7.0  # a caller reusing its observation array for the next step
    out = acc.push(obs, np.array([1]), np.array([1.0]), obs + 1, np.zeros(1, bool), np.zeros(1, bool))
    np.testing.assert_array_equal(out.obs, [[0.0, 0.0]])


def test_n_step_below_one_is_refused():
    with pytest.raises(ValueError, match="n_step must be"):
        NStepAccumulator(n_step=0, gamma=0.9, num_envs=1)


def test_window_written_with_a_longer_n_step_is_refused():
    acc = NStepAccumulator(n_step=3, gamma=0.9, num_envs=2)
    _push(acc, 0, [1, 1], [False, False], [False, False])
    _push(acc, 1, [1, 1], [False, False], [False, False])
    shorter = NStepAccumulator(n_step=2, gamma=0.9, num_envs=2)
    with pytest.raises(ValueError, match="longer n_step than 2"):
        shorter.load_state_dict(acc.state_dict())
