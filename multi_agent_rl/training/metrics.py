"""Episode statistics the loops report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def compute_episode_metrics(
    episode_rewards: Mapping[str, Sequence[float]],
    episode_lengths: Mapping[str, Sequence[int]] | Sequence[int],
) -> dict[str, float]:
    """Per-agent and overall reward/length statistics over finished episodes.

    Args:
        episode_rewards: agent id -> the return of each finished episode.
        episode_lengths: agent id -> the length (steps) of each episode, or one sequence shared by all agents.
    Returns:
        ``{agent}/reward_mean``, ``{agent}/reward_std``, ``{agent}/reward_total``, ``{agent}/length_mean`` per agent,
        plus ``reward_mean`` (mean over agents of their mean return), ``reward_total`` (sum over agents and
        episodes), ``length_mean`` and ``episodes``. Agents without episodes are left out.
    """
    metrics: dict[str, float] = {}
    means, totals, lengths_all = [], [], []
    episodes = 0
    for agent, rewards in episode_rewards.items():
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.size == 0:
            continue
        lengths = np.asarray(
            episode_lengths[agent] if isinstance(episode_lengths, Mapping) else episode_lengths, dtype=np.float64
        )
        if lengths.shape != rewards.shape:
            raise ValueError(f"agent {agent!r}: {rewards.size} episode returns but {lengths.size} episode lengths")
        metrics[f"{agent}/reward_mean"] = float(rewards.mean())
        metrics[f"{agent}/reward_std"] = float(rewards.std())
        metrics[f"{agent}/reward_total"] = float(rewards.sum())
        metrics[f"{agent}/length_mean"] = float(lengths.mean())
        means.append(rewards.mean())
        totals.append(rewards.sum())
        lengths_all.append(lengths)
        episodes = max(episodes, rewards.size)
    if means:
        metrics["reward_mean"] = float(np.mean(means))
        metrics["reward_total"] = float(np.sum(totals))
        metrics["length_mean"] = float(np.concatenate(lengths_all).mean())
        metrics["episodes"] = float(episodes)
    return metrics
