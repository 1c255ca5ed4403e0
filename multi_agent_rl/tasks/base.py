"""What a task gives the environments: start states, rewards, terminations, truncations and outcomes.

A task is batched like the simulator: it holds the per-copy bookkeeping of E environment copies of N cars (lap
counters, idle counters, shaping potentials) and evaluates every copy in one call. Environments own the
simulator, the random generators and the step counters; the task never draws random numbers except from the
generator it is handed.

Outcomes are small integers indexing ``Task.outcome_names``; 0 ("") means the car's episode goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

RUNNING = 0
"""Outcome code of a car whose episode goes on."""


class Start(NamedTuple):
    """Initial conditions of K copies.

    Attributes:
        poses: (K, N, 3) [x, y, yaw] (m, rad).
        speeds: (K, N) initial speeds along the heading (m/s).
        spawn: K names of the spawn points used (for logging).
    """

    poses: np.ndarray
    speeds: np.ndarray
    spawn: list[str]


class TaskStep(NamedTuple):
    """A task's verdict on one env step of E copies.

    Attributes:
        rewards: (E, N) float64, equal to the sum of ``terms`` over term names.
        terminated: (E, N) bool, the car reached a terminal state (crash, goal): no bootstrapping past it.
        truncated: (E, N) bool, the episode was cut (time limit, idle stop): bootstrapping continues.
        outcome: (E, N) int16, index into ``Task.outcome_names`` (0 while running).
        terms: name -> (E, N) float64, each named reward term on its own (for logging).
    """

    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    outcome: np.ndarray
    terms: Mapping[str, np.ndarray]


class Task(ABC):
    """Base class of the batched tasks.

    Attributes:
        num_cars: N, cars per copy the task is defined for.
        num_envs: E, copies it keeps bookkeeping for.
        outcome_names: names of the outcome codes; index 0 is "" (running).
        term_names: names of the reward terms, in the order they are reported.
        success_outcome: the outcome counted as success in metrics ("" when the task has none).
        detail_names: outcome -> the finer labels ``outcome_details`` can attach to it (for stable metric names).
    """

    num_cars: int
    num_envs: int
    outcome_names: tuple[str, ...]
    term_names: tuple[str, ...]
    success_outcome: str = ""
    detail_names: Mapping[str, tuple[str, ...]] = MappingProxyType({})

    @abstractmethod
    def sample_start(self, rng: np.random.Generator, count: int) -> Start:
        """Initial conditions for ``count`` copies, drawn with ``rng``."""

    @abstractmethod
    def reset(self, env_ids: np.ndarray, state: np.ndarray) -> None:
        """Restart the bookkeeping of copies ``env_ids`` (K,) whose cars now stand at ``state`` (K, N, 7)."""

    @abstractmethod
    def step(
        self,
        prev_state: np.ndarray,
        state: np.ndarray,
        collided: np.ndarray,
        car_contact: np.ndarray,
        episode_step: np.ndarray,
    ) -> TaskStep:
        """Evaluate one env step of every copy.

        Args:
            prev_state: (E, N, 7) states before the step.
            state: (E, N, 7) states after it.
            collided: (E, N) bool, any contact during the step (wall or car).
            car_contact: (E, N) bool, car-car contact during the step (a subset of ``collided``).
            episode_step: (E,) steps taken in each copy's episode, this one included.
        """

    def episode_stats(self) -> Mapping[str, np.ndarray]:
        """Task-specific per-car statistics to put in the step info, name -> (E, N) array (default: none)."""
        return {}

    def outcome_details(self, outcome: str, states: np.ndarray) -> tuple[str, ...]:
        """Finer labels of an ended episode's ``outcome`` from the cars' final states (N, 7), e.g. which wall a
        car hit; each label is one of ``detail_names[outcome]`` (default: none)."""
        return ()
