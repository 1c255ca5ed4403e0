"""Gaplock outcome rates of scripted attackers against the Follow-The-Gap defender on line_track.

    python scripts/gaplock_baselines.py                      # 100 episodes per attacker, seeds 0..99
    python scripts/gaplock_baselines.py --episodes 20 --attackers straight --straight-speed 0.3

Attackers (car_0): "random" (uniform steering and speed commands over the whole action range, redrawn every
step), "straight" (steering 0 at a constant --straight-speed) and "ftg" (the same Follow-The-Gap as the
defender). Episode i of every attacker starts from the reset seeded with --seed + i (same spawn pair, start
speed and LiDAR noise for every attacker). All episodes run side by side as copies of one batched simulator,
each for exactly one episode. Prints one row of outcome rates per attacker, then the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from multi_agent_rl.envs import BatchedEnv, EnvConfig
from multi_agent_rl.envs.drivers import ConstantDriver, FTGDriver, RandomDriver, ftg_config_for
from multi_agent_rl.tasks.gaplock import GAPLOCK_OUTCOMES

ATTACKERS = ("random", "straight", "ftg")


def attacker_driver(kind: str, env: BatchedEnv, args: argparse.Namespace):
    if kind == "random":
        return RandomDriver(env.num_envs, env.vehicle, env.vehicle.v_max, seed=args.seed)
    if kind == "straight":
        return ConstantDriver(env.num_envs, 0.0, args.straight_speed)
    return FTGDriver(env.sim.beam_angles, env.num_envs, ftg_config_for(env.vehicle))


def run(kind: str, args: argparse.Namespace) -> dict:
    """One episode in each of --episodes copies; returns outcome rates and mean episode length."""
    env = BatchedEnv(EnvConfig(), num_envs=args.episodes)
    env.reset(seeds=[args.seed + i for i in range(args.episodes)])
    attacker = attacker_driver(kind, env, args)
    defender = FTGDriver(env.sim.beam_angles, env.num_envs, ftg_config_for(env.vehicle))
    actions = np.zeros((env.num_envs, 2, 2))
    outcome = np.zeros(env.num_envs, dtype=np.int64)
    length = np.zeros(env.num_envs, dtype=np.int64)
    start = time.perf_counter()
    while env.active.any():
        state, scans, obs = env.state, env.scans, env.observations
        actions[:, 0] = attacker.act(state[:, 0], scans[:, 0], obs[:, 0])
        actions[:, 1] = defender.act(state[:, 1], scans[:, 1], obs[:, 1])
        result = env.step(actions)
        ended = result.terminated[:, 0] | result.truncated[:, 0]
        outcome[ended] = result.outcome[ended, 0]
        length[ended] = env.episode_step[ended]
    counts = np.bincount(outcome, minlength=len(GAPLOCK_OUTCOMES))
    row = {"attacker": kind, "episodes": args.episodes}
    row.update({name: round(counts[i] / args.episodes, 3) for i, name in enumerate(GAPLOCK_OUTCOMES) if i})
    row["mean_steps"] = round(float(length.mean()), 1)
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--attackers", nargs="+", choices=ATTACKERS, default=list(ATTACKERS))
    parser.add_argument("--straight-speed", type=float, default=0.5, help="straight attacker speed (m/s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [run(kind, args) for kind in args.attackers]
    names = GAPLOCK_OUTCOMES[1:]
    print(f"{'attacker':10s}" + "".join(f"{n:>18s}" for n in names) + f"{'mean steps':>12s}")
    for row in rows:
        print(
            f"{row['attacker']:10s}"
            + "".join(f"{row[n]:>18.2f}" for n in names)
            + f"{row['mean_steps']:>12.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
