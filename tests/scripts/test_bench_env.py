"""scripts/bench_env.py: every interface and repeat mode runs and reports a consistent JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_env.py"


@pytest.mark.parametrize(
    "args",
    [
        ["--interface", "vector", "--envs", "2", "--learner-repeat", "10"],
        ["--interface", "single", "--learner-repeat", "10"],
        ["--interface", "vector", "--envs", "2", "--action-repeat", "10"],
        ["--interface", "parallel"],
    ],
    ids=["vector-learner-repeat", "single-learner-repeat", "vector-action-repeat", "parallel"],
)
def test_runs_and_counts_steps(args):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--beams", "108", "--steps", "20", "--warmup", "2", "--json", *args],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["batch_steps"] == 20 and line["seconds"] > 0
    repeat = line["learner_repeat"]
    # a decision is R sim steps unless every copy's learner episode ended sooner
    assert 20 <= line["sim_steps"] <= 20 * repeat
    if repeat > 1:
        assert line["sim_steps"] > 20
    assert line["physics_steps_per_s"] >= line["decisions_per_s"]
