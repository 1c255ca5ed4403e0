"""Where an off-policy learner's time goes, ours against Stable-Baselines3's: one acting call and one gradient step.

    python scripts/bench_agent_parts.py --algo rainbow --env CartPole-v1
    python scripts/bench_agent_parts.py --algo td3 --env Pendulum-v1 --act-calls 2000 --gradient-steps 500

Both sides are built by ``scripts/compare_sb3.py``'s preset for ALGO on ENV (same hyperparameters, networks and
env pipeline), trained for ``--warmup`` env steps so their replays are filled and learning has started, then timed:
``--act-calls`` stochastic acting calls on one observation (ours ``act``, SB3 ``predict``) and
``--gradient-steps`` gradient steps (ours ``_gradient_step``, SB3 ``train``), in microseconds per call, the median
of 5 blocks; and the tensor ops one gradient step dispatches (ATen calls seen by a ``TorchDispatchMode``, backward
and optimizer included, mean over 10 steps): at small batches their fixed cost, not their arithmetic, sets the
time. One torch thread. Prints a table and, last, a JSON line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_sb3 import PRESETS, make_vector_env, sb3_vec_env, silent_sb3_logger, vector_steps  # noqa: E402

BLOCKS = 5  # each figure is the median over this many equal blocks of calls: this VM's speed drifts by ~20 %


def median_us(run_block: Callable[[int], object], calls: int) -> float:
    """Median over BLOCKS blocks of ``run_block(n)`` (n calls each) of the time per call, in microseconds."""
    run_block(1)  # warm caches and lazily built state
    per_block = max(1, calls // BLOCKS)
    times = []
    for _ in range(BLOCKS):
        start = time.perf_counter()
        run_block(per_block)
        times.append((time.perf_counter() - start) / per_block * 1e6)
    return float(np.median(times))


class _OpCounter(TorchDispatchMode):
    """Counts the ATen ops dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_call(run_block: Callable[[int], object], calls: int = 10) -> float:
    """Mean number of ATen ops dispatched per call over ``calls`` calls of ``run_block``."""
    with _OpCounter() as counter:
        run_block(calls)
    return counter.count / calls


def repeated(fn: Callable[[], object]) -> Callable[[int], None]:
    def run_block(count: int) -> None:
        for _ in range(count):
            fn()

    return run_block


def ours_parts(algo: str, env_id: str, warmup: int, act_calls: int, gradient_steps: int, seed: int) -> dict:
    from multi_agent_rl.agents.gym_runner import train

    preset = PRESETS[(algo, env_id)]
    env = make_vector_env(env_id, preset.num_envs, preset.normalize_gamma)
    agent_class, config = preset.ours(warmup)
    agent = agent_class(env.single_observation_space, env.single_action_space, config, preset.num_envs, "cpu", seed)
    train(agent, env, vector_steps(preset, warmup), seed=seed)
    obs, _ = env.reset(seed=seed)
    takes_step = "step_in_phase" in inspect.signature(agent._gradient_step).parameters  # SAC's target interval
    step = (lambda: agent._gradient_step(0)) if takes_step else agent._gradient_step
    return {"act_us": median_us(repeated(lambda: agent.act(obs)), act_calls),
            "gradient_step_us": median_us(repeated(step), gradient_steps),
            "gradient_step_ops": ops_per_call(repeated(step))}


def sb3_parts(algo: str, env_id: str, warmup: int, act_calls: int, gradient_steps: int, seed: int) -> dict:
    preset = PRESETS[(algo, env_id)]
    env = make_vector_env(env_id, preset.num_envs, preset.normalize_gamma)
    model = preset.sb3(sb3_vec_env(env), warmup, seed)
    model.set_logger(silent_sb3_logger())
    model.learn(total_timesteps=warmup)
    obs, _ = env.reset(seed=seed)
    def train_block(n: int) -> None:
        model.train(gradient_steps=n, batch_size=model.batch_size)

    return {"act_us": median_us(repeated(lambda: model.predict(obs, deterministic=False)), act_calls),
            "gradient_step_us": median_us(train_block, gradient_steps),
            "gradient_step_ops": ops_per_call(train_block)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    off_policy = sorted({algo for algo, _ in PRESETS if algo in ("td3", "sac", "dqn", "rainbow")})
    parser.add_argument("--algo", required=True, choices=off_policy)
    parser.add_argument("--env", required=True)
    parser.add_argument("--warmup", type=int, default=3000, help="env steps trained before timing")
    parser.add_argument("--act-calls", type=int, default=3000)
    parser.add_argument("--gradient-steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if (args.algo, args.env) not in PRESETS:
        parser.error(f"no preset for {args.algo} on {args.env}; known: {sorted(PRESETS)}")
    torch.set_num_threads(1)
    np.random.seed(args.seed)  # noqa: NPY002 - SB3 draws its exploration from the global generator
    timing = (args.algo, args.env, args.warmup, args.act_calls, args.gradient_steps, args.seed)
    results = {"ours": ours_parts(*timing), "sb3": sb3_parts(*timing)}
    print(f"{'':6} {'act (us)':>10} {'gradient step (us)':>20} {'ops per gradient step':>22}")
    for side, parts in results.items():
        print(f"{side:6} {parts['act_us']:10.0f} {parts['gradient_step_us']:20.0f} {parts['gradient_step_ops']:22.0f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
