"""The config tree: every YAML composes and instantiates; every YAML mirrors its dataclass one for one."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from multi_agent_rl.agents import dqn, ppo, rainbow, recurrent_ppo, sac, sac_discrete, td3
from multi_agent_rl.envs import ActionConfig, EnvConfig, ObservationConfig, RenderConfig
from multi_agent_rl.envs.drivers import DriverConfig
from multi_agent_rl.sim import F1TENTH, LIMO, LidarConfig, SimConfig
from multi_agent_rl.tasks.gaplock import GAPLOCK_REWARD_PRESETS, GaplockConfig
from multi_agent_rl.tasks.racing import RacingConfig, RacingRewardConfig
from multi_agent_rl.training.loop import LoggerConfig, TrainingConfig
from multi_agent_rl.training.train import CONF_DIR, build_run

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    for group in ("env", "task", "vehicle", "agent", "training", "logger", "debug", "experiment", "hparams_search")
}
LEARNERS = ["ppo", "td3", "sac", "sac_discrete", "dqn", "rainbow", "recurrent_ppo"]
DRIVERS = ["ftg", "pure_pursuit", "random", "constant"]
RACETRACK = CONF_DIR.parent.parent / "shared" / "racetracks" / "Spielberg" / "Spielberg_map.yaml"


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def yaml_node(path: str):
    return OmegaConf.load(CONF_DIR / path)


def test_every_option_is_covered_below():
    assert set(GROUP_OPTIONS["agent"]) == set(LEARNERS) | set(DRIVERS) | {"frozen"}
    assert {"gaplock_ppo", "gaplock_ppo_fullrate", "gaplock_td3", "gaplock_sac", "racing_ppo"} <= set(
        GROUP_OPTIONS["experiment"])
    assert set(GROUP_OPTIONS["env"]) == {"line_track", "line_track_wide", "map"}


# ---------------------------------------------------------------------------- composition and instantiation


@pytest.mark.parametrize("overrides", [
    *[[f"agent={a}"] for a in ["ppo", "td3", "sac", "recurrent_ppo"]],
    ["agent=dqn", "agent.config.action_set=[[-1,1],[0,1],[1,1]]"],
    ["agent=rainbow", "agent.config.action_set=[[-1,1],[0,1],[1,1]]"],
    ["agent=sac_discrete", "agent.config.action_set=[[-1,1],[0,1],[1,1]]"],
    *[[f"agent@opponent={d}"] for d in DRIVERS],
    *[[f"env={e}"] for e in ["line_track", "line_track_wide"]],
    ["env=map", "env.map_path=maps/line_track_wide"],
    *[[f"task={t}"] for t in GROUP_OPTIONS["task"]],
    *[[f"vehicle={v}"] for v in GROUP_OPTIONS["vehicle"]],
    *[[f"logger={x}"] for x in GROUP_OPTIONS["logger"]],
    *[[f"training={x}"] for x in GROUP_OPTIONS["training"]],
    *[[f"debug={x}"] for x in GROUP_OPTIONS["debug"]],
    *[[f"experiment={x}"] for x in GROUP_OPTIONS["experiment"]],
], ids=lambda o: " ".join(o))
def test_option_composes_and_builds(overrides, tmp_path):
    cfg = compose_train([*overrides, "training.num_envs=2", "training.eval_num_envs=2", "training.eval_episodes=2"])
    run = build_run(cfg, tmp_path)
    assert run.agent.num_envs == 2
    assert (tmp_path / "config_resolved.yaml").is_file()


def flat(node, prefix: str = "") -> dict:
    if not isinstance(node, dict):
        return {prefix: node}
    out = {}
    for key, value in node.items():
        out.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def test_fullrate_preset_is_gaplock_ppo_with_the_defender_at_100_hz():
    """Only the rates differ, and they keep gaplock_ppo's decision time (0.1 s), timeout (50 s), idle stop (1.2 s)
    and step cost per decision."""
    old, new = (flat(OmegaConf.to_container(compose_train([f"experiment={e}"]), resolve=True))
                for e in ("gaplock_ppo", "gaplock_ppo_fullrate"))
    changed = {k: (old[k], new[k]) for k in old if old[k] != new[k]}
    assert set(new) == set(old)
    assert changed == {"env.sim.action_repeat": (10, 1), "env.learner_action_repeat": (1, 10),
                       "task.max_steps": (500, 5000), "task.idle_steps": (12, 120),
                       "task.reward.step_cost": (-0.001, -0.0001)}
    physics_per_decision = new["env.learner_action_repeat"] * new["env.sim.action_repeat"]
    assert physics_per_decision == old["env.sim.action_repeat"]
    assert new["task.max_steps"] == old["task.max_steps"] * old["env.sim.action_repeat"]
    assert new["task.idle_steps"] == old["task.idle_steps"] * old["env.sim.action_repeat"]
    assert new["task.reward.step_cost"] * physics_per_decision == pytest.approx(old["task.reward.step_cost"])
    assert new["task.reward.shaping_gamma"] == 1.0  # the potential terms telescope over a decision unscaled


def test_hparams_search_composes_with_its_sweeper():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=gaplock_optuna"], return_hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"agent.config.learning_rate", "agent.config.ent_coef",
                                             "agent.config.gae_lambda"}


@pytest.mark.parametrize("launcher", ["local_parallel", "local_submitit", "slurm", "joblib", "submitit_local"])
def test_launcher_presets_compose(launcher):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert "Launcher" in cfg.hydra.launcher._target_


@pytest.mark.skipif(not RACETRACK.is_file(), reason="shared race tracks not present")
def test_env_map_takes_a_real_track(tmp_path):
    cfg = compose_train(["task=racing", "vehicle=f1tenth", "env=map", f"env.map_path={RACETRACK}",
                         "training.num_envs=2"])
    run = build_run(cfg, tmp_path)
    assert run.env.batch.core.track.name == "Spielberg"


# ---------------------------------------------------------------------------- YAML == dataclass defaults


def assert_mirrors(node, cls, skip=(), defaults=None, runtime=()):
    """Keys equal the dataclass fields (but ``runtime`` ones, passed at the call site) and values equal its
    defaults (nested dataclass nodes are compared on their own; ``skip`` values differ on purpose)."""
    defaults = defaults or cls()
    plain = {k: v for k, v in OmegaConf.to_container(node, resolve=False).items() if not k.startswith("_")}
    assert set(plain) == {f.name for f in dataclasses.fields(cls)} - set(runtime), cls.__name__
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in runtime:
            continue
        want = getattr(defaults, f.name)
        have = plain[f.name]
        if dataclasses.is_dataclass(want) or isinstance(have, dict):
            continue
        if isinstance(want, tuple):
            want = [list(w) if isinstance(w, tuple) else w for w in want]
        assert have == want, f"{cls.__name__}.{f.name}: YAML {have!r} != dataclass {want!r}"


@pytest.mark.parametrize(("name", "module", "cls"), [
    ("ppo", ppo, ppo.PPOConfig), ("td3", td3, td3.TD3Config), ("sac", sac, sac.SACConfig),
    ("dqn", dqn, dqn.DQNConfig), ("rainbow", rainbow, rainbow.RainbowConfig),
    ("recurrent_ppo", recurrent_ppo, recurrent_ppo.RecurrentPPOConfig),
    ("sac_discrete", sac_discrete, sac_discrete.SACDiscreteConfig),
])
def test_agent_yaml_mirrors_its_dataclass(name, module, cls):
    node = yaml_node(f"agent/{name}.yaml")
    assert node._target_.endswith(name.replace("_", "").lower()) or node._partial_
    assert_mirrors(node.config, cls, skip=("total_timesteps",))
    if "total_timesteps" in node.config:
        assert OmegaConf.to_container(node.config)["total_timesteps"] == "${training.total_timesteps}"
    assert all("#" in line for line in (CONF_DIR / f"agent/{name}.yaml").read_text().splitlines()
               if line.startswith("  ") and ":" in line and "_target_" not in line), "every field has a comment"


def test_env_yaml_mirrors_its_dataclasses():
    node = yaml_node("env/map.yaml")
    # The task, the vehicle, the learner's car and the drivers come from their own groups at the call site.
    assert_mirrors(node, EnvConfig, skip=("map_path",), runtime=("vehicle", "task", "learner_car", "opponents"))
    assert_mirrors(node.sim, SimConfig)
    assert_mirrors(node.sim.lidar, LidarConfig)
    assert_mirrors(node.observation, ObservationConfig)
    assert_mirrors(node.action, ActionConfig)
    assert_mirrors(node.render, RenderConfig)


def test_task_yamls_mirror_their_dataclasses_and_presets():
    gaplock = yaml_node("task/gaplock.yaml").task
    assert_mirrors(gaplock, GaplockConfig, skip=("reward",))
    for preset in ("default", "sparse", "dense", "block", "wall_ahead"):
        name = "gaplock" if preset == "default" else f"gaplock_{preset}"
        cfg = compose_train([f"task={name}"])
        reward = instantiate(cfg.task.reward)
        assert reward == GAPLOCK_REWARD_PRESETS[preset], preset
        assert cfg.task.reward_preset == preset
    racing = yaml_node("task/racing.yaml").task
    assert_mirrors(racing, RacingConfig, skip=("reward",))
    assert_mirrors(racing.reward, RacingRewardConfig)


@pytest.mark.parametrize(("name", "preset"), [("f1tenth", F1TENTH), ("limo", LIMO)])
def test_vehicle_yaml_equals_the_preset(name, preset):
    assert instantiate(compose_train([f"vehicle={name}"]).vehicle) == preset


def test_training_logger_and_driver_yamls_mirror_their_dataclasses():
    assert_mirrors(yaml_node("training/default.yaml"), TrainingConfig)
    assert_mirrors(yaml_node("logger/default.yaml"), LoggerConfig)
    for name in DRIVERS:
        node = yaml_node(f"agent/{name}.yaml")
        assert_mirrors(node, DriverConfig, skip=("kind", "pure_pursuit", "speed_mps", "steer_rad"))
        assert node.kind == name
