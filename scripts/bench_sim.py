"""Simulator throughput: E env copies x N cars x B beams stepped together, numba warm.

Cars drive down the map's centreline (a proportional lane keeper with random steering noise, so scans change
every step); copies whose cars collide or pass the finish are reset, as in training.

    python scripts/bench_sim.py --envs 64 --cars 2 --beams 1080 --seconds 10 --json

The last line (with --json) is a JSON object: env_steps_per_s (env copies advanced per second, E per batched
step), agent_steps_per_s (cars advanced per second), rays_per_s, startup_s (import to the end of the first step
in this process: compilation, or loading numba's on-disk cache when it is warm), and the settings.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from multi_agent_rl.sim.lidar import LidarConfig  # noqa: E402
from multi_agent_rl.sim.maps import load_map  # noqa: E402
from multi_agent_rl.sim.simulator import SimConfig, Simulator  # noqa: E402
from multi_agent_rl.sim.vehicle import PRESETS  # noqa: E402

DEFAULT_MAP = Path(__file__).resolve().parents[1] / "maps" / "line_track" / "line_track.yaml"


def start_poses(num_cars: int, rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, N, 3) staggered starts near the left end of a line track, 2.5 m apart."""
    poses = np.zeros((count, num_cars, 3))
    poses[..., 0] = -45.0 + 2.5 * np.arange(num_cars) + rng.uniform(0.0, 1.0, (count, 1))
    poses[..., 1] = np.where(np.arange(num_cars) % 2 == 0, 0.4, -0.4) + rng.uniform(-0.1, 0.1, (count, num_cars))
    return poses


class LaneKeeper:
    """The benchmark's stand-in for a policy: steer toward y = 0 with noise, at a fixed speed.

    Cheap on purpose (preallocated arrays, a pre-drawn noise table) so the figures measure the simulator.
    """

    def __init__(self, num_envs: int, num_cars: int, speed_mps: float, rng: np.random.Generator) -> None:
        self.actions = np.zeros((num_envs, num_cars, 2))
        self.actions[..., 1] = speed_mps
        self.noise = rng.normal(0.0, 0.05, (997, num_envs, num_cars))  # a prime period
        self.k = 0

    def __call__(self, state: np.ndarray) -> np.ndarray:
        steer = self.actions[..., 0]
        np.multiply(state[..., 1], -0.5, out=steer)
        steer -= state[..., 4]
        steer += self.noise[self.k]
        self.k = (self.k + 1) % len(self.noise)
        return self.actions


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        numba.set_num_threads(args.threads)
    track = load_map(args.map)
    lidar = LidarConfig(num_beams=args.beams)
    sim = Simulator(track, args.envs, args.cars, vehicle=PRESETS[args.vehicle], config=SimConfig(lidar=lidar),
                    seed=0)
    rng = np.random.default_rng(0)
    policy = LaneKeeper(args.envs, args.cars, args.speed, rng)
    view = sim.reset(start_poses(args.cars, rng, args.envs))
    view = sim.step(policy(view.state))
    startup_s = time.perf_counter() - _START

    steps = resets = 0
    t0 = time.perf_counter()
    deadline = t0 + args.seconds
    while True:
        for _ in range(100):  # check the clock every 100 steps
            view = sim.step(policy(view.state))
            if view.collided.any() or view.state[..., 0].max() > 45.0:
                done = view.collided.any(axis=1) | (view.state[..., 0] > 45.0).any(axis=1)
                ids = np.flatnonzero(done)
                sim.reset(start_poses(args.cars, rng, ids.size), env_ids=ids)
                resets += ids.size
            steps += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - t0
    return {
        "env_steps_per_s": args.envs * steps / elapsed,
        "agent_steps_per_s": args.envs * args.cars * steps / elapsed,
        "batched_steps_per_s": steps / elapsed,
        "rays_per_s": args.envs * args.cars * args.beams * steps / elapsed,
        "startup_s": startup_s,
        "resets": resets,
        "envs": args.envs,
        "cars": args.cars,
        "beams": args.beams,
        "seconds": elapsed,
        "threads": numba.get_num_threads(),
        "parallel_scan": sim.parallel_scan,
        "map": str(Path(args.map).name),
        "load_avg_1m": os.getloadavg()[0],  # other work on the machine skews the figures; this tells
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--cars", type=int, default=2)
    parser.add_argument("--beams", type=int, default=1080)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=3.0, help="target speed of the cars (m/s)")
    parser.add_argument("--vehicle", choices=sorted(PRESETS), default="f1tenth")
    parser.add_argument("--map", type=Path, default=DEFAULT_MAP)
    parser.add_argument("--threads", type=int, default=0, help="numba threads (0: numba's default)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value:,.1f}" if isinstance(value, float) else f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
