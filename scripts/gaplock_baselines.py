"""Gaplock outcome rates of scripted attackers against the Follow-The-Gap defender on line_track.

    python scripts/gaplock_baselines.py                      # 100 episodes per attacker, seeds 0..99
    python scripts/gaplock_baselines.py --episodes 20 --attackers straight --straight-speed 0.3

Attackers (car_0): "random" (uniform steering and speed commands over the whole action range, redrawn every step),
"straight" (steering 0 at a constant --straight-speed), "ftg" (the same Follow-The-Gap as the defender), "weave" (a
privileged scripted reference that reads the defender's state: it keeps --weave-ahead metres in front of the
defender while weaving across the corridor, y = amplitude sin(2 pi t / period + random phase); it shows that the
defender can be forced into a wall) and "block" (privileged too: it holds --block-ahead metres in front of the
defender and --block-lateral metres to its left, which turns the defender around into the start wall).
--action-repeat k makes every car (attackers and the FTG defender) act every k physics steps, as the gaplock
experiments do (max_steps and idle_steps are divided by k, so the timeout stays 5,000 physics steps). Episode i of
every attacker starts from the reset seeded with --seed + i (same spawn pair, start speed and LiDAR noise for every
attacker). All episodes run side by side as copies of one batched simulator, each for exactly one episode. Prints
one row of outcome rates per attacker, then the rows as JSON. Every target_crash (success) is split by the wall the
defender hit (``side_wall`` / ``end_wall``, from its pose at the contact: see
``multi_agent_rl.tasks.gaplock.crash_wall``) and whether it had turned around (``defender_reversed``); the JSON has
these as ``success_<label>`` rates over all episodes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from multi_agent_rl.envs import BatchedEnv, EnvConfig
from multi_agent_rl.envs.drivers import ConstantDriver, FTGDriver, RandomDriver, ftg_config_for
from multi_agent_rl.tasks.gaplock import CRASH_DETAILS, GAPLOCK_OUTCOMES, GaplockConfig

ATTACKERS = ("random", "straight", "ftg", "weave", "block")


class WeaveAttacker:
    """Keeps ``ahead_m`` in front of the defender (car 1) while weaving across the corridor (line_track's y)."""

    def __init__(self, env: BatchedEnv, ahead_m: float, amplitude_m: float, period_s: float, seed: int) -> None:
        self.env, self.ahead_m, self.amplitude_m, self.period_s = env, ahead_m, amplitude_m, period_s
        self.phase = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, env.num_envs)
        self.limit = env.vehicle.s_max

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        env = self.env
        attacker, defender = env.state[:, 0], env.state[:, 1]
        t = env.episode_step * env.env_timestep_s
        target_y = self.amplitude_m * np.sin(2.0 * np.pi * t / self.period_s + self.phase)
        heading_error = np.arctan2(target_y - attacker[:, 1], 0.4) - attacker[:, 4]  # aim 0.4 m ahead
        steer = np.clip(3.0 * heading_error, -self.limit, self.limit)
        gap_m = defender[:, 0] + self.ahead_m - attacker[:, 0]
        speed = np.clip(defender[:, 3] + 1.5 * gap_m, 0.15, env.vehicle.v_max)
        return np.stack([steer, speed], axis=1)


class BlockAttacker:
    """Holds ``ahead_m`` in front of the defender (car 1) along x and ``lateral_m`` to its left (line_track's y)."""

    def __init__(self, env: BatchedEnv, ahead_m: float, lateral_m: float) -> None:
        self.env, self.ahead_m, self.lateral_m = env, ahead_m, lateral_m
        self.limit = env.vehicle.s_max

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        attacker, defender = self.env.state[:, 0], self.env.state[:, 1]
        target_y = np.clip(defender[:, 1] + self.lateral_m, -1.0, 1.0)
        heading_error = np.arctan2(target_y - attacker[:, 1], 0.4) - attacker[:, 4]  # aim 0.4 m ahead
        steer = np.clip(3.0 * heading_error, -self.limit, self.limit)
        gap_m = defender[:, 0] + self.ahead_m - attacker[:, 0]
        speed = np.clip(defender[:, 3] * np.cos(defender[:, 4]) + 1.5 * gap_m, -0.5, self.env.vehicle.v_max)
        return np.stack([steer, speed], axis=1)


def attacker_driver(kind: str, env: BatchedEnv, args: argparse.Namespace):
    if kind == "random":
        return RandomDriver(env.num_envs, env.vehicle, env.vehicle.v_max, seed=args.seed)
    if kind == "straight":
        return ConstantDriver(env.num_envs, 0.0, args.straight_speed)
    if kind == "weave":
        return WeaveAttacker(env, args.weave_ahead, args.weave_amplitude, args.weave_period, args.seed)
    if kind == "block":
        return BlockAttacker(env, args.block_ahead, args.block_lateral)
    return FTGDriver(env.sim.beam_angles, env.num_envs, ftg_config_for(env.vehicle))


def run(kind: str, args: argparse.Namespace) -> dict:
    """One episode in each of --episodes copies; returns outcome rates and mean episode length."""
    k = args.action_repeat
    config = EnvConfig(task=GaplockConfig(spawn_prefix=args.spawn_prefix, spawn_offset_m=tuple(args.spawn_offset),
                                          max_steps=5000 // k, idle_steps=max(1, 120 // k)))
    config = replace(config, sim=replace(config.sim, action_repeat=k))
    env = BatchedEnv(config, num_envs=args.episodes)
    env.reset(seeds=[args.seed + i for i in range(args.episodes)])
    attacker = attacker_driver(kind, env, args)
    defender = FTGDriver(env.sim.beam_angles, env.num_envs,
                         ftg_config_for(env.vehicle, stop_when_blocked=args.stop_when_blocked))
    actions = np.zeros((env.num_envs, 2, 2))
    outcome = np.zeros(env.num_envs, dtype=np.int64)
    length = np.zeros(env.num_envs, dtype=np.int64)
    final_states = np.zeros_like(env.state)
    start = time.perf_counter()
    while env.active.any():
        state, scans, obs = env.state, env.scans, env.observations
        actions[:, 0] = attacker.act(state[:, 0], scans[:, 0], obs[:, 0])
        actions[:, 1] = defender.act(state[:, 1], scans[:, 1], obs[:, 1])
        result = env.step(actions)
        ended = result.terminated[:, 0] | result.truncated[:, 0]
        outcome[ended] = result.outcome[ended, 0]
        length[ended] = env.episode_step[ended]
        final_states[ended] = env.state[ended]  # no autoreset here: a crashed car keeps its pre-contact pose
    counts = np.bincount(outcome, minlength=len(GAPLOCK_OUTCOMES))
    row = {"attacker": kind, "episodes": args.episodes}
    row.update({name: round(counts[i] / args.episodes, 3) for i, name in enumerate(GAPLOCK_OUTCOMES) if i})
    labels = [env.task.outcome_details(GAPLOCK_OUTCOMES[o], s) for o, s in zip(outcome, final_states, strict=True)]
    for label in CRASH_DETAILS:
        row[f"success_{label}"] = round(sum(label in d for d in labels) / args.episodes, 3)
    row["mean_steps"] = round(float(length.mean()) * args.action_repeat, 1)  # physics steps
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--attackers", nargs="+", choices=ATTACKERS, default=list(ATTACKERS))
    parser.add_argument("--straight-speed", type=float, default=0.5, help="straight attacker speed (m/s)")
    parser.add_argument("--weave-ahead", type=float, default=0.9, help="weave attacker lead (m)")
    parser.add_argument("--weave-amplitude", type=float, default=0.8, help="weave attacker lateral amplitude (m)")
    parser.add_argument("--weave-period", type=float, default=3.0, help="weave attacker period (s)")
    parser.add_argument("--block-ahead", type=float, default=0.6, help="block attacker lead (m)")
    parser.add_argument("--block-lateral", type=float, default=0.3, help="block attacker lateral offset (m)")
    parser.add_argument("--action-repeat", type=int, default=1,
                        help="physics steps per decision of every car (the gaplock experiments use 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spawn-prefix", default="gaplock_", help="start pairs: spawn points with this prefix")
    parser.add_argument("--spawn-offset", type=float, nargs=2, default=(0.0, 0.0), metavar=("DX", "DY"),
                        help="shift every start pair (m); --spawn-offset 45 0 starts mid-corridor on line_track")
    parser.add_argument("--stop-when-blocked", action="store_true", help="the FTG defender stops when blocked")
    args = parser.parse_args()
    rows = [run(kind, args) for kind in args.attackers]
    names = GAPLOCK_OUTCOMES[1:]
    walls = ("success_side_wall", "success_end_wall", "success_defender_reversed")
    print(f"{'attacker':10s}" + "".join(f"{n:>18s}" for n in names) + f"{'mean steps':>12s}"
          + "".join(f"{w[8:]:>19s}" for w in walls))
    for row in rows:
        print(
            f"{row['attacker']:10s}"
            + "".join(f"{row[n]:>18.2f}" for n in names)
            + f"{row['mean_steps']:>12.0f}"
            + "".join(f"{row[w]:>19.2f}" for w in walls)
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
