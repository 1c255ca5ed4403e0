"""Environment state capture/restore: a restored env continues bit for bit."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from multi_agent_rl.envs import EnvConfig, VectorRacingEnv, racing_env_config
from multi_agent_rl.envs.state import capture_state, restore_state
from multi_agent_rl.tasks import GaplockConfig


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)  # the way checkpoints store it
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("config", [EnvConfig(normalize_observations=True), racing_env_config(num_cars=2),
                                    EnvConfig(task=GaplockConfig(max_steps=1000), learner_action_repeat=5)],
                         ids=["gaplock_normalized", "racing_2_cars", "gaplock_learner_repeat_5"])
def test_restored_env_continues_bit_for_bit(config):
    env = VectorRacingEnv(config, num_envs=3, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(400):
        env.step(rng.uniform(-1, 1, (3, 2)))
    state = roundtrip(capture_state(env))
    actions = rng.uniform(-1, 1, (800, 3, 2))
    expected = [env.step(a)[:4] for a in actions]
    fresh = VectorRacingEnv(config, num_envs=3, seed=99)  # another seed and another history
    fresh.reset(seed=7)
    fresh.step(actions[0])
    restore_state(fresh, state)
    got = [fresh.step(a)[:4] for a in actions]
    ends = sum(int(e[2].sum() + e[3].sum()) for e in expected)
    assert ends > 0  # the comparison crosses episode boundaries (autoreset, new spawns, new noise)
    for want, have in zip(expected, got, strict=True):
        for w, h in zip(want, have, strict=True):
            np.testing.assert_array_equal(w, h)


def test_state_of_another_shape_is_refused():
    small = VectorRacingEnv(EnvConfig(), num_envs=2, seed=0)
    small.reset(seed=0)
    big = VectorRacingEnv(EnvConfig(), num_envs=3, seed=0)
    big.reset(seed=0)
    with pytest.raises(ValueError, match="does not fit|entries"):
        restore_state(big, capture_state(small))
