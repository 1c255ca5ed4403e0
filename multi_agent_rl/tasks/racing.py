"""The racing task: progress along the centreline, laps and lap times, a collision penalty (design.md §7).

Single-car time trial (``num_cars=1``) or head-to-head (``num_cars>=2``), each car scored on its own. Progress
is the centreline arc length gained per step (negative when driving backwards, so going back and forth earns
nothing). A lap is complete when:
- on a closed centreline (a circuit), the progress accumulated since the start reaches one more track length;
- on an open one (``line_track``), the car crosses the map's finish line, or passes the end of the centreline
  when the map has none.
A car terminates when it completes ``laps`` laps (its goal) or, with ``terminate_on_collision``, when it
touches a wall or another car; every car is truncated at ``max_steps``.

Reward = sum of the terms ``progress`` (weight per metre), ``lap`` (per completed lap), ``collision`` (on a
contact step) and ``step_cost`` (every step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from multi_agent_rl.sim.maps import TrackMap
from multi_agent_rl.tasks.base import RUNNING, Start, Task, TaskStep
from multi_agent_rl.tasks.geometry import PolylineIndex, segments_cross

RACING_OUTCOMES = ("", "finished", "collision", "timeout")
RACING_TERMS = ("progress", "lap", "collision", "step_cost")
_END_OF_LINE_MARGIN_M = 0.5
"""On an open centreline without a finish line, the lap ends this far before its last point."""


@dataclass(frozen=True)
class RacingRewardConfig:
    """Weights of the racing reward terms."""

    progress_per_m: float = 1.0  # reward per metre of centreline progress (negative progress costs the same)
    lap: float = 10.0  # bonus on each completed lap
    collision: float = -10.0  # on a step with wall or car contact
    step_cost: float = 0.0  # added every step (use a negative value for a time penalty)


@dataclass(frozen=True)
class RacingConfig:
    """Racing task settings."""

    num_cars: int = 1  # cars per race, named car_0 ... car_{n-1}
    spawn: str = "auto"  # a named spawn point of the map, or "auto": 'start'/'grid_<n>' if the map has it,
    # else a grid on the centreline at start_s_m
    start_s_m: float = 0.0  # arc length of the pole position on the centreline (grid start only)
    grid_spacing_m: float = 1.2  # distance along the centreline between consecutive grid slots
    grid_lateral_m: float = 0.35  # lateral offset of the grid slots, alternating left/right (0 for one car)
    start_speeds_mps: tuple[float, ...] = (0.0,)  # each car's initial speed is drawn from this set
    laps: int = 1  # laps to complete (the goal, a termination)
    max_steps: int = 10_000  # truncation after this many env steps
    terminate_on_collision: bool = True  # a contact ends that car's episode (else it only costs the penalty)
    reward: RacingRewardConfig = field(default_factory=RacingRewardConfig)  # term weights

    def __post_init__(self) -> None:
        if not isinstance(self.num_cars, int) or self.num_cars < 1:
            raise ValueError(f"RacingConfig.num_cars must be an integer >= 1, got {self.num_cars!r}")
        if not isinstance(self.laps, int) or self.laps < 1:
            raise ValueError(f"RacingConfig.laps must be an integer >= 1, got {self.laps!r}")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"RacingConfig.max_steps must be an integer >= 1, got {self.max_steps!r}")
        if len(self.start_speeds_mps) == 0:
            raise ValueError("RacingConfig.start_speeds_mps must hold at least one speed (m/s)")

    def build(self, track: TrackMap, num_envs: int, env_timestep_s: float) -> RacingTask:
        """The task for E copies on ``track`` (``env_timestep_s``: seconds per env step, for lap times)."""
        return RacingTask(self, track, num_envs, env_timestep_s)


class RacingTask(Task):
    """Batched racing task; see the module docstring."""

    outcome_names = RACING_OUTCOMES
    term_names = RACING_TERMS
    success_outcome = "finished"

    def __init__(self, config: RacingConfig, track: TrackMap, num_envs: int, env_timestep_s: float) -> None:
        if track.centerline is None:
            raise ValueError(
                f"the racing task needs a centreline: map '{track.name}' has no {track.name}_centerline.csv"
            )
        self.config = config
        self.track = track
        self.num_cars = config.num_cars
        self.num_envs = num_envs
        self.timestep_s = env_timestep_s
        self.line = PolylineIndex(track.centerline)
        self._spawn_name = self._resolve_spawn(config, track)
        use_finish = not self.line.closed and track.finish_line is not None
        self._finish = np.asarray(track.finish_line, dtype=np.float64) if use_finish else None
        shape = (num_envs, config.num_cars)
        self._s = np.zeros(shape)
        self._progress = np.zeros(shape)
        self._laps = np.zeros(shape, dtype=np.int64)
        self._lap_start = np.zeros(shape, dtype=np.int64)
        self._last_lap_s = np.zeros(shape)
        self._best_lap_s = np.zeros(shape)
        self._terms = np.zeros((len(RACING_TERMS), *shape))
        self._term_views = MappingProxyType({n: self._terms[i] for i, n in enumerate(RACING_TERMS)})

    # ------------------------------------------------------------------ starts

    @staticmethod
    def _resolve_spawn(config: RacingConfig, track: TrackMap) -> str | None:
        n = config.num_cars
        if config.spawn != "auto":
            poses = track.spawn(config.spawn)
            if len(poses) < n:
                raise ValueError(
                    f"spawn point '{config.spawn}' of map '{track.name}' holds {len(poses)} poses, "
                    f"the race has {n} cars"
                )
            return config.spawn
        name = "start" if n == 1 else f"grid_{n}"
        return name if name in track.spawn_points else None

    def grid(self) -> np.ndarray:
        """(N, 3) grid poses on the centreline: pole at start_s_m, then every grid_spacing_m behind it."""
        n = self.config.num_cars
        s = self.config.start_s_m - self.config.grid_spacing_m * np.arange(n)
        poses = self.line.pose_at(s)
        if n > 1:
            side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * self.config.grid_lateral_m
            poses[:, 0] -= side * np.sin(poses[:, 2])
            poses[:, 1] += side * np.cos(poses[:, 2])
        return poses

    def sample_start(self, rng: np.random.Generator, count: int) -> Start:
        n = self.config.num_cars
        poses = self.track.spawn(self._spawn_name)[:n] if self._spawn_name else self.grid()
        speeds = rng.choice(np.asarray(self.config.start_speeds_mps, dtype=np.float64), size=(count, n))
        name = self._spawn_name or "centerline_grid"
        return Start(np.broadcast_to(poses, (count, n, 3)).copy(), speeds, [name] * count)

    # ------------------------------------------------------------------ episode

    def reset(self, env_ids: np.ndarray, state: np.ndarray) -> None:
        self._s[env_ids] = self.line.arc_length(state[..., 0:2])
        self._progress[env_ids] = 0.0
        self._laps[env_ids] = 0
        self._lap_start[env_ids] = 0
        self._last_lap_s[env_ids] = 0.0
        self._best_lap_s[env_ids] = 0.0

    def step(self, prev_state, state, collided, car_contact, episode_step) -> TaskStep:
        cfg = self.config
        s_new = self.line.arc_length(state[..., 0:2])
        delta = self.line.progress(self._s, s_new)
        self._s[:] = s_new
        self._progress += delta
        if self.line.closed:
            lap_done = self._progress >= (self._laps + 1) * self.line.length_m
        elif self._finish is not None:
            lap_done = segments_cross(prev_state[..., 0:2], state[..., 0:2], self._finish[0], self._finish[1])
            lap_done &= delta > 0.0  # forward crossings only
        else:
            lap_done = (s_new >= self.line.length_m - _END_OF_LINE_MARGIN_M) & (self._laps == 0)
        steps = episode_step[:, None]
        lap_time = (steps - self._lap_start) * self.timestep_s
        self._last_lap_s = np.where(lap_done, lap_time, self._last_lap_s)
        best = np.where(self._best_lap_s > 0.0, np.minimum(self._best_lap_s, lap_time), lap_time)
        self._best_lap_s = np.where(lap_done, best, self._best_lap_s)
        self._lap_start = np.where(lap_done, steps, self._lap_start)
        self._laps += lap_done

        finished = self._laps >= cfg.laps
        crashed = collided & cfg.terminate_on_collision
        terminated = finished | crashed
        truncated = (steps >= cfg.max_steps) & ~terminated
        outcome = np.full(terminated.shape, RUNNING, dtype=np.int16)
        outcome[truncated] = RACING_OUTCOMES.index("timeout")
        outcome[crashed] = RACING_OUTCOMES.index("collision")
        outcome[finished] = RACING_OUTCOMES.index("finished")

        w = cfg.reward
        self._terms[0] = w.progress_per_m * delta
        self._terms[1] = w.lap * lap_done
        self._terms[2] = w.collision * collided
        self._terms[3] = w.step_cost
        return TaskStep(self._terms.sum(axis=0), terminated, truncated, outcome, self._term_views)

    def episode_stats(self):
        """Per car: laps completed, centreline progress (m), last and best lap times (s; 0 before the first
        lap). Arrays are the task's own, valid until the next step."""
        return {
            "laps": self._laps,
            "progress_m": self._progress,
            "last_lap_time_s": self._last_lap_s,
            "best_lap_time_s": self._best_lap_s,
        }
