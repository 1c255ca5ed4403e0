"""The one protocol every learning agent follows, and the checks a loop runs before the first step.

A training loop drives any agent the same way, on batched arrays for E environment copies at once::

    check_spaces(AgentClass, obs_space, action_space, config)   # one clear sentence if the pairing is wrong
    agent = AgentClass(obs_space, action_space, config, num_envs=E, device="cpu", seed=0)
    actions = agent.act(obs)                                    # (E, *obs_shape) -> (E, *action_shape)
    next_obs, reward, terminated, truncated, info = env.step(actions)
    agent.store(Transition(obs, actions, reward, final_next_obs, terminated, truncated))
    metrics = agent.update()                                    # dict of losses, or None when no update ran
    agent.reset(terminated | truncated)                         # optional here: store() already does it

``final_next_obs`` is the true successor of ``obs``: for an env whose episode just ended it is the final
observation of that episode (gymnasium's ``info["final_obs"]``), not the first observation of the next one.
Off-policy targets and on-policy advantages bootstrap through truncation from it and never through
termination.

Every agent decides internally when it learns (rollout full, ``train_freq`` reached, warm-up over); the loop
just calls ``update()`` after every ``store()``.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

CONTINUOUS = "continuous"
DISCRETE = "discrete"


@dataclass
class Transition:
    """One vector step of experience for E environment copies (numpy arrays, leading axis E).

    Attributes:
        obs: (E, *obs_shape) observation the action was chosen from.
        action: (E, *action_shape) action sent to the environment (float for Box, int for Discrete).
        reward: (E,) reward received.
        next_obs: (E, *obs_shape) true successor observation; for envs whose episode ended at this step it is
            the final observation of that episode, not the reset observation of the next one.
        terminated: (E,) bool, the episode reached a terminal state (no bootstrapping from next_obs).
        truncated: (E,) bool, the episode was cut short (time limit, idle stop): bootstrap from next_obs.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


@dataclass(frozen=True)
class Capabilities:
    """What an agent class can do; a loop reads these before building anything.

    Attributes:
        on_policy: learns only from data its current policy collected (PPO family); off-policy agents keep a
            replay buffer.
        recurrent: keeps per-environment memory between calls to ``act``; the loop must keep env order fixed.
        action_kinds: subset of {"continuous", "discrete"}: gymnasium ``Box`` and ``Discrete`` action spaces.
        box_via_action_set: a discrete-action agent that can still drive a ``Box`` action space through a
            configured ``action_set`` (a list of concrete actions, e.g. [steer, speed] pairs).
    """

    on_policy: bool
    recurrent: bool
    action_kinds: frozenset[str]
    box_via_action_set: bool = False


class IncompatibleSpaceError(ValueError):
    """Raised before any step when an agent cannot work on the given observation or action space."""


def describe_space(space: gym.Space) -> str:
    """Short human name of a space, e.g. ``Box(2,)`` or ``Discrete(5)``."""
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({int(space.n)})"
    return type(space).__name__


def check_spaces(
    agent_cls: type[Agent], observation_space: gym.Space, action_space: gym.Space, config: Any = None
) -> None:
    """Raise :class:`IncompatibleSpaceError` with one sentence if ``agent_cls`` cannot run on these spaces.

    Observations must be a ``Box`` (any shape, flattened by the agent). Actions must be ``Discrete`` or
    ``Box`` and match ``agent_cls.capabilities``; a DQN-family agent accepts a ``Box`` only through
    ``config.action_set``, whose entries must have the Box's shape and lie inside its bounds.
    """
    name = agent_cls.__name__
    if not isinstance(observation_space, gym.spaces.Box):
        raise IncompatibleSpaceError(
            f"{name} needs a Box observation space (flatten or encode other spaces first); "
            f"got {describe_space(observation_space)}."
        )
    caps = agent_cls.capabilities
    kinds = caps.action_kinds
    if isinstance(action_space, gym.spaces.Discrete):
        if DISCRETE not in kinds:
            raise IncompatibleSpaceError(
                f"{name} needs a continuous (Box) action space; got {describe_space(action_space)}."
            )
        return
    if not isinstance(action_space, gym.spaces.Box):
        wanted = " or ".join(sorted(kinds))
        raise IncompatibleSpaceError(
            f"{name} supports {wanted} action spaces (Box or Discrete); got {describe_space(action_space)}."
        )
    if CONTINUOUS in kinds:
        if len(action_space.shape) != 1:
            raise IncompatibleSpaceError(
                f"{name} needs a 1-D Box action space; got {describe_space(action_space)}."
            )
        return
    action_set = getattr(config, "action_set", None)
    if not caps.box_via_action_set or not action_set:
        raise IncompatibleSpaceError(
            f"{name} needs a discrete action space or an `action_set` of [steer, speed] pairs; "
            f"got {describe_space(action_space)}."
        )
    table = np.asarray(action_set, dtype=np.float64)
    if table.ndim != 2 or table.shape[1:] != action_space.shape:
        raise IncompatibleSpaceError(
            f"{name}'s `action_set` entries must each have the action shape {tuple(action_space.shape)}; "
            f"got an action_set of shape {table.shape}."
        )
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    outside = ~np.all((table >= low) & (table <= high), axis=1)
    if outside.any():
        raise IncompatibleSpaceError(
            f"{name}'s `action_set` entry {table[np.argmax(outside)].tolist()} lies outside the action "
            f"bounds [{low.tolist()}, {high.tolist()}]."
        )


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run a block (network construction) under a fixed torch seed, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Agent(abc.ABC):
    """Base class of the learning agents: shared RNG handling and the protocol's signatures.

    Subclasses receive the gymnasium spaces (single-env spaces, not the batched ones), a plain config
    dataclass, the number of environment copies E stepped together, the torch device and a seed. All
    randomness an agent uses after construction comes from ``self.np_rng`` (numpy) and ``self.torch_rng``
    (torch), both saved in ``state_dict`` so a resumed run continues bit for bit.
    """

    capabilities: ClassVar[Capabilities]

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: Any,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        check_spaces(type(self), observation_space, action_space, config)
        self.observation_space = observation_space
        self.action_space = action_space
        self.config = config
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.np_rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator(device=self.device)
        self.torch_rng.manual_seed(int(self.np_rng.integers(2**62)))
        self.obs_shape: tuple[int, ...] = tuple(observation_space.shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.num_timesteps = 0  # env steps stored so far, summed over the E copies
        self.num_updates = 0  # gradient steps taken so far

    # --- protocol -------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of observations: (E, *obs_shape) -> (E, *action_shape), numpy in and out.

        ``deterministic=True`` is evaluation mode (greedy / mean action, no exploration noise).
        """

    @abc.abstractmethod
    def store(self, transition: Transition) -> None:
        """Record one vector step (all E envs) of experience."""

    @abc.abstractmethod
    def update(self) -> dict[str, float] | None:
        """Learn if it is time to (rollout full, train frequency reached, warm-up over).

        Returns SB3-style loss names (``policy_loss``, ``value_loss``, ``critic_loss``, ...) mapped to floats,
        or None when no update happened.
        """

    def reset(self, env_mask: np.ndarray | None = None, deterministic: bool = False) -> None:
        """Forget per-environment memory (recurrent state) where ``env_mask`` is True, everywhere when None.

        Stateless agents ignore it. ``deterministic`` selects which memory (evaluation or training) is
        cleared.
        """
        del env_mask, deterministic

    def set_observation_transform(self, transform: Callable[[np.ndarray], np.ndarray] | None) -> None:
        """Off-policy agents: replay observations through ``transform`` when a minibatch is sampled.

        For a running observation normaliser: the loop then stores raw observations and passes the
        normaliser's ``normalize`` here, so every replayed transition is normalised with the current
        statistics, never the ones of the step it was stored at (SB3 keeps VecNormalize's original
        observations in its replay buffers for the same reason). ``act`` still receives normalised
        observations. ``transform`` maps (K, obs_dim) float32 to (K, obs_dim) float32; None switches it off.
        """
        if self.capabilities.on_policy:
            raise ValueError(
                f"{type(self).__name__} is on-policy: it has no replay buffer whose observations to transform"
            )
        self.replay.obs_transform = transform  # every off-policy agent keeps its buffer in self.replay

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        """Everything needed to resume exactly: networks, optimizers, counters, schedules, RNG states.

        ``include_buffer`` adds the replay buffer of off-policy agents (large) and pending n-step windows.
        """
        return {
            "num_timesteps": self.num_timesteps,
            "num_updates": self.num_updates,
            "np_rng": self.np_rng.bit_generator.state,
            "torch_rng": self.torch_rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (into an agent built with the same spaces and config)."""
        self.num_timesteps = int(state["num_timesteps"])
        self.num_updates = int(state["num_updates"])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.torch_rng.set_state(state["torch_rng"])

    # --- helpers shared by subclasses -----------------------------------------------------------------------

    def _obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        """(E, *obs_shape) numpy -> (E, obs_dim) float32 tensor (no copy for float32 input on CPU)."""
        array = np.asarray(obs, dtype=np.float32).reshape(len(obs), self.obs_dim)
        return torch.from_numpy(array).to(self.device)


def module_state(modules: dict[str, torch.nn.Module | torch.optim.Optimizer]) -> dict[str, Any]:
    """state_dict of each named network or optimizer."""
    return {name: module.state_dict() for name, module in modules.items()}


def load_module_state(
    modules: dict[str, torch.nn.Module | torch.optim.Optimizer], state: dict[str, Any]
) -> None:
    """Inverse of :func:`module_state`."""
    for name, module in modules.items():
        module.load_state_dict(state[name])
