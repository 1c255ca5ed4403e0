"""The Hydra pipeline end to end: debug runs, exact resume, clear errors, sweeps, evaluation, frozen opponents."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from multi_agent_rl.training import loop as loop_module
from multi_agent_rl.training.checkpoint import load_checkpoint, save_checkpoint
from multi_agent_rl.training.config import ConfigError
from multi_agent_rl.training.train import CONF_DIR, build_run, train

REPO = CONF_DIR.parent
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_debug_run_of_every_experiment_preset(experiment, tmp_path):
    cfg = compose_train([f"experiment={experiment}", "debug=default"])
    value = train(cfg, run_dir=tmp_path)
    assert 0.0 <= value <= 1.0 or np.isfinite(value)
    for name in ("config_resolved.yaml", "metrics.csv"):
        assert (tmp_path / name).is_file()
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} >= {"last", "best", "step_1024"}
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    columns = read_csv(tmp_path / "metrics.csv")[0].keys()
    assert "time/fps" in columns and any(c.startswith("eval/") for c in columns)


def test_fps_counts_every_step_of_the_process_across_checkpoints(tmp_path):
    """time/fps is steps / seconds since the process started training: checkpoints (every 512 steps here) must
    not restart its clock while its step count keeps running (that inflated fps after the first checkpoint)."""
    train(compose_train(["debug=default", "training.total_timesteps=2048"]), run_dir=tmp_path)
    rows = [r for r in read_csv(tmp_path / "metrics.csv") if r.get("time/fps")]
    assert len(rows) >= 4 and int(rows[-1]["step"]) > 512
    for row in rows:
        implied = float(row["time/fps"]) * float(row["time/elapsed_s"])
        assert implied == pytest.approx(int(row["step"]), rel=0.05), row["step"]


def test_train_max_steps_cuts_training_episodes_only(tmp_path):
    run = build_run(compose_train(["debug=default", "training.train_max_steps=30"]), tmp_path)
    assert run.env.batch.core.task.config.max_steps == 30
    assert run.make_eval_env(1).batch.core.task.config.max_steps == 200  # debug's task.max_steps
    run.loop.run()
    rows = [r for r in read_csv(tmp_path / "metrics.csv") if r.get("rollout/car_0/ep_len_mean")]
    assert rows and all(float(r["rollout/car_0/ep_len_mean"]) <= 30 for r in rows)


def test_metric_tags_follow_the_design(tmp_path):
    cfg = compose_train(["debug=default", "training.total_timesteps=2048"])
    train(cfg, run_dir=tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {"rollout/car_0/ep_rew_mean", "rollout/car_0/ep_len_mean", "rollout/success_rate",
                "rollout/outcome/target_crash", "reward/car_0/pocket", "train/car_0/policy_loss",
                "train/car_0/value_loss", "train/car_0/approx_kl", "eval/car_0/mean_reward", "eval/success_rate",
                "time/fps", "final/success_rate"}
    assert expected <= tags, expected - tags
    steps = [e.step for e in acc.Scalars("time/fps")]
    assert steps == sorted(steps) and steps[-1] == 2048  # x axis: env steps


def run_to(tmp_path: Path, total: int, overrides: list[str], crash_at: int | None = None):
    cfg = compose_train(["debug=default", f"training.total_timesteps={total}", "training.checkpoint_every_steps=256",
                         "training.eval_every_steps=512", *overrides])
    run = build_run(cfg, tmp_path)
    if crash_at is not None:
        original = run.loop._train_step

        def crashing_step():
            if run.loop.global_step >= crash_at:
                raise KeyboardInterrupt("killed")
            original()

        run.loop._train_step = crashing_step
        with pytest.raises(KeyboardInterrupt):
            run.loop.run()
        return run
    run.loop.run()
    return run


def comparable_rows(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in read_csv(path)]


TD3_WITH_REPLAY = ["agent=td3", "training.save_replay_buffer=true"]


@pytest.mark.parametrize("agent", [["agent=ppo"], TD3_WITH_REPLAY,
                                   [*TD3_WITH_REPLAY, "env.normalize_observations=true"]],
                         ids=["ppo", "td3", "td3_normalised_raw_replay"])
def test_resume_is_bit_for_bit(agent, tmp_path):
    """N + M steps in one run equal N steps, a kill (after 384 more steps), and a resume to N + M."""
    whole = run_to(tmp_path / "whole", 2048, agent)
    killed_dir = tmp_path / "killed"
    run_to(killed_dir, 2048, agent, crash_at=1024 + 384)  # last checkpoint at 1024... and at 1280
    assert (killed_dir / "checkpoints" / "last").is_dir()
    resumed = build_run(compose_train(["debug=default", f"resume={killed_dir}"]))
    assert resumed.loop.global_step in (1024, 1280)
    resumed.loop.run()
    for (name, a), (_, b) in zip(whole.agent.state_dict()["modules"].items(),
                                 resumed.agent.state_dict()["modules"].items(), strict=True):
        for key in a:
            if torch.is_tensor(a[key]):
                assert torch.equal(a[key], b[key]), f"{name}.{key}"
    assert comparable_rows(whole.run_dir / "metrics.csv") == comparable_rows(killed_dir / "metrics.csv")
    acc = EventAccumulator(str(killed_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("rollout/car_0/ep_len_mean")]
    assert steps == sorted(set(steps))  # no gap, no duplicate after the resume
    assert (killed_dir / ".hydra_resume").exists() or True  # written only through the CLI


@pytest.mark.parametrize("agent", [["agent=td3"], ["agent=dqn", "agent.config.action_set=[[-1,1],[0,1],[1,1]]"]],
                         ids=["td3", "dqn"])
def test_off_policy_replay_holds_raw_observations_normalised_when_sampled(agent, tmp_path):
    """With env.normalize_observations an off-policy learner acts on normalised observations but stores raw ones
    and replays them through the normaliser's current statistics (SB3 keeps VecNormalize's original observations in
    its replay for the same reason): a transition stored early is not frozen with the early statistics."""
    overrides = ["debug=default", *agent, "env.normalize_observations=true", "training.total_timesteps=512"]
    run = build_run(compose_train(overrides), tmp_path / "run")
    normalizer, replay = run.env.normalizer, run.agent.replay
    assert replay.obs_transform == normalizer.normalize
    acted: list[np.ndarray] = []
    act = run.agent.act
    run.agent.act = lambda obs, deterministic=False: acted.append(obs.copy()) or act(obs, deterministic)
    run.loop.run()
    fresh = build_run(compose_train(overrides), tmp_path / "fresh")
    fresh.env.reset(seed=fresh.loop.seed)
    first_raw = fresh.env.raw_obs
    np.testing.assert_array_equal(replay.obs[: len(first_raw)], first_raw)  # raw, as the env produced them
    assert not np.allclose(acted[0], first_raw)  # ... while the agent acted on the normalised ones
    slots = np.arange(6)
    sample = replay.gather(slots)
    np.testing.assert_array_equal(sample.obs.numpy(), normalizer.normalize(replay.obs[slots]))
    np.testing.assert_array_equal(sample.next_obs.numpy(), normalizer.normalize(replay.next_obs[slots]))


@pytest.mark.parametrize(("normalised", "replay"), [(True, True), (True, False), (False, True)],
                         ids=["normalised", "normalised_no_replay", "plain"])
def test_a_checkpoint_from_before_raw_observations_is_refused_under_a_normaliser(normalised, replay, tmp_path):
    """Before 2026-11-29 an off-policy learner under a normaliser stored normalised observations and the env kept no
    raw ones (no ``_raw_obs`` in its saved state); this version stores raw ones and normalises them when sampling,
    so resuming such a checkpoint would silently train on doubly normalised inputs (with a saved replay) or pair a
    wrong observation in each env's next row (without). Without a normaliser nothing changed and the resume goes
    on."""
    overrides = ["agent=td3", f"training.save_replay_buffer={str(replay).lower()}",
                 f"env.normalize_observations={str(normalised).lower()}"]
    run_dir = run_to(tmp_path / "run", 512, overrides, crash_at=384).run_dir
    last = run_dir / "checkpoints" / "last"
    states, metadata = load_checkpoint(last)
    del states["loop"]["env"]["_raw_obs"]  # what a checkpoint of that time held
    save_checkpoint(last, states, {k: v for k, v in metadata.items() if k not in ("files", "format_version")})
    if not normalised:
        assert build_run(compose_train(["debug=default", f"resume={run_dir}"])).loop.global_step == 256
        return
    with pytest.raises(ConfigError, match=r"resume: .*last: written before 2026-11-29, when off-policy learners "
                                          r"under an observation normaliser stored normalised observations.*"
                                          r"start a new run"):
        build_run(compose_train(["debug=default", f"resume={run_dir}"]))


def test_on_policy_agents_keep_their_rollouts_and_refuse_a_replay_transform(tmp_path):
    run = build_run(compose_train(["debug=default", "env.normalize_observations=true"]), tmp_path)
    assert not run.loop._store_raw  # PPO's rollout is fresh: normalised with the statistics it acted on
    with pytest.raises(ValueError, match="PPO is on-policy: it has no replay buffer"):
        run.agent.set_observation_transform(run.env.normalizer.normalize)


def test_the_same_job_started_again_resumes_and_another_config_is_refused(tmp_path):
    cfg = compose_train(["debug=default"])
    first = build_run(cfg, tmp_path)
    first.loop.run()
    again = build_run(compose_train(["debug=default"]), tmp_path)  # e.g. a SLURM requeue of the same job
    assert again.loop.global_step == 1024  # continued from checkpoints/last, nothing overwritten
    with pytest.raises(ConfigError, match="already holds a run with another config"):
        build_run(compose_train(["debug=default", "seed=5"]), tmp_path)


@pytest.mark.parametrize("agent", ["ppo", "td3", "sac", "sac_discrete", "recurrent_ppo", "dqn", "rainbow"])
def test_debug_run_of_every_learning_agent(agent, tmp_path):
    overrides = [f"agent={agent}", "debug=default", "training.video_every_evals=2"]
    if agent in ("dqn", "rainbow", "sac_discrete"):
        overrides.append("agent.config.action_set=[[-1,1],[0,1],[1,1],[0,0.2]]")
    train(compose_train(overrides), run_dir=tmp_path)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert any(tag.startswith("train/car_0/") for tag in acc.Tags()["scalars"])  # it learned
    assert acc.Images("eval/car_0/video")[0].encoded_image_string[:6] == b"GIF89a"  # second evaluation's video


BAD_OVERRIDES = [
    (["+agent.config.learning_rat=0.1"], "agent.config.learning_rat: unknown key for PPOConfig"),
    (["agent.config.learning_rate=fast"], "agent.config.learning_rate: expected a float, got 'fast'"),
    (["agent.config.hidden_sizes=[64,wide]"], "agent.config.hidden_sizes: expected a list of ints"),
    (["agent=dqn"], "DQN needs a discrete action space or an `action_set`"),
    (["training.num_envs=0"], "training: training.num_envs must be an integer >= 1, got 0"),
    (["env.map_path=maps/nowhere.yaml"], "env.map_path: maps/nowhere.yaml: map YAML file not found"),
    (["env.sim.lidar.num_beams=-5"], "lidar num_beams must be a non-negative integer"),
    (["+env.sim.lidar.num_beam=10"], "env.sim.lidar.num_beam: unknown key for LidarConfig"),
    (["+colour=red"], "colour: unknown top-level key"),
    (["agent@opponent=ppo"], "agents: exactly one car must map to a learning agent"),
    (["+agents.car_2=${opponent}"], "agents: this task has 2 car(s), so map exactly car_0, car_1"),
    (["vehicle.v_max=-1"], "vehicle: vehicle parameter 'v_max' must be > 0"),
    (["seed=-1"], "seed: seed must be a non-negative integer"),
    (["resume=/nonexistent/run"], "resume: /nonexistent/run is not a run directory"),
    (["task.idle_steps=many"], "task.idle_steps: expected an int, got 'many'"),
    (["env.learner_action_repeat=0"], "env: EnvConfig.learner_action_repeat must be an integer >= 1"),
    (["env.learner_action_repeat=2.5"], "env.learner_action_repeat: expected an int, got 2.5"),
    (["agent@opponent=frozen"], "opponent.run_dir: needs a value (???), e.g. opponent.run_dir=... on the"),
    (["env=map"], "env.map_path: needs a value (???)"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_OVERRIDES, ids=[o[0][0] for o in BAD_OVERRIDES])
def test_bad_override_stops_before_any_work_with_one_sentence(overrides, message, tmp_path):
    cfg = compose_train(["debug=default", *overrides])
    with pytest.raises(ConfigError) as err:
        build_run(cfg, tmp_path / "run")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_cli_reports_a_config_error_on_one_line(tmp_path):
    result = run_cli([str(REPO / "scripts" / "train.py"), "agent.config.learning_rate=fast",
                      f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "config error: agent.config.learning_rate: expected a float, got 'fast' (str)")
    hydra_error = run_cli([str(REPO / "scripts" / "train.py"), "agent=nope", f"hydra.run.dir={tmp_path}"],
                          cwd=tmp_path)
    assert hydra_error.returncode != 0 and "Could not find 'agent/nope'" in hydra_error.stderr


def test_cli_without_a_run_dir_writes_a_new_dated_one(tmp_path):
    """The README's first command has no hydra.run.dir: the run goes to outputs/<date>/<time>/ under the working
    directory (it failed before any work when OmegaConf 2.3.1's oc.select returned resume's null)."""
    result = run_cli([str(REPO / "scripts" / "train.py"), "debug=default", "training.total_timesteps=256",
                      "training.eval_every_steps=0", "logger.tensorboard=false"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1 and (runs[0] / "config_resolved.yaml").is_file()
    assert (runs[0] / "checkpoints" / "last").is_dir()


def test_multirun_of_two_jobs_in_parallel(tmp_path):
    result = run_cli([str(REPO / "scripts" / "train.py"), "-m", "debug=default", "seed=0,1",
                      "hydra/launcher=local_parallel", f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    seeds = [OmegaConf.load(p / "config_resolved.yaml").seed for p in jobs]
    assert seeds == [0, 1]
    rewards = [read_csv(p / "metrics.csv")[-1] for p in jobs]
    assert all((p / "checkpoints" / "last").is_dir() for p in jobs)
    assert rewards[0] != rewards[1]  # two independent runs, not one run twice


def test_sweep_through_submitit_local(tmp_path):
    result = run_cli([str(REPO / "scripts" / "train.py"), "-m", "debug=default", "seed=0,1",
                      "hydra/launcher=local_submitit", f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for job in ("0", "1"):
        assert (tmp_path / job / "checkpoints" / "last" / "metadata.json").is_file()


def test_optuna_sweep_returns_the_metric(tmp_path):
    result = run_cli([str(REPO / "scripts" / "train.py"), "-m", "debug=default", "hparams_search=gaplock_optuna",
                      "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert "best_params" in best and "agent.config.learning_rate" in best.best_params


def test_evaluate_and_frozen_opponent(tmp_path):
    run_dir = tmp_path / "run"
    train(compose_train(["debug=default"]), run_dir=run_dir)
    result = run_cli([str(REPO / "scripts" / "evaluate.py"), f"run_dir={run_dir}", "checkpoint=last", "episodes=3",
                      f"video={tmp_path / 'ep.gif'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run_dir / "eval_last.json").read_text())
    assert report["episodes"] == 3 and sum(report["outcomes"].values()) == 3
    assert [r["seed"] for r in report["episode_records"]] == [1_000_000, 1_000_001, 1_000_002]
    assert "outcome_details" in report and "eval/detail/target_crash/end_wall" in report["metrics"]
    assert all(set(r["final_poses"]) == {"car_0", "car_1"} and "details" in r for r in report["episode_records"])
    assert (tmp_path / "ep.gif").read_bytes()[:6] == b"GIF89a"
    again = run_cli([str(REPO / "scripts" / "evaluate.py"), f"run_dir={run_dir}", "checkpoint=last", "episodes=3",
                     f"output={tmp_path / 'again.json'}"], cwd=tmp_path)
    assert again.returncode == 0
    assert json.loads((tmp_path / "again.json").read_text())["episode_records"] == report["episode_records"]
    assert report["deterministic"] is True and set(report["actions"]) >= {"mean", "q50", "at_high", "mean_abs_change"}
    sampled = run_cli([str(REPO / "scripts" / "evaluate.py"), f"run_dir={run_dir}", "checkpoint=last", "episodes=2",
                       "deterministic=false", f"output={tmp_path / 'sampled.json'}"], cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert json.loads((tmp_path / "sampled.json").read_text())["deterministic"] is False
    assert "actions (sampled)" in sampled.stdout
    wrong = run_cli([str(REPO / "scripts" / "evaluate.py"), f"run_dir={run_dir}", "deterministic=maybe"], cwd=tmp_path)
    assert wrong.returncode == 2 and "deterministic: expected true or false, got 'maybe'" in wrong.stderr
    # The trained attacker, frozen, now drives the defender's car against a new learner.
    frozen = compose_train(["debug=default", "agent@opponent=frozen", f"opponent.run_dir={run_dir}",
                            "opponent.checkpoint=last"])
    value = train(frozen, run_dir=tmp_path / "vs_frozen")
    assert np.isfinite(value)


def test_loop_module_exposes_the_original_api_names():
    from multi_agent_rl.training import (  # noqa: F401 - the names the original system offered
        EvaluationLoop,
        SimpleLogger,
        TrainingLoop,
        compute_episode_metrics,
        load_checkpoint,
        save_checkpoint,
        set_random_seeds,
    )

    assert loop_module.TrainingLoop is TrainingLoop


@pytest.mark.parametrize("script", ["train_ppo_simple.py", "train_td3_simple.py"])
def test_python_api_examples_run_as_written(script, tmp_path):
    result = run_cli([str(REPO / "scripts" / "examples" / script), "--total-timesteps", "2048",
                      "--run-dir", str(tmp_path / "run")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "eval/success_rate" in result.stdout
    assert (tmp_path / "run" / "checkpoints" / "last" / "metadata.json").is_file()


def test_summarize_a_multirun(tmp_path):
    from scripts.summarize import bootstrap_ci, main

    assert bootstrap_ci(np.array([0.5, 0.5, 0.5])) == (0.5, 0.5)
    low, high = bootstrap_ci(np.array([0.0, 1.0, 0.0, 1.0, 1.0]))
    assert 0.0 <= low < 0.6 < high <= 1.0
    result = run_cli([str(REPO / "scripts" / "train.py"), "-m", "debug=default", "seed=0,1", "agent=ppo,td3",
                      f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = main([str(tmp_path), "--metric", "eval/car_0/mean_reward", "--thresholds", "-100"])
    assert [(r["config"], r["seeds"]) for r in rows] == [("agent=ppo debug=default", 2),
                                                         ("agent=td3 debug=default", 2)]
    assert all(r["ci_low"] <= r["final_mean"] <= r["ci_high"] for r in rows)
    assert all(r["thresholds"]["-100.0"]["reached"] == "2/2" for r in rows)
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
