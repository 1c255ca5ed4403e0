"""Follow-The-Gap time per call on recorded-like scans (a corridor with noise and an obstacle).

    python scripts/bench_ftg.py --beams 1080 --envs 1 --json

Times ``FollowTheGap.__call__`` (the numba kernel plus its Python entry) over many calls after a warm-up, on a
batch of E scans that change every call (rolled along the batch so caches see varied data). The last line is
JSON with ``us_per_call`` and ``us_per_scan``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from multi_agent_rl.agents.ftg import FollowTheGap, FTGConfig
from multi_agent_rl.sim.lidar import LidarConfig


def corridor_scans(angles: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, B) scans of a 2.6 m corridor at random lateral offsets, with noise and a car-sized blob
    ahead."""
    offset = rng.uniform(-0.8, 0.8, (count, 1))
    s = np.sin(angles)[None]
    with np.errstate(divide="ignore"):
        r = np.where(s > 0, (1.3 - offset) / s, np.where(s < 0, (1.3 + offset) / -s, 30.0))
    r = np.minimum(r, 30.0) + rng.normal(0, 0.01, r.shape)
    blob = (angles > 0.05) & (angles < 0.3)
    r[:, blob] = np.minimum(r[:, blob], 1.2)
    return r.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beams", type=int, default=1080)
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    angles = LidarConfig(num_beams=args.beams).beam_angles()
    rng = np.random.default_rng(0)
    pool = corridor_scans(angles, args.envs + 64, rng)
    speeds = rng.uniform(0, 1, args.envs)
    ftg = FollowTheGap(angles, FTGConfig(), args.envs)
    batches = [np.ascontiguousarray(pool[i:i + args.envs]) for i in range(64)]
    for i in range(200):
        ftg(batches[i % 64], speeds)
    start = time.perf_counter()
    for i in range(args.calls):
        ftg(batches[i % 64], speeds)
    per_call = (time.perf_counter() - start) / args.calls * 1e6
    result = {"beams": args.beams, "envs": args.envs, "calls": args.calls, "us_per_call": round(per_call, 2),
              "us_per_scan": round(per_call / args.envs, 2)}
    if not args.json:
        print(f"{per_call:.1f} us per call ({args.envs} scans of {args.beams} beams)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
