"""``train(cfg)``: the entry point where Hydra's config becomes objects. Nothing below it sees OmegaConf.

    python scripts/train.py agent=td3 task=gaplock seed=3          # one run
    python scripts/train.py -m agent=ppo,td3 seed=0,1,2             # a sweep
    python scripts/train.py resume=outputs/2026-11-25/10-00-00      # continue a run exactly

Order of work: check the whole config (unknown keys, wrong types) -> build the env config and the drivers of the
other cars -> build the environments -> build the learning agent (its space check runs here, before any step) ->
write the run's resolved config -> train. Every failure before training is one sentence naming the key.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import typing
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from multi_agent_rl.agents.base import Agent, IncompatibleSpaceError
from multi_agent_rl.envs import EnvConfig, VectorRacingEnv
from multi_agent_rl.envs.config import resolve_map_path, resolve_vehicle
from multi_agent_rl.envs.drivers import DriverConfig, PolicyDriver, build_driver
from multi_agent_rl.envs.normalize import RunningNormalizer
from multi_agent_rl.sim.maps import MapError, load_map
from multi_agent_rl.training.checkpoint import CheckpointError, load_checkpoint
from multi_agent_rl.training.config import ConfigError, check_config, config_hash
from multi_agent_rl.training.loop import EvaluationLoop, TrainingLoop
from multi_agent_rl.training.seeding import set_random_seeds

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The repository's config tree (the package is installed in editable mode from the checkout)."""


def _resuming(resume: str | None) -> bool:
    """Whether train.yaml's ``resume`` names a run (null reaches resolvers as None, or as "None" in a string)."""
    return resume not in (None, "", "None")


def _hydra_subdir(resume: str | None) -> str:
    """Where Hydra writes its own record of an invocation: a resumed run keeps the original .hydra/."""
    return ".hydra_resume" if _resuming(resume) else ".hydra"


def _run_dir(resume: str | None, new_dir: str) -> str:
    """hydra.run.dir: a resumed run continues in its own directory, a new run gets ``new_dir`` (dated).

    Written out because ``oc.select`` returns a key's null value instead of its default (OmegaConf 2.3.1), which
    made a plain ``python scripts/train.py`` fail before any work."""
    return str(resume) if _resuming(resume) else new_dir


# Registered on import so every process that runs train() (joblib and submitit workers too) resolves train.yaml.
OmegaConf.register_new_resolver("mar_hydra_subdir", _hydra_subdir, replace=True)
OmegaConf.register_new_resolver("mar_run_dir", _run_dir, replace=True)

RESOLVED_CONFIG = "config_resolved.yaml"
TOP_LEVEL_KEYS = frozenset({"seed", "device", "resume", "agents", "agent", "opponent", "env", "task", "vehicle",
                            "training", "logger", "optimize_metric", "torch_threads"})


@dataclasses.dataclass(frozen=True)
class FrozenAgentConfig:
    """An opponent driven by the agent of a finished run (its checkpoint, not learning)."""

    run_dir: str  # the run directory whose agent drives this car
    checkpoint: str = "best"  # best, last or step_<N>
    agent_id: str | None = None  # which of that run's agents (None: the one it trained)
    # act with the mean / greedy action (false: sampled; a frozen Rainbow keeps its saved noise draw)
    deterministic: bool = True


@dataclasses.dataclass
class Run:
    """Everything ``train`` builds, for tests and the Python API."""

    loop: TrainingLoop
    env: VectorRacingEnv
    agent: Agent
    agent_id: str
    run_dir: Path
    make_eval_env: Callable[[int], VectorRacingEnv]  # evaluation envs of any size (same drivers, shared normaliser)


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> float:
    """Build and run one training run; returns the metric ``optimize_metric`` for sweepers (Optuna maximises it)."""
    run = build_run(cfg, run_dir)
    final = run.loop.run()
    metric = str(cfg.get("optimize_metric", "eval/success_rate"))
    if metric not in final:
        fallback = f"eval/{run.agent_id}/mean_reward"
        metric = fallback if fallback in final else metric
    value = float(final.get(metric, float("nan")))
    log.info("finished: %s = %.4f (run dir %s)", metric, value, run.run_dir)
    return value


def build_run(cfg: DictConfig, run_dir: str | Path | None = None) -> Run:
    """Everything ``train`` does before the first step. With ``cfg.resume`` set, the resumed run's own config
    and directory are used and the loop continues from its last checkpoint."""
    if cfg.get("resume"):
        return _resume(Path(str(cfg.resume)))
    if run_dir is None:
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints" / "last").is_dir() and (run_dir / RESOLVED_CONFIG).is_file():
        # The same job started again in its own directory (a SLURM requeue after a timeout, a rerun of a sweep
        # job): continue it. A different config never overwrites a run.
        if config_hash(OmegaConf.load(run_dir / RESOLVED_CONFIG)) != config_hash(cfg):
            raise ConfigError(f"hydra.run.dir: {run_dir} already holds a run with another config; pick a new "
                              "directory, or resume=<that dir> to continue it")
        log.info("%s already holds this run: resuming it", run_dir)
        return _resume(run_dir)
    run = _build(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESOLVED_CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return run


def _resume(run_dir: Path) -> Run:
    """The run's own config and directory; the loop continues from checkpoints/last."""
    saved = run_dir / RESOLVED_CONFIG
    if not saved.is_file():
        raise ConfigError(f"resume: {run_dir} is not a run directory (no {RESOLVED_CONFIG})")
    run = _build(OmegaConf.load(saved), run_dir)
    try:
        run.loop.resume(run_dir / "checkpoints" / "last")
    except CheckpointError as err:
        raise ConfigError(f"resume: {err}") from None
    _attach_run_log(run_dir)
    return run


def _build(cfg: DictConfig, run_dir: Path) -> Run:
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    check_config(cfg)
    seed = int(cfg.seed)
    try:
        set_random_seeds(seed)
    except ValueError as err:
        raise ConfigError(f"seed: {err}") from None
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    training = _plain(_instantiate(cfg.training, "training"), "training")
    logger_config = _plain(_instantiate(cfg.logger, "logger"), "logger")
    task = _plain(_instantiate(cfg.task, "task"), "task")
    vehicle = _plain(_instantiate(cfg.vehicle, "vehicle"), "vehicle")
    agents = cfg.agents
    car_ids = _car_ids(agents, task)
    built = {car: _instantiate(agents[car], f"agents.{car}") for car in car_ids}
    learners = [car for car, obj in built.items() if _is_learner(obj)]
    if len(learners) != 1:
        names = ", ".join(f"{car}={_kind(obj)}" for car, obj in built.items())
        raise ConfigError(f"agents: exactly one car must map to a learning agent (got {names}); map the others to "
                          "ftg, pure_pursuit, random, constant or frozen")
    learner = learners[0]
    learner_index = int(learner.split("_")[1])
    # Runtime objects join at the call site (instantiate would turn them back into dicts).
    make_env_config = _instantiate(cfg.env, "env", _partial_=True)
    try:
        env_config = make_env_config(task=task, vehicle=vehicle, learner_car=learner_index)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env: {err}") from None
    env_config = _plain(env_config, "env")
    try:
        track = load_map(resolve_map_path(env_config.map_path))
    except MapError as err:
        raise ConfigError(f"env.map_path: {err}") from None
    others = [car for car in car_ids if car != learner]
    make_opponents = _opponent_factory([built[car] for car in others], others, track, env_config)
    train_env_config = env_config
    if training.train_max_steps is not None:  # shorter training episodes; evaluation keeps the task's max_steps
        task_cut = dataclasses.replace(env_config.task, max_steps=min(training.train_max_steps, task.max_steps))
        train_env_config = dataclasses.replace(env_config, task=task_cut)
    try:
        env = VectorRacingEnv(train_env_config, num_envs=training.num_envs, seed=seed, track=track,
                              opponents=make_opponents(training.num_envs, seed))
    except ValueError as err:
        raise ConfigError(f"env: {err}") from None
    try:
        agent = built[learner](observation_space=env.single_observation_space,
                               action_space=env.single_action_space, num_envs=training.num_envs,
                               device=str(cfg.device), seed=seed)
    except IncompatibleSpaceError as err:
        raise ConfigError(f"agents.{learner}: {err}") from None

    def make_eval_env(num_envs: int) -> VectorRacingEnv:
        return VectorRacingEnv(env_config, num_envs=num_envs, seed=training.eval_seed, track=track,
                               opponents=make_opponents(num_envs, training.eval_seed), normalizer=env.normalizer,
                               render_mode="rgb_array")

    task_core = env.batch.core.task
    evaluation = EvaluationLoop(make_eval_env, agent, learner, task_core.outcome_names, task_core.success_outcome,
                                training.eval_episodes, training.eval_num_envs, training.eval_seed)
    hparams = _flat_hparams(cfg)
    metadata = {"config_hash": config_hash(cfg), "seed": seed, "agent": type(agent).__name__, "learner": learner}
    loop = TrainingLoop(env, agent, learner, training, logger_config, run_dir, evaluation,
                        task_core.outcome_names, task_core.success_outcome, metadata, hparams, seed)
    return Run(loop, env, agent, learner, run_dir, make_eval_env)


def _instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with the constructor's own complaint as a ConfigError naming ``key``."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else cause.__class__.__name__
        raise ConfigError(f"{key}: {message}") from None


def _car_ids(agents: DictConfig, task: Any) -> list[str]:
    """car_0 ... car_{N-1} for the task's N cars; the mapping must name exactly those."""
    num_cars = int(getattr(task, "num_cars", 2))  # gaplock is always two cars
    expected = [f"car_{i}" for i in range(num_cars)]
    given = [str(k) for k in agents.keys()]
    if sorted(given) != sorted(expected):
        raise ConfigError(f"agents: this task has {len(expected)} car(s), so map exactly {', '.join(expected)}; "
                          f"got {', '.join(given) or 'none'}")
    return expected


def _is_learner(obj: Any) -> bool:
    return isinstance(obj, partial) and isinstance(obj.func, type) and issubclass(obj.func, Agent)


def _kind(obj: Any) -> str:
    if _is_learner(obj):
        return obj.func.__name__
    if isinstance(obj, DriverConfig):
        return obj.kind
    return type(obj).__name__


def _opponent_factory(configs: list[Any], cars: list[str], track, env_config: EnvConfig) -> Callable:
    """A function (num_envs, seed) -> drivers of the other cars, so training and evaluation get their own."""
    for car, config in zip(cars, configs, strict=True):
        if not isinstance(config, (DriverConfig, FrozenAgentConfig)):
            raise ConfigError(f"agents.{car}: expected a driver (ftg, pure_pursuit, random, constant) or a frozen "
                              f"checkpoint, got {_kind(config)}")

    vehicle = resolve_vehicle(env_config.vehicle)

    def make(num_envs: int, seed: int) -> list:
        beams = env_config.sim.lidar.beam_angles()
        seeds = np.random.SeedSequence(seed).spawn(len(configs))
        drivers = []
        for car, config, child in zip(cars, configs, seeds, strict=True):
            if isinstance(config, FrozenAgentConfig):
                drivers.append(_frozen_driver(config, car, env_config, num_envs))
            else:
                drivers.append(build_driver(config, vehicle, beams, num_envs, int(child.generate_state(1)[0]),
                                            track))
        return drivers

    return make


def _frozen_driver(config: FrozenAgentConfig, car: str, env_config: EnvConfig, num_envs: int) -> PolicyDriver:
    """A finished run's agent as a driver: same observation layout, its own normaliser, deterministic."""
    run_dir = Path(config.run_dir)
    saved = run_dir / RESOLVED_CONFIG
    if not saved.is_file():
        raise ConfigError(f"agents.{car}.run_dir: {run_dir} is not a run directory (no {RESOLVED_CONFIG})")
    frozen_cfg = OmegaConf.load(saved)
    agent_id = config.agent_id or _learner_of(frozen_cfg)
    try:
        states, _ = load_checkpoint(run_dir / "checkpoints" / config.checkpoint)
    except CheckpointError as err:
        raise ConfigError(f"agents.{car}.checkpoint: {err}") from None
    loop_state = states.get("loop", {})
    probe = VectorRacingEnv(env_config, num_envs=1, seed=0)
    obs_space, action_space = probe.single_observation_space, probe.single_action_space
    factory = instantiate(frozen_cfg.agents[agent_id])
    agent = factory(observation_space=obs_space, action_space=action_space, num_envs=num_envs, device="cpu", seed=0)
    try:
        agent.load_state_dict(states[agent_id])
    except (KeyError, RuntimeError) as err:
        raise ConfigError(f"agents.{car}: the checkpoint of {run_dir} does not fit this car's observations or "
                          f"actions ({err.__class__.__name__}: {str(err).splitlines()[0]})") from None
    normalize = None
    if loop_state.get("normalizer") is not None:
        normalize = RunningNormalizer(obs_space.shape)
        normalize.load_state_dict(loop_state["normalizer"])
        normalize.eval()

    def policy(obs: np.ndarray) -> np.ndarray:
        return agent.act(normalize(obs) if normalize is not None else obs, deterministic=config.deterministic)

    return PolicyDriver(policy, probe.batch.core.to_physical)


def _learner_of(cfg: DictConfig) -> str:
    for car in cfg.agents:
        node = cfg.agents[car]
        if node.get("_partial_"):
            return str(car)
    raise ConfigError("the frozen run's config maps no car to a learning agent")


def _plain(obj: Any, key: str) -> Any:
    """Instantiated configs with lists turned into the tuples the frozen dataclasses declare."""
    if not dataclasses.is_dataclass(obj):
        return obj
    hints = typing.get_type_hints(type(obj))
    changes = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = _plain(value, f"{key}.{f.name}")
        elif isinstance(value, list) and "tuple" in str(hints[f.name]):
            changes[f.name] = _to_tuple(value)
    try:
        return dataclasses.replace(obj, **changes) if changes else obj
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {err}") from None


def _to_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_to_tuple(v) for v in value)
    return value


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """agent, task, env and training settings as flat ``group/key`` pairs for TensorBoard's HParams plugin."""
    container = OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {"seed": cfg.seed}
    for group in ("agent", "opponent", "task", "training", "env"):
        _flatten(container.get(group), group, flat)
    return flat


def _flatten(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("_partial_", "_recursive_", "_convert_"):
                continue
            _flatten(value, f"{prefix}/{key}", out)
    else:
        out[prefix] = node


def _attach_run_log(run_dir: Path) -> None:
    """A resumed run appends its log to the run's own train.log."""
    handler = logging.FileHandler(run_dir / "train.log", mode="a")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)


def main_with_clear_errors(cfg: DictConfig) -> float:
    """``train`` that reports a config problem as one line on stderr (exit code 2) instead of a traceback."""
    try:
        return train(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def console_main() -> None:
    """The ``mar-train`` console script: ``scripts/train.py`` without the path."""
    import hydra

    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")(main_with_clear_errors)()
