"""The gaplock task: an attacker (car_0) learns to force a Follow-The-Gap defender (car_1) into a wall (design.md §7).

Start: a spawn pair drawn uniformly from the map's spawn points named ``<spawn_prefix>*`` (each [attacker,
defender]), the attacker's initial speed drawn from ``attacker_start_speeds_mps``, the defender at rest.

Outcomes, mutually exclusive, checked in this order after every step (the first that holds is the outcome):
    1. target_finish     the defender crossed the map's finish line               terminated (attacker failed)
    2. mutual_collision  car-car contact: a crash for both, never a success       terminated
    3. target_crash      the defender touched a wall and the attacker did not     terminated (SUCCESS)
    4. self_crash        the attacker touched a wall                              terminated
    5. idle_stop         the attacker slower than idle_speed_mps for idle_steps   truncated
    6. timeout           max_steps env steps                                      truncated
The episode ends for both cars together, with the same flags and outcome.

Reward of the attacker: the sum of the named terms of a ``GaplockRewardConfig``, each also reported alone:
- terminal terms, one per outcome, paid on the outcome's step: ``target_crash``, ``self_crash``,
  ``mutual_collision``, ``target_finish``, ``idle_stop``, ``timeout``;
- potential-based shaping terms F = gamma * Phi(s') - Phi(s) (Ng et al. 1999), with Phi(s') = 0 when the step
  terminates (not when it truncates: bootstrapping goes on there), each Phi = weight * phi with phi in [0, 1]:
    ``pocket``     phi = max(0, 1 - d / pocket_range_m), d = distance from the attacker to the pinch pocket,
                   the point pocket_ahead_m ahead of the defender's centre and pocket_lateral_m to the side
                   the attacker is on (beside the defender's nose, where a car squeezes the defender's path);
    ``clearance``  phi = max(0, 1 - c / clearance_range_m), c = the defender's distance to the wall (from its
                   centre, perpendicular to its heading) on the side away from the attacker: the wall it is
                   being pushed toward;
    ``bearing``    phi = (1 + cos a) / 2, a = angle between the attacker's heading and the direction to the
                   pocket;
    ``wall_ahead`` phi = max(0, 1 - r / wall_ahead_range_m), r = the defender's distance to the wall straight
                   along its own heading (walls only, the attacker does not count): high when the defender has
                   been turned toward a nearby wall, the situation that precedes every real wall hit (off, 0,
                   in the "default" and "block" presets; 2.0 in the "wall_ahead" preset);
- ``step_cost``, a constant paid every step.
With phi in [0, 1], the shaping an episode can earn in total is at most the sum of the shaping weights (the
telescoping sum minus a non-negative (1 - gamma) drift), so a success weight above that sum guarantees that
the terminal terms dominate; the config checks it. The defender's reward is 0, or minus the attacker's with
``defender_reward="zero_sum"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from types import MappingProxyType

import numpy as np
from numba import njit

from multi_agent_rl.sim.maps import TrackMap
from multi_agent_rl.tasks.base import Start, Task, TaskStep
from multi_agent_rl.tasks.geometry import ray_distance_m

GAPLOCK_OUTCOMES = (
    "",
    "target_finish",
    "mutual_collision",
    "target_crash",
    "self_crash",
    "idle_stop",
    "timeout",
)
"""Outcome names by code, in the order they are checked (code 0 = running)."""
TERMINAL_TERMS = GAPLOCK_OUTCOMES[1:]
SHAPING_TERMS = ("pocket", "clearance", "bearing", "wall_ahead")
GAPLOCK_TERMS = (*TERMINAL_TERMS, *SHAPING_TERMS, "step_cost")
ATTACKER, DEFENDER = 0, 1
_TRUNCATING = (GAPLOCK_OUTCOMES.index("idle_stop"), GAPLOCK_OUTCOMES.index("timeout"))
_DEFENDER_REWARDS = ("zero", "zero_sum")
CRASH_DETAILS = ("side_wall", "end_wall", "unknown_wall", "defender_reversed")
"""Labels ``GaplockTask.outcome_details`` gives a ``target_crash``: which wall the defender hit (one of the first
three) and, when it was facing against the track's direction at the contact, ``defender_reversed``."""
END_WALL_MARGIN_M = 1.0
"""A defender whose centre projects within this distance of an open centreline's first or last point hit an end
wall (line_track: within 1 m of x = -50 or +50; the LIMO is 0.32 m long)."""


@dataclass(frozen=True)
class GaplockRewardConfig:
    """Weights and parameters of the gaplock reward terms (see the module docstring for each term)."""

    target_crash: float = 10.0  # success: the defender hit a wall, the attacker did not
    self_crash: float = -10.0  # the attacker hit a wall
    mutual_collision: float = -10.0  # car-car contact (ramming is never a success)
    target_finish: float = -5.0  # the defender reached the finish line
    idle_stop: float = -5.0  # the attacker stood still too long
    timeout: float = -2.0  # max_steps reached
    pocket: float = 1.0  # weight of the pinch-pocket potential
    pocket_ahead_m: float = 0.3  # pocket position ahead of the defender's centre, along its heading
    pocket_lateral_m: float = 0.35  # pocket offset to the attacker's side of the defender
    pocket_range_m: float = 2.0  # the pocket potential falls to 0 at this distance
    clearance: float = 0.5  # weight of the defender's far-side wall clearance potential
    clearance_range_m: float = 1.5  # clearances beyond this give potential 0
    bearing: float = 0.25  # weight of the attacker's bearing-to-pocket potential
    wall_ahead: float = 0.0  # weight of the defender's wall-ahead potential (its heading points at a near wall)
    wall_ahead_range_m: float = 6.0  # wall distances along the defender's heading beyond this give potential 0
    step_cost: float = -0.001  # paid every step
    shaping_gamma: float = 0.99  # gamma of the potential-based shaping (match the learner's discount)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"GaplockRewardConfig.{f.name} must be a finite number, got {value!r}")
        for name in SHAPING_TERMS:
            if getattr(self, name) < 0:
                raise ValueError(
                    f"GaplockRewardConfig.{name} is a potential weight and must be >= 0, "
                    f"got {getattr(self, name)}"
                )
        for name in ("pocket_range_m", "clearance_range_m", "wall_ahead_range_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GaplockRewardConfig.{name} must be > 0 m, got {getattr(self, name)}")
        if not 0.0 < self.shaping_gamma <= 1.0:
            raise ValueError(
                f"GaplockRewardConfig.shaping_gamma must lie in (0, 1], got {self.shaping_gamma}"
            )
        if self.step_cost > 0:
            raise ValueError(
                f"GaplockRewardConfig.step_cost must be <= 0 (a cost), got {self.step_cost}: a "
                "positive per-step reward pays the attacker for stalling"
            )
        shaping_max = sum(getattr(self, name) for name in SHAPING_TERMS)
        if self.target_crash <= shaping_max:
            raise ValueError(
                f"GaplockRewardConfig.target_crash ({self.target_crash}) must exceed the most shaping an "
                f"episode can earn, {' + '.join(SHAPING_TERMS)} = {shaping_max}, so that success dominates"
            )
        for name in ("self_crash", "mutual_collision"):
            if getattr(self, name) > 0:
                raise ValueError(
                    f"GaplockRewardConfig.{name} must be <= 0 (a failure), got {getattr(self, name)}"
                )

    def weights(self) -> dict[str, float]:
        """Term name -> weight, in GAPLOCK_TERMS order."""
        return {name: float(getattr(self, name)) for name in GAPLOCK_TERMS}


GAPLOCK_REWARD_PRESETS = MappingProxyType(
    {
        # Terminal outcomes plus the three shaping potentials and a small time cost.
        "default": GaplockRewardConfig(),
        # Outcomes only: the pure objective, for checking that shaping helps.
        "sparse": GaplockRewardConfig(pocket=0.0, clearance=0.0, bearing=0.0, step_cost=0.0),
        # Stronger shaping for the first steps of learning (success still dominates: 10 > 2 + 1 + 0.5).
        "dense": GaplockRewardConfig(pocket=2.0, clearance=1.0, bearing=0.5, step_cost=-0.002),
        # The default weights with the pocket moved to where a scripted blocker turns the defender around
        # (0.75 m ahead, 0.3 m aside) and undiscounted shaping (gamma 1: holding a potential costs nothing; an
        # episode's shaping is exactly Phi_T - Phi_0). An ablation of "wall_ahead" (docs/results.md).
        "block": GaplockRewardConfig(pocket_ahead_m=0.75, pocket_lateral_m=0.3, shaping_gamma=1.0),
        # "block" plus the defender's wall-ahead potential (success still dominates: 10 > 1 + 0.5 + 0.25 + 2),
        # which pays for turning the defender toward a near wall, what precedes a real wall hit. The preset of
        # the gaplock_ppo / _sac / _td3 experiments (docs/results.md).
        "wall_ahead": GaplockRewardConfig(
            wall_ahead=2.0, pocket_ahead_m=0.75, pocket_lateral_m=0.3, shaping_gamma=1.0
        ),
    }
)
"""Named reward presets; "default" is the default."""


@dataclass(frozen=True)
class GaplockConfig:
    """Gaplock task settings."""

    spawn_prefix: str = "gaplock_"  # start pairs: the map's spawn points whose names start with this
    spawn_names: tuple[str, ...] = ()  # explicit start pairs (overrides spawn_prefix when not empty)
    spawn_offset_m: tuple[float, float] = (0.0, 0.0)  # (dx, dy) added to both cars of every start pair
    attacker_start_speeds_mps: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)  # drawn uniformly per episode
    idle_speed_mps: float = 0.12  # the attacker is idle below this |speed|
    idle_steps: int = 120  # consecutive idle steps that stop the episode (truncation)
    max_steps: int = 5000  # timeout (truncation), env steps
    defender_reward: str = "zero"  # "zero" or "zero_sum" (minus the attacker's reward)
    reward_preset: str = "default"  # a key of GAPLOCK_REWARD_PRESETS, used when reward is None
    reward: GaplockRewardConfig | None = None  # explicit reward terms (overrides reward_preset)

    def __post_init__(self) -> None:
        if len(self.spawn_offset_m) != 2 or not all(math.isfinite(v) for v in self.spawn_offset_m):
            raise ValueError(f"GaplockConfig.spawn_offset_m must be two finite numbers (dx, dy) in metres, "
                             f"got {self.spawn_offset_m!r}")
        if not self.attacker_start_speeds_mps:
            raise ValueError("GaplockConfig.attacker_start_speeds_mps must hold at least one speed (m/s)")
        if not isinstance(self.idle_steps, int) or self.idle_steps < 1:
            raise ValueError(f"GaplockConfig.idle_steps must be an integer >= 1, got {self.idle_steps!r}")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"GaplockConfig.max_steps must be an integer >= 1, got {self.max_steps!r}")
        if self.idle_speed_mps < 0:
            raise ValueError(f"GaplockConfig.idle_speed_mps must be >= 0, got {self.idle_speed_mps}")
        if self.defender_reward not in _DEFENDER_REWARDS:
            raise ValueError(
                f"GaplockConfig.defender_reward must be one of {_DEFENDER_REWARDS}, "
                f"got {self.defender_reward!r}"
            )
        if self.reward is None and self.reward_preset not in GAPLOCK_REWARD_PRESETS:
            raise ValueError(
                f"GaplockConfig.reward_preset must be one of {sorted(GAPLOCK_REWARD_PRESETS)}, "
                f"got {self.reward_preset!r}"
            )

    @property
    def rewards(self) -> GaplockRewardConfig:
        """The reward terms in force: ``reward`` if given, else the preset."""
        return self.reward if self.reward is not None else GAPLOCK_REWARD_PRESETS[self.reward_preset]

    def with_reward(self, **changes: float) -> GaplockConfig:
        """A copy whose reward terms differ from the ones in force by ``changes``."""
        return replace(self, reward=replace(self.rewards, **changes))

    def build(self, track: TrackMap, num_envs: int, env_timestep_s: float) -> GaplockTask:
        """The task for E copies on ``track``."""
        return GaplockTask(self, track, num_envs)


@njit(cache=True, inline="always")
def pocket_point(dx, dy, dyaw, ax, ay, ahead_m, lateral_m):
    """World (x, y) of the pinch pocket of a defender at (dx, dy, dyaw) for an attacker at (ax, ay), and the
    side (+1 left, -1 right, of the defender's heading) the attacker is on (+1 when exactly behind or
    ahead)."""
    c, s = math.cos(dyaw), math.sin(dyaw)
    lateral = -s * (ax - dx) + c * (ay - dy)
    side = 1.0 if lateral >= 0.0 else -1.0
    return dx + ahead_m * c - side * lateral_m * s, dy + ahead_m * s + side * lateral_m * c, side


@njit(cache=True)
def potentials(
    att,
    dfd,
    dist,
    map_ox,
    map_oy,
    map_cos,
    map_sin,
    res,
    ahead_m,
    lateral_m,
    pocket_range_m,
    clearance_range_m,
):
    """Unweighted potentials (pocket, clearance, bearing), each in [0, 1], of the attacker's and the
    defender's 7-states."""
    px, py, side = pocket_point(dfd[0], dfd[1], dfd[4], att[0], att[1], ahead_m, lateral_m)
    ex, ey = px - att[0], py - att[1]
    d = math.sqrt(ex * ex + ey * ey)
    phi_pocket = max(0.0, 1.0 - d / pocket_range_m)
    far_side = dfd[4] - side * 0.5 * math.pi
    clearance = ray_distance_m(
        dist, map_ox, map_oy, map_cos, map_sin, res, dfd[0], dfd[1], far_side, clearance_range_m
    )
    phi_clear = max(0.0, 1.0 - clearance / clearance_range_m)
    if d < 1e-9:
        cos_a = 1.0
    else:
        cos_a = (math.cos(att[4]) * ex + math.sin(att[4]) * ey) / d
    phi_bear = 0.5 * (1.0 + cos_a)
    return phi_pocket, phi_clear, phi_bear


@njit(cache=True, inline="always")
def _crossed(x0, y0, x1, y1, ax, ay, bx, by):
    """Whether the motion (x0, y0) -> (x1, y1) crosses the segment a-b (touching counts)."""
    mx, my = x1 - x0, y1 - y0
    if mx == 0.0 and my == 0.0:
        return False
    dx, dy = bx - ax, by - ay
    s0 = dx * (y0 - ay) - dy * (x0 - ax)
    s1 = dx * (y1 - ay) - dy * (x1 - ax)
    if s0 * s1 > 0.0 or (s0 == 0.0 and s1 == 0.0):
        return False
    ea = mx * (ay - y0) - my * (ax - x0)
    eb = mx * (by - y0) - my * (bx - x0)
    return ea * eb <= 0.0


@njit(cache=True)
def wall_ahead_potential(dfd, dist, map_ox, map_oy, map_cos, map_sin, res, range_m):
    """Unweighted wall-ahead potential in [0, 1] of the defender's 7-state: 1 - (distance to the wall along
    its heading) / range_m, floored at 0."""
    r = ray_distance_m(dist, map_ox, map_oy, map_cos, map_sin, res, dfd[0], dfd[1], dfd[4], range_m)
    return max(0.0, 1.0 - r / range_m)


@njit(cache=True)
def _reset_potentials(state, env_ids, mp, geo, weights, phi):
    for e in env_ids:
        phi[e, 3] = 0.0
        if weights[3] > 0.0:
            phi[e, 3] = weights[3] * wall_ahead_potential(
                state[e, DEFENDER], mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], geo[4]
            )
        p = potentials(
            state[e, ATTACKER],
            state[e, DEFENDER],
            mp[0],
            mp[1],
            mp[2],
            mp[3],
            mp[4],
            mp[5],
            geo[0],
            geo[1],
            geo[2],
            geo[3],
        )
        for i in range(3):
            phi[e, i] = weights[i] * p[i]


@njit(cache=True)
def _gaplock_step(
    prev_state,
    state,
    collided,
    car_contact,
    episode_step,
    finish,
    has_finish,
    mp,
    geo,
    weights,
    terminal_w,
    step_cost,
    gamma,
    idle_speed,
    idle_steps,
    max_steps,
    idle_count,
    phi,
    terms,
    outcome,
):
    """Outcomes and attacker reward terms of every copy; updates idle_count (E,) and phi (E, 4) in place.

    terms: (T, E) in GAPLOCK_TERMS order; outcome: (E,) codes.
    """
    num_envs = state.shape[0]
    for e in range(num_envs):
        att, dfd = state[e, ATTACKER], state[e, DEFENDER]
        if abs(att[3]) < idle_speed:
            idle_count[e] += 1
        else:
            idle_count[e] = 0
        code = 0
        if has_finish and _crossed(
            prev_state[e, DEFENDER, 0],
            prev_state[e, DEFENDER, 1],
            dfd[0],
            dfd[1],
            finish[0, 0],
            finish[0, 1],
            finish[1, 0],
            finish[1, 1],
        ):
            code = 1
        elif car_contact[e, ATTACKER] or car_contact[e, DEFENDER]:
            code = 2
        elif collided[e, DEFENDER] and not collided[e, ATTACKER]:
            code = 3
        elif collided[e, ATTACKER]:
            code = 4
        elif idle_count[e] >= idle_steps:
            code = 5
        elif episode_step[e] >= max_steps:
            code = 6
        outcome[e] = code
        for k in range(6):
            terms[k, e] = terminal_w[k] if code == k + 1 else 0.0
        terminal = 1 <= code <= 4
        p = potentials(att, dfd, mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], geo[0], geo[1], geo[2], geo[3])
        for i in range(3):
            new = 0.0 if terminal else weights[i] * p[i]
            terms[6 + i, e] = gamma * new - phi[e, i]
            phi[e, i] = new
        new = 0.0
        if weights[3] > 0.0 and not terminal:
            new = weights[3] * wall_ahead_potential(dfd, mp[0], mp[1], mp[2], mp[3], mp[4], mp[5], geo[4])
        terms[9, e] = gamma * new - phi[e, 3]
        phi[e, 3] = new
        terms[10, e] = step_cost


def crash_wall(track: TrackMap, pose: np.ndarray, end_margin_m: float = END_WALL_MARGIN_M) -> tuple[str, bool]:
    """Which wall a car at ``pose`` ([x, y, yaw, ...]: a car stopped by a contact keeps its pre-contact pose) hit,
    judged from the map's centreline: ``"end_wall"`` when its position projects within ``end_margin_m`` of either
    end of an open centreline (a corridor's start or end wall), else ``"side_wall"`` (a closed centreline has no
    ends); ``"unknown_wall"`` without a centreline. Also whether it faced against the centreline's direction
    (|heading error| > 90 degrees), i.e. it had turned around."""
    line = track.centerline
    if line is None:
        return "unknown_wall", False
    s, _, heading = line.project(np.asarray(pose[:2], dtype=np.float64)[None])
    reversed_ = math.cos(float(pose[2]) - float(heading[0])) < 0.0
    if not line.closed and (s[0] <= end_margin_m or s[0] >= line.length - end_margin_m):
        return "end_wall", reversed_
    return "side_wall", reversed_


class GaplockTask(Task):
    """Batched gaplock task; see the module docstring."""

    num_cars = 2
    outcome_names = GAPLOCK_OUTCOMES
    term_names = GAPLOCK_TERMS
    success_outcome = "target_crash"
    detail_names = MappingProxyType({"target_crash": CRASH_DETAILS})

    def __init__(self, config: GaplockConfig, track: TrackMap, num_envs: int) -> None:
        self.config = config
        self.track = track
        self.num_envs = num_envs
        self.spawn_names = self._spawn_names(config, track)
        self._starts = np.stack([track.spawn(n)[:2] for n in self.spawn_names])  # (S, 2, 3)
        self._starts[..., :2] += np.asarray(config.spawn_offset_m, dtype=np.float64)
        self._speeds = np.asarray(config.attacker_start_speeds_mps, dtype=np.float64)
        r = config.rewards
        self.rewards_config = r
        self._map = track.kernel_args()
        self._check_starts_clear(track)
        self._geo = (r.pocket_ahead_m, r.pocket_lateral_m, r.pocket_range_m, r.clearance_range_m,
                     r.wall_ahead_range_m)
        self._weights = np.array([getattr(r, n) for n in SHAPING_TERMS])
        self._terminal_w = np.array([getattr(r, n) for n in TERMINAL_TERMS])
        has_finish = track.finish_line is not None
        self._finish = np.asarray(track.finish_line if has_finish else np.zeros((2, 2)), dtype=np.float64)
        self._has_finish = has_finish
        self._idle = np.zeros(num_envs, dtype=np.int64)
        self._phi = np.zeros((num_envs, len(SHAPING_TERMS)))
        self._terms = np.zeros((len(GAPLOCK_TERMS), num_envs, 2))
        self._att_terms = np.zeros((len(GAPLOCK_TERMS), num_envs))
        self._term_views = MappingProxyType({n: self._terms[i] for i, n in enumerate(GAPLOCK_TERMS)})
        self._outcome_code = np.zeros(num_envs, dtype=np.int16)
        # per-car copies of the shared flags, filled in place every step (cheaper than fresh broadcasts)
        self._terminated = np.zeros((num_envs, 2), dtype=bool)
        self._truncated = np.zeros((num_envs, 2), dtype=bool)
        self._outcome = np.zeros((num_envs, 2), dtype=np.int16)
        self._idle_pair = np.zeros((num_envs, 2), dtype=np.int64)
        self._zero_sum = config.defender_reward == "zero_sum"

    @staticmethod
    def _spawn_names(config: GaplockConfig, track: TrackMap) -> tuple[str, ...]:
        names = config.spawn_names or tuple(
            sorted(n for n in track.spawn_points if n.startswith(config.spawn_prefix))
        )
        if not names:
            known = ", ".join(sorted(track.spawn_points)) or "none"
            raise ValueError(
                f"map '{track.name}' has no spawn point starting with spawn_prefix "
                f"'{config.spawn_prefix}' (it has: {known}); set spawn_names or spawn_prefix"
            )
        for n in names:
            if len(track.spawn(n)) < 2:
                raise ValueError(
                    f"gaplock spawn point '{n}' of map '{track.name}' must hold two poses "
                    f"[attacker, defender], it holds {len(track.spawn(n))}"
                )
        return names

    def _check_starts_clear(self, track: TrackMap) -> None:
        """Every (shifted) start pose must lie in free space, at least 0.2 m from any wall."""
        dist, ox, oy, cos_t, sin_t, res = self._map
        for name, pair in zip(self.spawn_names, self._starts, strict=True):
            for x, y, _ in pair:
                dx, dy = x - ox, y - oy
                col = math.floor((cos_t * dx + sin_t * dy) / res)
                row = math.floor((-sin_t * dx + cos_t * dy) / res)  # the distance map's rows count up from y0
                inside = 0 <= row < dist.shape[0] and 0 <= col < dist.shape[1]
                if not inside or dist[row, col] * res < 0.2:
                    raise ValueError(
                        f"gaplock start pair '{name}' shifted by spawn_offset_m={self.config.spawn_offset_m} puts a "
                        f"car at ({x:.2f}, {y:.2f}), in or next to a wall of map '{track.name}'"
                    )

    def sample_start(self, rng: np.random.Generator, count: int) -> Start:
        pick = rng.integers(len(self.spawn_names), size=count)
        speeds = np.zeros((count, 2))
        speeds[:, ATTACKER] = rng.choice(self._speeds, size=count)
        return Start(self._starts[pick].copy(), speeds, [self.spawn_names[i] for i in pick])

    def reset(self, env_ids: np.ndarray, state: np.ndarray) -> None:
        ids = np.asarray(env_ids, dtype=np.int64)
        self._idle[ids] = 0
        self._idle_pair[ids] = 0
        full = np.zeros((self.num_envs, 2, state.shape[-1]))
        full[ids] = state
        _reset_potentials(full, ids, self._map, self._geo, self._weights, self._phi)

    def step(self, prev_state, state, collided, car_contact, episode_step) -> TaskStep:
        r = self.rewards_config
        code = self._outcome_code
        _gaplock_step(
            prev_state,
            state,
            collided,
            car_contact,
            episode_step,
            self._finish,
            self._has_finish,
            self._map,
            self._geo,
            self._weights,
            self._terminal_w,
            r.step_cost,
            r.shaping_gamma,
            self.config.idle_speed_mps,
            self.config.idle_steps,
            self.config.max_steps,
            self._idle,
            self._phi,
            self._att_terms,
            code,
        )
        self._terms[:, :, ATTACKER] = self._att_terms
        self._terms[:, :, DEFENDER] = -self._att_terms if self._zero_sum else 0.0
        truncated = (code == _TRUNCATING[0]) | (code == _TRUNCATING[1])
        self._truncated[:] = truncated[:, None]
        self._terminated[:] = ((code != 0) & ~truncated)[:, None]
        self._outcome[:] = code[:, None]
        self._idle_pair[:] = self._idle[:, None]
        return TaskStep(self._terms.sum(axis=0), self._terminated, self._truncated, self._outcome, self._term_views)

    def episode_stats(self):
        """Per car (the same for both): consecutive idle steps of the attacker. Valid until the next step."""
        return {"idle_steps": self._idle_pair}

    def outcome_details(self, outcome: str, states: np.ndarray) -> tuple[str, ...]:
        """For a ``target_crash``: the wall the defender hit (see :func:`crash_wall`) and ``defender_reversed``
        when it had turned around; nothing for other outcomes. ``states``: (2, 7) final car states."""
        if outcome != "target_crash":
            return ()
        defender = np.asarray(states)[DEFENDER]
        wall, reversed_ = crash_wall(self.track, defender[[0, 1, 4]])
        return (wall, "defender_reversed") if reversed_ else (wall,)
