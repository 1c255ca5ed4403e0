"""Closed-loop environment throughput: simulator + observations + FTG defender + reward, random attacker.

    python scripts/bench_env.py --task gaplock --envs 64 --json
    python scripts/bench_env.py --task gaplock --envs 1 --beams 108 --interface single
    python scripts/bench_env.py --task gaplock --envs 16 --action-repeat 10          # every car at 10 Hz
    python scripts/bench_env.py --task gaplock --envs 16 --learner-repeat 10         # the learner at 10 Hz, FTG 100 Hz

Interfaces: "vector" (VectorRacingEnv, E copies in one simulator, same-step autoreset; the default), "single"
(SingleAgentEnv, one copy, reset by the loop; needs --envs 1) and "parallel" (the PettingZoo RacingEnv, one
copy, every car's action given; the defender's action comes from FTG on its scan). The attacker's actions are
uniform in its action space, drawn every step from a seeded generator. Timing starts after a warm-up (numba
compilation, caches). The last line printed is JSON with ``env_steps_per_s`` (copies x steps per wall-clock
second: learner decisions per second for the vector and single interfaces), ``decisions_per_s`` (the same) and
``physics_steps_per_s`` (copies x physics steps of 0.01 s the simulator advanced per second: sim steps x
``--action-repeat``; with ``--learner-repeat`` R a decision is up to R sim steps, fewer when every copy's episode
ended sooner).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numba
import numpy as np

from multi_agent_rl.envs import EnvConfig, RacingEnv, SingleAgentEnv, VectorRacingEnv, racing_env_config
from multi_agent_rl.envs.drivers import FTGDriver, ftg_config_for


def make_config(task: str, beams: int, action_repeat: int = 1, learner_repeat: int = 1) -> EnvConfig:
    """The benchmark's env; with an action repeat the task's step limits keep their 100 Hz durations."""
    config = EnvConfig() if task == "gaplock" else racing_env_config(num_cars=2)
    lidar = replace(config.sim.lidar, num_beams=beams)
    obs_beams = min(config.observation.lidar_beams, beams)
    task_config = config.task
    if action_repeat > 1 and task == "gaplock":  # as experiment=gaplock_ppo: 500 / 12 env steps of 0.1 s
        task_config = replace(task_config, max_steps=task_config.max_steps // action_repeat,
                              idle_steps=task_config.idle_steps // action_repeat)
    return replace(
        config,
        sim=replace(config.sim, lidar=lidar, action_repeat=action_repeat),
        observation=replace(config.observation, lidar_beams=obs_beams),
        task=task_config,
        learner_action_repeat=learner_repeat,
    )


class SimStepCounter:
    """Counts the batched core's sim steps (each steps every copy) by wrapping its ``step``."""

    def __init__(self, core) -> None:
        self.count = 0
        self._step = core.step
        core.step = self

    def __call__(self, actions, *args, **kwargs):
        self.count += 1
        return self._step(actions, *args, **kwargs)


def run_vector(config: EnvConfig, envs: int, steps: int, warmup: int, seed: int) -> tuple[float, int, int]:
    """(seconds, episodes ended, sim steps of the core) of the timed steps."""
    env = VectorRacingEnv(config, num_envs=envs, seed=seed)
    counter = SimStepCounter(env.batch.core)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    episodes = 0
    for _ in range(warmup):
        env.step(rng.uniform(-1.0, 1.0, (envs, 2)))
    counter.count = 0
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.uniform(-1.0, 1.0, (envs, 2)))
        episodes += int(np.count_nonzero(term | trunc))
    return time.perf_counter() - start, episodes, counter.count


def run_single(config: EnvConfig, steps: int, warmup: int, seed: int) -> tuple[float, int, int]:
    env = SingleAgentEnv(config, seed=seed)
    counter = SimStepCounter(env.batch.core)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    episodes = 0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
            episodes = counter.count = 0
        _, _, term, trunc, _ = env.step(rng.uniform(-1.0, 1.0, 2))
        if term or trunc:
            episodes += 1
            env.reset()
    return time.perf_counter() - start, episodes, counter.count


def run_parallel(config: EnvConfig, steps: int, warmup: int, seed: int) -> tuple[float, int, int]:
    env = RacingEnv(config, seed=seed)
    core = env.core
    defender = FTGDriver(core.sim.beam_angles, 1, ftg_config_for(core.vehicle))
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    episodes = 0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
            episodes = 0
        physical = defender.act(core.state[:, 1], core.scans[:, 1], core.observations[:, 1])
        actions = {"car_0": rng.uniform(-1.0, 1.0, 2), "car_1": core.to_normalized(physical[0])}
        env.step(actions)
        if not env.agents:
            episodes += 1
            env.reset()
    return time.perf_counter() - start, episodes, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("gaplock", "racing"), default="gaplock")
    parser.add_argument("--envs", type=int, default=1, help="copies stepped together (vector interface)")
    parser.add_argument("--beams", type=int, default=1080, help="simulated LiDAR beams per car")
    parser.add_argument("--interface", choices=("vector", "single", "parallel"), default="vector")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps of the whole batch (default: about 50,000 env steps, at least 500 batch steps)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed batch steps first")
    parser.add_argument("--action-repeat", type=int, default=1,
                        help="sim.action_repeat: physics steps per sim step, every car's action held (gaplock: "
                             "max_steps and idle_steps divided by it)")
    parser.add_argument("--learner-repeat", type=int, default=1,
                        help="learner_action_repeat: sim steps per learner decision, the FTG defender acting on each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    if args.interface != "vector" and args.envs != 1:
        parser.error(f"--interface {args.interface} steps one copy; use --envs 1")
    if args.interface == "parallel" and args.learner_repeat != 1:
        parser.error("--learner-repeat needs a single-learner view: --interface vector or single")
    steps = args.steps or max(500, 50_000 // args.envs)
    config = make_config(args.task, args.beams, args.action_repeat, args.learner_repeat)
    if args.interface == "vector":
        seconds, episodes, sim_steps = run_vector(config, args.envs, steps, args.warmup, args.seed)
    elif args.interface == "single":
        seconds, episodes, sim_steps = run_single(config, steps, args.warmup, args.seed)
    else:
        seconds, episodes, sim_steps = run_parallel(config, steps, args.warmup, args.seed)
    result = {
        "task": args.task,
        "interface": args.interface,
        "envs": args.envs,
        "beams": args.beams,
        "obs_beams": config.observation.lidar_beams,
        "action_repeat": args.action_repeat,
        "learner_repeat": args.learner_repeat,
        "batch_steps": steps,
        "sim_steps": sim_steps,
        "seconds": round(seconds, 4),
        "episodes_ended": episodes,
        "numba_threads": numba.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the machine when the run ended
        "env_steps_per_s": round(args.envs * steps / seconds, 1),
        "decisions_per_s": round(args.envs * steps / seconds, 1),
        "physics_steps_per_s": round(args.envs * sim_steps * args.action_repeat / seconds, 1),
    }
    if not args.json:
        print(
            f"{result['decisions_per_s']:.0f} decisions/s, {result['physics_steps_per_s']:.0f} physics steps/s "
            f"({args.task}, {args.interface}, {args.envs} envs, {args.beams} beams, action repeat "
            f"{args.action_repeat}, learner repeat {args.learner_repeat})"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
