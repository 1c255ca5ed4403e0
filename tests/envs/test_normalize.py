"""The running mean/std normaliser: statistics, clipping, evaluation mode, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest

from multi_agent_rl.envs import RunningNormalizer


def test_statistics_match_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal([3.0, -1.0], [2.0, 0.5], size=(1000, 2))
    norm = RunningNormalizer((2,))
    for chunk in np.array_split(data, 17):
        norm.update(chunk)
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(norm.var, data.var(axis=0), rtol=1e-5)
    out = norm.normalize(data)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-3)
    assert out.dtype == np.float32


def test_clip_bounds_the_output():
    norm = RunningNormalizer((1,), clip=3.0)
    norm.update(np.zeros((10, 1)) + np.arange(10)[:, None] * 0.01)
    assert norm.normalize(np.array([[1e6]]))[0, 0] == 3.0


def test_eval_freezes_and_state_dict_round_trips():
    norm = RunningNormalizer((3,))
    norm(np.random.default_rng(1).normal(size=(50, 3)))
    norm.eval()
    before = norm.state_dict()
    norm(np.full((5, 3), 100.0))
    assert norm.count == before["count"]
    restored = RunningNormalizer((3,))
    restored.load_state_dict(before)
    assert restored.training is False
    x = np.random.default_rng(2).normal(size=(4, 3))
    np.testing.assert_array_equal(restored.normalize(x), norm.normalize(x))
    with pytest.raises(ValueError, match="shape"):
        RunningNormalizer((4,)).load_state_dict(before)
