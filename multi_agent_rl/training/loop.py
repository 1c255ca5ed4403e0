"""The shared training loop and the evaluation loop.

``TrainingLoop`` drives one learning agent on a vector environment whose other cars are driven by the environment's
drivers (Follow-The-Gap, pure pursuit, a frozen checkpoint, ...). On-policy and off-policy agents take the same path:
``act`` -> ``env.step`` -> ``store`` -> ``update`` every vector step; each agent decides inside ``update`` whether it
is time to learn (rollout full, warm-up over, train frequency reached). The loop adds what every run needs: episode
statistics, periodic deterministic evaluation, checkpoints (``last``, ``best``, ``step_<N>``) that resume exactly,
and metrics for the console, the CSV and TensorBoard.

Steps are learner decisions: ``global_step``, the step counts of ``TrainingConfig`` and the episode lengths
(``rollout/<agent>/ep_len_mean``, ``eval/<agent>/mean_ep_length``) count vector-env steps, one decision per copy,
which is ``env.learner_action_repeat`` sim steps (each ``sim.action_repeat`` physics steps) of simulated time.

``EvaluationLoop`` plays a fixed list of episodes: episode k starts from a reset with seed ``seed + k`` (so the
spawn pair, the start speed and the sensor noise are fixed), with deterministic actions (or, on request, the
policy's sampled ones) and the observation normaliser frozen. It also summarises where in its Box the agent's
actions fell (:func:`action_summary`).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multi_agent_rl.agents.base import Agent, Transition
from multi_agent_rl.agents.gym_runner import successor_observations
from multi_agent_rl.envs.state import capture_state, restore_state
from multi_agent_rl.envs.vector import VectorRacingEnv
from multi_agent_rl.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from multi_agent_rl.training.logger import SimpleLogger, TensorBoardLogger

log = logging.getLogger(__name__)

LOOP_STATE = "loop"
"""Name of the checkpoint entry holding the loop's own state (counters, env state, statistics)."""


@dataclass(frozen=True)
class TrainingConfig:
    """How long to train and when to evaluate, checkpoint and log. Step counts are env steps (learner decisions)
    summed over copies."""

    total_timesteps: int = 200_000  # length of the run
    num_envs: int = 8  # env copies stepped together in one simulator
    eval_every_steps: int = 50_000  # env steps between evaluations (0: only at the end)
    eval_episodes: int = 50  # episodes per evaluation
    eval_num_envs: int = 25  # copies the evaluation steps together (each plays whole episodes)
    eval_seed: int = 1_000_000  # evaluation episode k is reset with seed eval_seed + k
    checkpoint_every_steps: int = 100_000  # env steps between step_<N> checkpoints (0: none; last/best still)
    keep_checkpoints: int = 3  # step_<N> checkpoints kept (older ones are deleted)
    best_metric: str = "eval/success_rate"  # picks the best checkpoint; falls back to eval/<agent>/mean_reward
    save_replay_buffer: bool = False  # put off-policy replay buffers in checkpoints (needed for an exact resume)
    video_every_evals: int = 0  # record one evaluation episode to TensorBoard every this many evaluations (0: never)
    video_max_steps: int = 1000  # frames of a recorded episode at most
    stats_window_episodes: int = 100  # rollout statistics average the last this many episodes (as SB3)
    train_max_steps: int | None = None  # cut training episodes here (a truncation: learners bootstrap); None: the
    # task's max_steps. In the task's unit (sim steps, not decisions). Evaluation plays the task's full max_steps.

    def __post_init__(self) -> None:
        positive = ("total_timesteps", "num_envs", "eval_episodes", "eval_num_envs", "keep_checkpoints",
                    "video_max_steps", "stats_window_episodes")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"training.{name} must be an integer >= 1, got {value!r}")
        if self.train_max_steps is not None and (not isinstance(self.train_max_steps, int) or self.train_max_steps < 1):
            raise ValueError(f"training.train_max_steps must be null or an integer >= 1, got {self.train_max_steps!r}")
        for name in ("eval_every_steps", "checkpoint_every_steps", "video_every_evals", "eval_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"training.{name} must be an integer >= 0, got {value!r}")


@dataclass(frozen=True)
class LoggerConfig:
    """Where metrics go and how often."""

    log_every_steps: int = 10_000  # env steps between metric rows (console, CSV, TensorBoard)
    console: bool = True  # one line per row through logging (Hydra writes it to train.log too)
    csv: bool = True  # metrics.csv in the run directory
    tensorboard: bool = True  # event files in <run>/tensorboard
    progress_bar: bool = True  # tqdm bar with steps, steps/s, ETA and headline metrics

    def __post_init__(self) -> None:
        if not isinstance(self.log_every_steps, int) or self.log_every_steps < 1:
            raise ValueError(f"logger.log_every_steps must be an integer >= 1, got {self.log_every_steps!r}")


@dataclass
class EvalResult:
    """One evaluation: per-episode records and the summary metrics (TensorBoard tags)."""

    returns: np.ndarray
    lengths: np.ndarray  # decisions
    outcomes: list[str]
    spawns: list[str]
    metrics: dict[str, float]
    frames: np.ndarray | None = None
    final_states: np.ndarray | None = None  # (K, N, 7) every car's last state per episode
    details: list[tuple[str, ...]] = field(default_factory=list)  # per episode: the task's outcome details
    sim_steps: np.ndarray | None = None  # per episode: sim steps simulated (decisions x learner_action_repeat, or
    # fewer when it ended mid-decision)
    actions: dict[str, list[float]] = field(default_factory=dict)  # action_summary of every decision taken

    def detail_table(self) -> dict[str, dict[str, int]]:
        """Outcome name -> detail label -> episode count (only outcomes that have details)."""
        table: dict[str, dict[str, int]] = {}
        for outcome, labels in zip(self.outcomes, self.details, strict=False):
            for label in labels:
                counts = table.setdefault(outcome, {})
                counts[label] = counts.get(label, 0) + 1
        return table

    def outcome_table(self) -> dict[str, int]:
        """Outcome name -> episode count."""
        table: dict[str, int] = {}
        for name in self.outcomes:
            table[name] = table.get(name, 0) + 1
        return table


def action_summary(episodes: list[np.ndarray], low: np.ndarray, high: np.ndarray) -> dict[str, list[float]]:
    """Where actions fall in their Box, per action dimension (racing envs: [steer, speed], normalised to [-1, 1]).

    Args:
        episodes: per episode, (L_k, A) the actions of its L_k decisions in order.
        low, high: (A,) the Box bounds.

    Returns:
        lists of A floats: ``mean``, ``std``, quantiles ``q05`` ``q25`` ``q50`` ``q75`` ``q95`` over all decisions,
        the fractions of decisions within 1 % of the range of the lower / upper bound (``at_low`` / ``at_high``:
        a speed command pinned to full throttle shows as at_high near 1), and ``mean_abs_change``, the mean
        absolute change between consecutive decisions of an episode (how much the command jitters). Empty when
        there are no decisions.
    """
    episodes = [np.asarray(e, dtype=np.float64).reshape(len(e), -1) for e in episodes if len(e)]
    if not episodes:
        return {}
    actions = np.concatenate(episodes)
    low, high = np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)
    margin = 0.01 * (high - low)
    summary = {"mean": actions.mean(0), "std": actions.std(0)}
    for q in (5, 25, 50, 75, 95):
        summary[f"q{q:02d}"] = np.quantile(actions, q / 100, axis=0)
    summary["at_low"] = (actions <= low + margin).mean(0)
    summary["at_high"] = (actions >= high - margin).mean(0)
    changes = np.concatenate([np.abs(np.diff(e, axis=0)) for e in episodes])
    summary["mean_abs_change"] = changes.mean(0) if len(changes) else np.zeros(actions.shape[1])
    return {name: [round(float(v), 4) for v in values] for name, values in summary.items()}


class EvaluationLoop:
    """Evaluation on fixed seeds, deterministic unless asked otherwise.

    Args:
        make_env: builds the evaluation env for a number of copies (sharing the training normaliser).
        agent: the agent under test.
        agent_id: its car, for metric names.
        outcome_names: every outcome the task can report (all appear in the metrics, zeros included).
        success_outcome: the outcome counted as success ("" when the task has none).
        episodes, num_envs, seed: episode k runs with seed ``seed + k``, ``num_envs`` at a time.
        deterministic: act with the mean / greedy action (False: the policy's own sampling, e.g. to see what it
            did while training; the agent's random generator then makes the episodes differ between calls).
    """

    def __init__(
        self,
        make_env: Callable[[int], VectorRacingEnv],
        agent: Agent,
        agent_id: str,
        outcome_names: tuple[str, ...],
        success_outcome: str,
        episodes: int,
        num_envs: int,
        seed: int,
        deterministic: bool = True,
    ) -> None:
        self.agent = agent
        self.deterministic = bool(deterministic)
        self.agent_id = agent_id
        self.outcome_names = tuple(n for n in outcome_names if n)
        self.success_outcome = success_outcome
        self.episodes = episodes
        self.seed = seed
        self.env = make_env(min(num_envs, episodes))

    def run(self, record_video_steps: int = 0) -> EvalResult:
        """Play every evaluation episode; ``record_video_steps`` > 0 also renders the first one."""
        env = self.env
        normalizer = env.normalizer
        was_training = normalizer.training if normalizer is not None else False
        if normalizer is not None:
            normalizer.eval()
        returns, lengths, outcomes, spawns, states, sim_steps, actions = [], [], [], [], [], [], []
        frames: list[np.ndarray] = []
        try:
            for first in range(0, self.episodes, env.num_envs):
                count = min(env.num_envs, self.episodes - first)
                batch = self._play_batch(first, count, frames if record_video_steps and first == 0 else None,
                                         record_video_steps)
                for values, out in zip(batch, (returns, lengths, outcomes, spawns, states, sim_steps, actions),
                                       strict=True):
                    out.extend(values)
        finally:
            if normalizer is not None:
                normalizer.train(was_training)
        task = env.batch.core.task
        details = [task.outcome_details(o, s) for o, s in zip(outcomes, states, strict=True)]
        result = EvalResult(np.array(returns), np.array(lengths), outcomes, spawns, {},
                            final_states=np.array(states), details=details, sim_steps=np.array(sim_steps))
        result.metrics = self._summary(result)
        space = env.single_action_space
        if actions and hasattr(space, "low"):  # Box actions (a Discrete learner's indices are not summarised)
            result.actions = action_summary(actions, space.low, space.high)
        if frames:
            result.frames = np.stack(frames)
        return result

    def _play_batch(self, first: int, count: int, frames: list | None, max_frames: int):
        env, agent = self.env, self.agent
        seeds = [self.seed + first + k for k in range(env.num_envs)]
        obs, info = env.reset(seed=seeds)
        deterministic = self.deterministic
        agent.reset(None, deterministic=deterministic)
        spawns = list(info["spawn"][:count])
        done = np.zeros(env.num_envs, dtype=bool)
        done[count:] = True  # copies beyond this batch's episodes only keep the batch rectangular
        returns = np.zeros(env.num_envs)
        lengths = np.zeros(env.num_envs, dtype=np.int64)
        sim_steps = np.zeros(env.num_envs, dtype=np.int64)
        outcomes = [""] * env.num_envs
        states = [None] * env.num_envs
        taken: list[np.ndarray] = []  # (E, A) the actions of every copy, per step
        alive: list[np.ndarray] = []  # (E,) which copies were still in their episode, per step
        if frames is not None:
            frames.append(env.render()[0])
        while not done.all():
            actions = agent.act(obs, deterministic=deterministic)
            live = ~done
            taken.append(np.array(actions, copy=True).reshape(env.num_envs, -1))  # act may reuse its output buffer
            alive.append(live)
            obs, rewards, terminated, truncated, info = env.step(actions)
            ended = terminated | truncated
            returns[live] += rewards[live]
            lengths[live] += 1
            for i in np.flatnonzero(ended & live):
                outcomes[i] = str(info["outcome"][i])
                states[i] = np.array(info["final_info"]["car_states"][i])
                sim_steps[i] = info["final_info"]["episode_sim_steps"][i]
            if frames is not None and not done[0] and len(frames) < max_frames:
                frames.append(env.render()[0])
            agent.reset(ended, deterministic=deterministic)
            done |= ended
        steps, masks = np.stack(taken), np.stack(alive)  # (T, E, A), (T, E)
        episode_actions = [steps[masks[:, k], k] for k in range(count)]
        return (returns[:count].tolist(), lengths[:count].tolist(), outcomes[:count], spawns, states[:count],
                sim_steps[:count].tolist(), episode_actions)

    def _summary(self, result: EvalResult) -> dict[str, float]:
        n = len(result.outcomes)
        metrics = {
            f"eval/{self.agent_id}/mean_reward": float(result.returns.mean()),
            f"eval/{self.agent_id}/std_reward": float(result.returns.std()),
            f"eval/{self.agent_id}/mean_ep_length": float(result.lengths.mean()),
        }
        table = result.outcome_table()
        for name in self.outcome_names:
            metrics[f"eval/outcome/{name}"] = table.get(name, 0) / n
        if self.success_outcome:
            metrics["eval/success_rate"] = table.get(self.success_outcome, 0) / n
        details = result.detail_table()
        for outcome, labels in self.env.batch.core.task.detail_names.items():
            for label in labels:  # rates over all episodes: the labels of one outcome split its rate
                metrics[f"eval/detail/{outcome}/{label}"] = details.get(outcome, {}).get(label, 0) / n
        return metrics


@dataclass
class _EpisodeWindow:
    """Rolling statistics of the last finished episodes (SB3's ep_info_buffer)."""

    size: int
    returns: deque = field(default_factory=deque)
    lengths: deque = field(default_factory=deque)
    outcomes: deque = field(default_factory=deque)
    terms: deque = field(default_factory=deque)
    details: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        for name in ("returns", "lengths", "outcomes", "terms", "details"):
            setattr(self, name, deque(getattr(self, name), maxlen=self.size))

    def add(self, ret: float, length: int, outcome: str, terms: dict[str, float],
            details: tuple[str, ...] = ()) -> None:
        self.returns.append(ret)
        self.lengths.append(length)
        self.outcomes.append(outcome)
        self.terms.append(terms)
        self.details.append(tuple(details))

    def state(self) -> dict[str, list]:
        return {name: list(getattr(self, name)) for name in ("returns", "lengths", "outcomes", "terms", "details")}


class TrainingLoop:
    """Train one agent; see the module docstring.

    Args:
        env: the training env (E copies; the other cars driven by its drivers).
        agent: the learning agent, built for ``env``'s single spaces and E copies.
        agent_id: the car it drives ("car_0"), used in metric names and checkpoint files.
        config, logger_config: the run's settings.
        run_dir: where checkpoints, metrics.csv and tensorboard/ go.
        evaluation: the evaluation loop (None: no evaluation).
        outcome_names, success_outcome: the task's outcomes, for rollout statistics.
        metadata: JSON facts stored with every checkpoint (config hash, agent name, ...).
        hparams: flat hyperparameters for TensorBoard's HParams plugin.
        seed: the training env's first reset uses it (copy i gets seed + i).
    """

    def __init__(
        self,
        env: VectorRacingEnv,
        agent: Agent,
        agent_id: str,
        config: TrainingConfig,
        logger_config: LoggerConfig,
        run_dir: str | Path,
        evaluation: EvaluationLoop | None = None,
        outcome_names: tuple[str, ...] = (),
        success_outcome: str = "",
        metadata: dict[str, Any] | None = None,
        hparams: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.env = env
        self.seed = seed
        self.agent = agent
        self.agent_id = agent_id
        self.config = config
        self.logger_config = logger_config
        self.run_dir = Path(run_dir)
        self.evaluation = evaluation
        self.outcome_names = tuple(n for n in outcome_names if n)
        self.success_outcome = success_outcome
        self.metadata = dict(metadata or {})
        self.hparams = dict(hparams or {})
        self.checkpoint_dir = self.run_dir / "checkpoints"
        # Progress, saved in checkpoints.
        self.global_step = 0
        self.episodes = 0
        self.num_evals = 0
        self.best_score = -math.inf
        self.wall_time_s = 0.0
        self.last_eval: dict[str, float] = {}
        self._window = _EpisodeWindow(config.stats_window_episodes)
        self._episode_terms = np.zeros((env.num_envs, 0))
        self._term_names: list[str] = []
        self._train_metrics: dict[str, list[float]] = {}
        self._obs: np.ndarray | None = None
        # Off-policy agents with a running observation normaliser replay raw observations normalised with
        # the statistics of the moment they are sampled (see Agent.set_observation_transform).
        self._store_raw = env.normalizer is not None and not agent.capabilities.on_policy
        if self._store_raw:
            agent.set_observation_transform(env.normalizer.normalize)
        self._raw_obs: np.ndarray | None = None
        self._next_log = logger_config.log_every_steps
        self._next_eval = config.eval_every_steps or math.inf
        self._next_checkpoint = config.checkpoint_every_steps or math.inf
        self._resumed = False

    # ------------------------------------------------------------------ checkpoints

    def resume(self, checkpoint: str | Path) -> None:
        """Continue from a checkpoint folder of this run (agent, env, counters, statistics)."""
        states, _ = load_checkpoint(checkpoint)
        loop = states[LOOP_STATE]
        if self._store_raw and "_raw_obs" not in loop["env"]:
            # written before 2026-11-29, when replays under a normaliser held normalised observations and the env
            # kept no raw ones: replaying them through the normaliser again would silently train on doubly
            # normalised inputs, and even without a saved replay the first row stored per env would pair the
            # reset's raw observation with the checkpoint's step
            raise CheckpointError(
                f"{checkpoint}: written before 2026-11-29, when off-policy learners under an observation normaliser "
                "stored normalised observations, and this version stores raw ones; start a new run "
                "(scripts/evaluate.py still reads its policy)")
        self.agent.load_state_dict(states[self.agent_id])
        self.env.reset(seed=self.seed)  # sets up every internal view; the restore then overwrites the state
        restore_state(self.env, loop["env"])
        self._obs = loop["obs"]
        self._raw_obs = self.env.raw_obs if self._store_raw else None
        self.global_step = loop["global_step"]
        self.episodes = loop["episodes"]
        self.num_evals = loop["num_evals"]
        self.best_score = loop["best_score"]
        self.wall_time_s = loop["wall_time_s"]
        self.last_eval = loop["last_eval"]
        window = dict(loop["window"])
        window.setdefault("details", [()] * len(window["outcomes"]))  # checkpoints from before outcome details
        self._window = _EpisodeWindow(self.config.stats_window_episodes, **{k: deque(v) for k, v in window.items()})
        self._term_names = list(loop["term_names"])
        self._episode_terms = loop["episode_terms"]
        self._train_metrics = {k: list(v) for k, v in loop["train_metrics"].items()}
        self._next_log, self._next_eval, self._next_checkpoint = loop["schedule"]
        torch.set_rng_state(loop["torch_global_rng"])
        np.random.set_state(loop["numpy_global_rng"])  # noqa: NPY002 - third-party code may draw from it
        self._resumed = True
        log.info("resumed at step %d (episode %d) from %s", self.global_step, self.episodes, checkpoint)

    def save(self, name: str) -> Path:
        """Write checkpoint ``checkpoints/<name>`` (atomic)."""
        loop_state = {
            "env": capture_state(self.env),
            "obs": None if self._obs is None else self._obs.copy(),
            "global_step": self.global_step,
            "episodes": self.episodes,
            "num_evals": self.num_evals,
            "best_score": self.best_score,
            "wall_time_s": self.wall_time_s,
            "last_eval": dict(self.last_eval),
            "window": self._window.state(),
            "term_names": list(self._term_names),
            "episode_terms": self._episode_terms.copy(),
            "train_metrics": {k: list(v) for k, v in self._train_metrics.items()},
            "schedule": (self._next_log, self._next_eval, self._next_checkpoint),
            "torch_global_rng": torch.get_rng_state(),
            "numpy_global_rng": np.random.get_state(),  # noqa: NPY002
            # Also inside "env"; kept on its own so a frozen copy of this agent can normalise its inputs.
            "normalizer": None if self.env.normalizer is None else self.env.normalizer.state_dict(),
        }
        agent_state = self.agent.state_dict(include_buffer=self.config.save_replay_buffer)
        metadata = {
            **self.metadata,
            "episode": self.episodes,
            "global_step": self.global_step,
            "wall_time_s": self.wall_time_s,
            "metrics": dict(self.last_eval),
            "agent_id": self.agent_id,
        }
        return save_checkpoint(self.checkpoint_dir / name, {self.agent_id: agent_state, LOOP_STATE: loop_state},
                               metadata)

    def _prune_step_checkpoints(self) -> None:
        steps = sorted(self.checkpoint_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
        for old in steps[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, float]:
        """Train to ``total_timesteps``; returns the last evaluation's metrics (or the rollout metrics)."""
        cfg, lcfg = self.config, self.logger_config
        csv_logger = SimpleLogger(self.run_dir / "metrics.csv" if lcfg.csv else None, console=lcfg.console,
                                  resume_step=self.global_step if self._resumed else None)
        tb = None
        if lcfg.tensorboard:
            tb = TensorBoardLogger(self.run_dir / "tensorboard", purge_step=self.global_step + 1 if self._resumed
                                   else None)
            if not self._resumed:
                tb.log_layout(self._dashboard_layout())
        bar = self._progress_bar()
        if self._obs is None:
            self._obs, _ = self.env.reset(seed=self.seed)
            self._raw_obs = self.env.raw_obs if self._store_raw else None
        started = time.perf_counter()  # wall time since then is added to wall_time_s at every checkpoint
        fps_since, steps_at_start = started, self.global_step  # never reset: fps over this process's steps
        try:
            while self.global_step < cfg.total_timesteps:
                self._train_step()
                now = time.perf_counter()
                if bar is not None:
                    bar.update(self.env.num_envs)
                if self.global_step >= self._next_log:
                    elapsed = self.wall_time_s + (now - started)
                    fps = (self.global_step - steps_at_start) / max(now - fps_since, 1e-9)
                    row = self._rollout_metrics(fps, elapsed)
                    csv_logger.log(row, self.global_step)
                    if tb is not None:
                        tb.log_scalars(row, self.global_step)
                    if bar is not None:
                        bar.set_postfix(self._headline(row), refresh=False)
                    self._next_log += lcfg.log_every_steps
                if self.global_step >= self._next_eval:
                    self._evaluate(csv_logger, tb)
                    self._next_eval += cfg.eval_every_steps
                if self.global_step >= self._next_checkpoint:
                    self.wall_time_s += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save(f"step_{self.global_step}")
                    self.save("last")
                    self._prune_step_checkpoints()
                    self._next_checkpoint += cfg.checkpoint_every_steps
            if not self.last_eval or self.last_eval.get("_step") != self.global_step:
                if self.evaluation is not None:
                    self._evaluate(csv_logger, tb)
            self.wall_time_s += time.perf_counter() - started
            started = time.perf_counter()
            self.save("last")
            final = {k: v for k, v in self.last_eval.items() if not k.startswith("_")}
            if tb is not None:
                final_metrics = {f"final/{k.split('/', 1)[1]}": v for k, v in final.items()}
                tb.log_hparams(self.hparams, final_metrics or {"final/none": 0.0})
            return final
        finally:
            if bar is not None:
                bar.close()
            csv_logger.close()
            if tb is not None:
                tb.close()

    def _train_step(self) -> None:
        env, agent = self.env, self.agent
        obs = self._obs
        actions = agent.act(obs)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        ended = terminated | truncated
        if self._store_raw:
            next_raw = env.raw_obs
            stored_obs, true_next = self._raw_obs, successor_observations(next_raw, info, ended, "final_raw_obs")
            self._raw_obs = next_raw
        else:
            stored_obs, true_next = obs, successor_observations(next_obs, info, ended)
        agent.store(Transition(stored_obs, actions, rewards, true_next, terminated, truncated))
        update = agent.update()
        if update:
            for name, value in update.items():
                self._train_metrics.setdefault(name, []).append(float(value))
        self._accumulate_terms(info["reward_terms"])
        if ended.any():
            self._finish_episodes(ended, info)
        self._obs = next_obs
        self.global_step += env.num_envs

    def _accumulate_terms(self, terms: dict[str, np.ndarray]) -> None:
        if not self._term_names:
            self._term_names = list(terms)
            self._episode_terms = np.zeros((self.env.num_envs, len(self._term_names)))
        for j, name in enumerate(self._term_names):
            self._episode_terms[:, j] += terms[name]

    def _finish_episodes(self, ended: np.ndarray, info: dict[str, Any]) -> None:
        final = info["final_info"]
        task = self.env.batch.core.task
        for i in np.flatnonzero(ended):
            terms = {name: float(self._episode_terms[i, j]) for j, name in enumerate(self._term_names)}
            outcome = str(final["outcome"][i])
            details = task.outcome_details(outcome, final["car_states"][i]) if task.detail_names else ()
            self._window.add(float(final["episode_return"][i]), int(final["episode_length"][i]), outcome, terms,
                             details)
            self._episode_terms[i] = 0.0
            self.episodes += 1

    # ------------------------------------------------------------------ metrics

    def _rollout_metrics(self, fps: float, elapsed_s: float) -> dict[str, float]:
        a = self.agent_id
        row: dict[str, float] = {}
        window = self._window
        if window.returns:
            row[f"rollout/{a}/ep_rew_mean"] = float(np.mean(window.returns))
            row[f"rollout/{a}/ep_len_mean"] = float(np.mean(window.lengths))
            counts: dict[str, int] = {}
            for name in window.outcomes:
                counts[name] = counts.get(name, 0) + 1
            n = len(window.outcomes)
            if self.success_outcome:
                row["rollout/success_rate"] = counts.get(self.success_outcome, 0) / n
            for name in self.outcome_names:
                row[f"rollout/outcome/{name}"] = counts.get(name, 0) / n
            for outcome, labels in self.env.batch.core.task.detail_names.items():
                for label in labels:
                    hits = sum(1 for o, d in zip(window.outcomes, window.details, strict=True)
                               if o == outcome and label in d)
                    row[f"rollout/detail/{outcome}/{label}"] = hits / n
            for name in self._term_names:
                row[f"reward/{a}/{name}"] = float(np.mean([t[name] for t in window.terms]))
        for name, values in self._train_metrics.items():
            row[f"train/{a}/{name}"] = float(np.mean(values))
        self._train_metrics = {}
        row["time/fps"] = fps
        row["time/episodes"] = float(self.episodes)
        row["time/elapsed_s"] = elapsed_s
        return row

    def _evaluate(self, csv_logger: SimpleLogger, tb: TensorBoardLogger | None) -> None:
        if self.evaluation is None:
            return
        self.num_evals += 1
        video = self.config.video_every_evals and self.num_evals % self.config.video_every_evals == 0
        result = self.evaluation.run(record_video_steps=self.config.video_max_steps if video else 0)
        metrics = result.metrics
        csv_logger.log(metrics, self.global_step)
        if tb is not None:
            tb.log_scalars(metrics, self.global_step)
            if result.frames is not None:
                tb.log_video(f"eval/{self.agent_id}/video", result.frames, self.global_step)
        self.last_eval = {**metrics, "_step": self.global_step}
        score = metrics.get(self.config.best_metric, metrics[f"eval/{self.agent_id}/mean_reward"])
        if score > self.best_score:
            self.best_score = score
            self.save("best")
        log.info("evaluation %d at step %d: %s", self.num_evals, self.global_step,
                 ", ".join(f"{k}={v:.3g}" for k, v in metrics.items()))

    def _headline(self, row: dict[str, float]) -> dict[str, str]:
        a = self.agent_id
        shown = {}
        if f"rollout/{a}/ep_rew_mean" in row:
            shown["ep_rew"] = f"{row[f'rollout/{a}/ep_rew_mean']:.2f}"
        if "rollout/success_rate" in row:
            shown["success"] = f"{row['rollout/success_rate']:.2f}"
        if "eval/success_rate" in self.last_eval:
            shown["eval_success"] = f"{self.last_eval['eval/success_rate']:.2f}"
        return shown

    def _progress_bar(self):
        if not self.logger_config.progress_bar:
            return None
        from tqdm import tqdm

        return tqdm(total=self.config.total_timesteps, initial=self.global_step, unit="step", unit_scale=True,
                    dynamic_ncols=True, desc=self.agent_id)

    def _dashboard_layout(self) -> dict[str, dict[str, list]]:
        a = self.agent_id
        return {
            "Outcomes": {
                "success rate": ["Multiline", ["rollout/success_rate", "eval/success_rate"]],
                "rollout outcomes": ["Multiline", [r"rollout/outcome/.*"]],
                "evaluation outcomes": ["Multiline", [r"eval/outcome/.*"]],
                "outcome details (e.g. which wall)": ["Multiline", [r"eval/detail/.*", r"rollout/detail/.*"]],
            },
            "Returns": {
                "episode return": ["Multiline", [f"rollout/{a}/ep_rew_mean", f"eval/{a}/mean_reward"]],
                "episode length (decisions)": ["Multiline", [f"rollout/{a}/ep_len_mean",
                                                             f"eval/{a}/mean_ep_length"]],
                "reward terms": ["Multiline", [rf"reward/{a}/.*"]],
            },
            "Losses": {"losses": ["Multiline", [rf"train/{a}/.*loss"]],
                       "diagnostics": ["Multiline", [rf"train/{a}/(approx_kl|clip_fraction|explained_variance|"
                                                     r"q_values|ent_coef)"]]},
            "Speed": {"env steps per second": ["Multiline", ["time/fps"]]},
        }
