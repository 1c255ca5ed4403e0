"""scripts/bench_agent_parts.py: per-call timings of acting and gradient steps for both sides, and its refusal."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_agent_parts.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_last_line_times_both_sides():
    result = run_script("--algo", "rainbow", "--env", "CartPole-v1", "--warmup", "1300", "--act-calls", "10",
                        "--gradient-steps", "10")
    assert result.returncode == 0, result.stderr
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(timings) == {"ours", "sb3"}
    for parts in timings.values():
        assert set(parts) == {"act_us", "gradient_step_us", "gradient_step_ops"}
        assert all(math.isfinite(value) and value > 0 for value in parts.values())


def test_refuses_an_unknown_task():
    result = run_script("--algo", "dqn", "--env", "Pendulum-v1")
    assert result.returncode == 2 and "no preset for dqn on Pendulum-v1" in result.stderr
