"""A short simulator demo: two cars drive side by side down line_track with pure pursuit to the finish line.

    python scripts/demo_sim.py [--map maps/line_track/line_track.yaml] [--speed 4.0]

Prints the simulated time to the finish, the closest LiDAR return each car saw, contacts, and the wall-clock speed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from multi_agent_rl.agents.pure_pursuit import PurePursuit, PurePursuitConfig
from multi_agent_rl.sim import F1TENTH, Polyline, SimConfig, Simulator, load_map

DEFAULT_MAP = Path(__file__).resolve().parents[1] / "maps" / "line_track" / "line_track.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--map", type=Path, default=DEFAULT_MAP)
    parser.add_argument("--speed", type=float, default=4.0, help="target speed (m/s)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    track = load_map(args.map)
    sim = Simulator(track, num_envs=1, num_cars=2, vehicle=F1TENTH, config=SimConfig(), seed=0)
    grid = track.spawn("grid_2")  # car_0 on the left, car_1 on the right
    config = PurePursuitConfig(max_speed_mps=args.speed)
    # Each car follows the centreline shifted to its own grid slot, so they race in parallel lanes.
    drivers = [
        PurePursuit(Polyline(track.centerline.points + [0.0, slot[1]], closed=False), F1TENTH, config)
        for slot in grid
    ]
    view = sim.reset(grid[None])
    finish_x = float(track.finish_line[:, 0].mean())
    closest = np.full(2, np.inf)
    contacts = steps = 0
    while (view.state[0, :, 0] < finish_x).any() and steps < 10_000:
        state = view.state[0]
        actions = [driver.act(state[[n], :][:, [0, 1, 4]], state[[n], 3]) for n, driver in enumerate(drivers)]
        view = sim.step(np.concatenate(actions)[None])
        closest = np.minimum(closest, view.scans[0].min(axis=1))
        contacts += int(view.collided.sum())
        steps += 1
    wall = time.perf_counter() - started
    print(f"map {track.name}: {steps} steps = {steps * sim.config.timestep_s:.2f} s simulated to the finish line")
    print(f"closest LiDAR return per car (m): {np.round(closest, 3).tolist()}; contacts: {contacts}")
    print(f"wall time {wall:.2f} s including numba start-up ({steps / wall:,.0f} env steps/s overall)")


if __name__ == "__main__":
    main()
