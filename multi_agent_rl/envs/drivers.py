"""Drivers for the cars a single-agent or vector view does not hand to the learner.

A driver acts for one car in every copy at once: ``act(state (E, 7), scans (E, B), obs (E, D)) -> (E, 2)``
physical actions ``[steering_angle_rad, target_speed_mps]``; ``reset(env_ids)`` is called when copies restart
and ``seed(seed)`` when the view is reset with a seed. These are thin env-side adapters: the learning agents'
protocol lives in ``multi_agent_rl.agents``, and a frozen checkpoint plugs in through :class:`PolicyDriver`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from multi_agent_rl.agents.ftg import FollowTheGap, FTGConfig
from multi_agent_rl.agents.pure_pursuit import PurePursuit, PurePursuitConfig
from multi_agent_rl.sim.maps import Polyline, TrackMap
from multi_agent_rl.sim.vehicle import VehicleParams

DRIVER_KINDS = ("ftg", "pure_pursuit", "constant", "random")
PURE_PURSUIT_PATHS = ("raceline", "centerline")


class Driver(Protocol):
    """What the views need from an opponent driver."""

    def reset(self, env_ids: np.ndarray) -> None: ...

    def seed(self, seed: int | None) -> None: ...

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DriverConfig:
    """One scripted driver."""

    kind: str = "ftg"  # "ftg" (Follow-The-Gap), "pure_pursuit", "constant" (fixed command) or "random"
    ftg: FTGConfig | None = None  # Follow-The-Gap parameters (None: defaults fitted to the vehicle)
    pure_pursuit: PurePursuitConfig | None = None  # pure pursuit parameters (None: defaults)
    path: str = "raceline"  # pure pursuit follows the map's raceline, or its centerline (the fallback)
    path_clearance_m: float = 0.4  # pure pursuit: the path is nudged this far from the walls (0: as drawn)
    steer_rad: float = 0.0  # "constant": steering command
    speed_mps: float = 0.5  # "constant": speed command (m/s)
    random_max_speed_mps: float | None = None  # "random": top of the speed range (None: v_max)

    def __post_init__(self) -> None:
        if self.kind not in DRIVER_KINDS:
            raise ValueError(f"DriverConfig.kind must be one of {DRIVER_KINDS}, got {self.kind!r}")
        if self.path not in PURE_PURSUIT_PATHS:
            raise ValueError(f"DriverConfig.path must be one of {PURE_PURSUIT_PATHS}, got {self.path!r}")


def ftg_config_for(vehicle: VehicleParams, **overrides: float) -> FTGConfig:
    """Default Follow-The-Gap parameters with the vehicle's steering limit, wheelbase and top speed (capped at
    the LIMO's 1 m/s unless overridden), plus ``overrides``."""
    base = {
        "max_steer_rad": vehicle.s_max,
        "wheelbase_m": vehicle.wheelbase,
        "max_speed_mps": min(vehicle.v_max, 1.0),
    }
    base.update(overrides)
    return FTGConfig(**base)


class FTGDriver:
    """Follow-The-Gap for one car of E copies (uses the car's raw scan and speed)."""

    def __init__(self, beam_angles_rad: np.ndarray, num_envs: int, config: FTGConfig) -> None:
        self.ftg = FollowTheGap(beam_angles_rad, config, num_envs)

    def reset(self, env_ids: np.ndarray) -> None:
        self.ftg.reset(env_ids)

    def seed(self, seed: int | None) -> None:
        """Deterministic: nothing to seed."""

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self.ftg(scans, state[:, 3])


class ConstantDriver:
    """The same command every step (e.g. a straight-driving attacker)."""

    def __init__(self, num_envs: int, steer_rad: float, speed_mps: float) -> None:
        self._action = np.tile([steer_rad, speed_mps], (num_envs, 1)).astype(np.float64)

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless."""

    def seed(self, seed: int | None) -> None:
        """Deterministic: nothing to seed."""

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self._action


class RandomDriver:
    """Uniform random commands: steering in [-s_max, s_max], speed in [v_min, max_speed_mps]."""

    def __init__(
        self, num_envs: int, vehicle: VehicleParams, max_speed_mps: float, seed: int | None = None
    ) -> None:
        self._low = np.array([vehicle.s_min, vehicle.v_min])
        self._high = np.array([vehicle.s_max, max_speed_mps])
        self._num_envs = num_envs
        self._rng = np.random.default_rng(seed)

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless."""

    def seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self._rng.uniform(self._low, self._high, size=(self._num_envs, 2))


class PolicyDriver:
    """A policy on observations, e.g. a frozen checkpoint: ``policy(obs (E, D)) -> (E, 2)`` actions in the
    learner's action space, mapped to physical commands by ``to_physical``."""

    def __init__(
        self, policy: Callable[[np.ndarray], np.ndarray], to_physical: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        self._policy = policy
        self._to_physical = to_physical

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless (a recurrent policy keeps its own state)."""

    def seed(self, seed: int | None) -> None:
        """The policy owns its randomness."""

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self._to_physical(np.asarray(self._policy(obs)))


class PurePursuitDriver:
    """Pure pursuit on one of the map's lines (uses the car's pose and speed)."""

    def __init__(self, path: Polyline, vehicle: VehicleParams, config: PurePursuitConfig) -> None:
        self.pursuit = PurePursuit(path, vehicle, config)

    def reset(self, env_ids: np.ndarray) -> None:
        """Stateless."""

    def seed(self, seed: int | None) -> None:
        """Deterministic: nothing to seed."""

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self.pursuit.act(state[:, [0, 1, 4]], state[:, 3])


def pursuit_path(config: DriverConfig, track: TrackMap) -> Polyline:
    """The line a pure pursuit driver follows: the raceline if asked for and present, else the centerline."""
    line = track.raceline if config.path == "raceline" and track.raceline is not None else track.centerline
    if line is None:
        raise ValueError(f"map '{track.name}' has neither a raceline nor a centerline for pure pursuit to follow")
    return line.kept_clear(track, config.path_clearance_m) if config.path_clearance_m > 0 else line


def build_driver(
    config: DriverConfig,
    vehicle: VehicleParams,
    beam_angles_rad: np.ndarray,
    num_envs: int,
    seed: int | None = None,
    track: TrackMap | None = None,
) -> Driver:
    """The driver a DriverConfig describes, for E copies (pure pursuit needs the ``track``)."""
    if config.kind == "ftg":
        return FTGDriver(beam_angles_rad, num_envs, config.ftg or ftg_config_for(vehicle))
    if config.kind == "pure_pursuit":
        if track is None:
            raise ValueError("a pure pursuit driver needs the track")
        return PurePursuitDriver(pursuit_path(config, track), vehicle, config.pure_pursuit or PurePursuitConfig())
    if config.kind == "constant":
        return ConstantDriver(num_envs, config.steer_rad, config.speed_mps)
    top = vehicle.v_max if config.random_max_speed_mps is None else config.random_max_speed_mps
    return RandomDriver(num_envs, vehicle, top, seed)
