"""The batched single-learner env with gymnasium's vector interface: E copies stepped in one simulator call.

Autoreset mode: ``AutoresetMode.SAME_STEP`` (declared in ``metadata["autoreset_mode"]``). When a copy's
episode ends (the learner's car terminated or truncated), ``step`` resets that copy before returning, so:
- ``obs[i]`` is already the first observation of copy i's next episode;
- ``rewards[i]``, ``terminations[i]`` and ``truncations[i]`` describe the step that ended the episode;
- ``info["final_obs"][i]`` (an (E, D) array, rows valid where ``info["_final_obs"][i]``) is the ended
  episode's last observation, the one to bootstrap from on truncation; ``info["final_raw_obs"]`` is the same
  before observation normalisation (equal to it when the env does not normalise);
- ``info["final_info"]`` (mask ``info["_final_info"]``) holds the ended episode's ``outcome``,
  ``episode_return``, ``episode_length`` (in decisions, the unit of ``step``), ``episode_sim_steps`` (sim steps
  simulated), ``spawn`` and ``car_states`` ((E, N, 7), every car's last state: a car stopped by a contact keeps
  its pre-contact pose); ``info["episode"]`` = {"r", "l"} (mask ``info["_episode"]``) repeats return and length
  (decisions) the way gymnasium's RecordEpisodeStatistics does.
Every step's ``info`` also holds, per copy, ``outcome`` of the step ("" unless it ended the episode),
``reward_terms`` (name -> (E,) array, summing to ``rewards``), ``episode_step`` (decisions),
``episode_sim_steps`` and task statistics, all of the step just taken. ``raw_obs`` is the last returned
observation batch before normalisation (what an off-policy learner stores, see ``Agent.set_observation_transform``).

One ``step`` is one learner decision: ``config.learner_action_repeat`` sim steps with the action held, the
drivers and the task running every sim step; a copy that ended mid-decision reports the observation
(``final_obs``), outcome and car states of the sim step it ended at (see ``multi_agent_rl.envs.learner``).

Seeds: ``reset(seed=s)`` seeds copy i with s + i (gymnasium's convention), ``reset(seed=[s0, s1, ...])`` with
the list; autoresets continue each copy's own generators.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from multi_agent_rl.envs.config import EnvConfig
from multi_agent_rl.envs.drivers import Driver
from multi_agent_rl.envs.learner import LearnerBatch
from multi_agent_rl.envs.normalize import RunningNormalizer
from multi_agent_rl.sim.maps import TrackMap


class VectorRacingEnv(VectorEnv):
    """E copies of the single-learner env (see the module docstring for autoreset and info).

    Args:
        config: the environment (default: gaplock on line_track, FTG defender).
        num_envs: E.
        seed: seeds the copies until ``reset`` gets a seed.
        render_mode: None or "rgb_array" (``render()`` draws copy ``config.render.env_index``).
        opponents, normalizer, track: see :class:`multi_agent_rl.envs.learner.LearnerBatch`.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        config: EnvConfig | None = None,
        num_envs: int = 1,
        seed: int | None = None,
        render_mode: str | None = None,
        opponents: Sequence[Driver] | None = None,
        normalizer: RunningNormalizer | None = None,
        track: TrackMap | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.config = config or EnvConfig()
        self.batch = LearnerBatch(self.config, num_envs, seed, opponents, normalizer, track)
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.autoreset_mode = AutoresetMode.SAME_STEP
        self.single_observation_space = self.batch.observation_space
        self.single_action_space = self.batch.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._obs = np.zeros((num_envs, self.single_observation_space.shape[0]), dtype=np.float32)
        self._raw_obs = np.zeros_like(self._obs)  # the same observations before normalisation
        self._needs_reset = True

    @property
    def normalizer(self) -> RunningNormalizer | None:
        return self.batch.normalizer

    @property
    def raw_obs(self) -> np.ndarray:
        """(E, D) float32 copy of the last returned observations before normalisation."""
        return self._raw_obs.copy()

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all copies, or those of ``options["reset_mask"]`` ((E,) bool); see the module docstring."""
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        ids = np.arange(self.num_envs) if mask is None else np.flatnonzero(self._check_mask(mask))
        if seed is None:
            seeds = None
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + int(i) for i in ids]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset got {len(seeds)} seeds for num_envs={self.num_envs}")
            seeds = [seeds[i] for i in ids]
        raw = self.batch.reset(ids, seeds, options)
        self._raw_obs[ids] = raw[ids]
        self._obs[ids] = self.batch.observe(raw[ids])
        self._needs_reset = False
        spawn = np.asarray(self.batch.core.spawn, dtype=object)
        return self._obs.copy(), {"spawn": spawn}

    def _check_mask(self, mask: Any) -> np.ndarray:
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape ({self.num_envs},)")
        if not mask.any():
            raise ValueError("options['reset_mask'] must select at least one copy")
        return mask

    def step(self, actions: np.ndarray):
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, 2):
            raise ValueError(
                f"actions must have shape (num_envs, 2) = ({self.num_envs}, 2), got {actions.shape}"
            )
        batch = self.batch
        car = batch.learner
        result = batch.step(actions)
        rewards = result.rewards[:, car].copy()
        terminated = result.terminated[:, car].copy()
        truncated = result.truncated[:, car].copy()
        info = batch.step_info(result)
        self._raw_obs[:] = result.obs[:, car]
        self._obs[:] = batch.observe(self._raw_obs)
        ended = terminated | truncated
        if ended.any():
            ids = np.flatnonzero(ended)
            final_obs = np.zeros_like(self._obs)
            final_obs[ids] = self._obs[ids]
            final_raw_obs = np.zeros_like(self._raw_obs)
            final_raw_obs[ids] = self._raw_obs[ids]
            core = batch.core
            returns = np.where(ended, batch.episode_return, 0.0)
            lengths = np.where(ended, batch.episode_decisions, 0)
            info["final_obs"], info["_final_obs"] = final_obs, ended
            info["final_raw_obs"] = final_raw_obs
            info["final_info"] = {
                "outcome": np.where(ended, info["outcome"], ""),
                "episode_return": returns,
                "episode_length": lengths,  # decisions
                "episode_sim_steps": np.where(ended, batch.episode_sim_steps, 0),
                "spawn": np.asarray(core.spawn, dtype=object),
                "car_states": batch.final_state.copy(),  # (E, N, 7) final states (a crashed car: pre-contact pose)
            }
            info["_final_info"] = ended
            info["episode"], info["_episode"] = {"r": returns, "l": lengths}, ended
            raw = batch.reset(ids)
            self._raw_obs[ids] = raw[ids]
            self._obs[ids] = batch.observe(raw[ids])
        return self._obs.copy(), rewards, terminated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array":
            return None
        e = int(np.clip(self.config.render.env_index, 0, self.num_envs - 1))
        return (self.batch.render(f"copy {e}  step {self.batch.episode_decisions[e]}"),)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release: the simulator lives in this process."""
