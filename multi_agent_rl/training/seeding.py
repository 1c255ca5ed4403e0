"""Seeding: one call that seeds Python, numpy's legacy global RNG and torch, for code that uses them."""

from __future__ import annotations

import random

import numpy as np
import torch


def set_random_seeds(seed: int, deterministic_torch: bool = False) -> np.random.SeedSequence:
    """Seed ``random``, ``numpy.random`` (legacy global) and ``torch``; return a SeedSequence for explicit RNGs.

    Our own code draws from explicit generators spawned from the returned sequence (envs, agents); the global
    seeds cover third-party code that uses the global RNGs. ``deterministic_torch`` also asks torch for
    deterministic kernels (slower; CPU runs are deterministic without it).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global RNG is the point here
    torch.manual_seed(seed)
    if deterministic_torch:
        torch.use_deterministic_algorithms(True)
    return np.random.SeedSequence(seed)
