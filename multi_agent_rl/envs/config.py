"""Plain config dataclasses of the environments (Hydra YAMLs mirror these fields in a later issue)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from multi_agent_rl.envs.drivers import DriverConfig
from multi_agent_rl.envs.observations import ObservationConfig
from multi_agent_rl.sim.simulator import SimConfig
from multi_agent_rl.sim.vehicle import PRESETS, VehicleParams
from multi_agent_rl.tasks.gaplock import GaplockConfig
from multi_agent_rl.tasks.racing import RacingConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package was installed from (editable installs): relative map paths also resolve here."""
_VIEWS = ("follow", "full")


@dataclass(frozen=True)
class ActionConfig:
    """How agents' actions map to the simulator's ``[steering_angle_rad, target_speed_mps]``."""

    normalized: bool = True  # agents act in [-1, 1]^2, mapped affinely onto the ranges below
    max_steer_rad: float | None = None  # steering range is +-this (None: the vehicle's s_max)
    min_speed_mps: float | None = None  # lowest speed command (None: the vehicle's v_min, reverse)
    max_speed_mps: float | None = None  # highest speed command (None: the vehicle's v_max)


@dataclass(frozen=True)
class RenderConfig:
    """Top-down ``rgb_array`` frames."""

    view: str = "follow"  # "follow": a window around follow_car; "full": the whole map scaled to max_pixels
    follow_car: int = 0  # the car the window follows
    window_m: tuple[float, float] = (12.0, 6.0)  # "follow" window width and height (m)
    pixels_per_m: float = 50.0  # "follow" resolution
    max_pixels: int = 1000  # "full": the longer image side (pixels)
    lidar_car: int | None = 0  # draw this car's LiDAR rays (None: no rays)
    lidar_rays: int = 54  # rays drawn (evenly picked from the scan)
    env_index: int = 0  # which copy of a batched env is drawn

    def __post_init__(self) -> None:
        if self.view not in _VIEWS:
            raise ValueError(f"RenderConfig.view must be one of {_VIEWS}, got {self.view!r}")


@dataclass(frozen=True)
class EnvConfig:
    """Everything an environment is built from. Defaults: gaplock on line_track with LIMO robots."""

    map_path: str = "maps/line_track/line_track.yaml"  # map YAML (or its folder); relative to cwd or the repo
    vehicle: str | VehicleParams = "limo"  # a preset name (multi_agent_rl.sim.vehicle.PRESETS) or the parameters
    sim: SimConfig = field(default_factory=SimConfig)  # physics, actuation, LiDAR
    task: GaplockConfig | RacingConfig = field(default_factory=GaplockConfig)  # the task (its class decides)
    observation: ObservationConfig = field(default_factory=ObservationConfig)  # observation components
    action: ActionConfig = field(default_factory=ActionConfig)  # action mapping
    learner_car: int = 0  # single-agent and vector views: the car the learner drives
    learner_action_repeat: int = 1  # single-agent and vector views: sim steps per learner decision, its action
    # held; the other cars' drivers and the task act every sim step (one sim step = sim.action_repeat physics steps)
    opponents: tuple[DriverConfig, ...] = (DriverConfig(),)  # drivers of the other cars, in index order
    # (a single entry drives every other car)
    normalize_observations: bool = False  # views: running mean/std normalisation of observations
    normalizer_clip: float = 10.0  # bound of normalised observations
    render: RenderConfig = field(default_factory=RenderConfig)  # rgb_array frames

    def __post_init__(self) -> None:
        repeat = self.learner_action_repeat
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise ValueError(
                f"EnvConfig.learner_action_repeat must be an integer >= 1 (sim steps per learner decision), "
                f"got {repeat!r}"
            )
        if not isinstance(self.vehicle, VehicleParams) and self.vehicle not in PRESETS:
            raise ValueError(f"EnvConfig.vehicle must be one of {sorted(PRESETS)}, got {self.vehicle!r}")
        if not isinstance(self.task, (GaplockConfig, RacingConfig)):
            raise ValueError(
                f"EnvConfig.task must be a GaplockConfig or RacingConfig, got {type(self.task).__name__}"
            )


def racing_env_config(
    map_path: str = "maps/line_track/line_track.yaml", num_cars: int = 1, **task: object
) -> EnvConfig:
    """An EnvConfig for the racing task with the F1TENTH car, ego and LiDAR observations (plus the opponent
    blocks when racing others), and FTG opponents; ``task`` overrides RacingConfig fields."""
    components = ("lidar", "ego") if num_cars == 1 else ("lidar", "ego", "opponent_pose", "opponent_motion")
    return EnvConfig(
        map_path=map_path,
        vehicle="f1tenth",
        task=RacingConfig(num_cars=num_cars, **task),
        observation=ObservationConfig(components=components),
    )


def resolve_map_path(map_path: str | Path) -> Path:
    """The map file or folder: as given if it exists, else relative to the repository root."""
    path = Path(map_path)
    if path.exists() or path.is_absolute():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path


def resolve_vehicle(name: str | VehicleParams) -> VehicleParams:
    """The vehicle preset called ``name``, or the given parameters."""
    if isinstance(name, VehicleParams):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown vehicle preset {name!r}; allowed: {sorted(PRESETS)}") from None
