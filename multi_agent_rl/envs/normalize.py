"""A running mean / standard deviation observation normaliser, frozen in evaluation, saved with
checkpoints."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunningNormalizer:
    """Normalises vectors to (x - mean) / sqrt(var + epsilon), clipped to [-clip, clip].

    In training mode every call first folds the batch into the running statistics (parallel-variance update of
    Chan et al.); in evaluation mode (``eval()``) the statistics stay frozen. ``state_dict()`` /
    ``load_state_dict()`` carry everything needed to resume (counts, mean, variance, settings, mode).

    Args:
        shape: shape of one vector, e.g. (D,).
        clip: bound of the normalised values.
        epsilon: added to the variance (and the initial count) to avoid division by zero.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8) -> None:
        if not clip > 0:
            raise ValueError(f"normaliser clip must be > 0, got {clip}")
        self.shape = tuple(shape)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.mean = np.zeros(self.shape)
        self.var = np.ones(self.shape)
        self.count = float(epsilon)
        self.training = True

    def train(self, mode: bool = True) -> RunningNormalizer:
        """Switch statistics updates on (or off with ``mode=False``)."""
        self.training = bool(mode)
        return self

    def eval(self) -> RunningNormalizer:
        """Freeze the statistics (evaluation)."""
        return self.train(False)

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch (K, *shape) or a single vector (*shape) into the statistics."""
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, *self.shape)
        if batch.shape[0] == 0:
            return
        b_mean = batch.mean(axis=0)
        b_var = batch.var(axis=0)
        b_count = batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * (b_count / total)
        self.var = (
            self.var * self.count + b_var * b_count + delta**2 * (self.count * b_count / total)
        ) / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Normalised float32 copy of ``x`` (statistics unchanged)."""
        out = (np.asarray(x, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Update the statistics with ``x`` when training, then normalise it."""
        if self.training:
            self.update(x)
        return self.normalize(x)

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.copy(),
            "var": self.var.copy(),
            "count": self.count,
            "clip": self.clip,
            "epsilon": self.epsilon,
            "training": self.training,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        if mean.shape != self.shape:
            raise ValueError(f"normaliser state has shape {mean.shape}, this normaliser has {self.shape}")
        self.mean = mean.copy()
        self.var = np.asarray(state["var"], dtype=np.float64).copy()
        self.count = float(state["count"])
        self.clip = float(state.get("clip", self.clip))
        self.epsilon = float(state.get("epsilon", self.epsilon))
        self.training = bool(state.get("training", self.training))
