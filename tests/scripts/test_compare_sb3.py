"""scripts/compare_sb3.py: the JSON contract of its last line, the QR-DQN peer, and its refusals."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_sb3.py"


def run_script(*args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess:
    env = None if tmpdir is None else {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize("algo, peer", [("dqn", "default"), ("rainbow", "qrdqn")])
def test_last_line_is_the_summary_json(algo, peer, tmp_path):
    result = run_script("--algo", algo, "--env", "CartPole-v1", "--steps", "1300", "--seeds", "1", "--json",
                        "--peer", peer, tmpdir=tmp_path)
    assert result.returncode == 0, result.stderr
    # SB3's default logger would leave an empty $TMPDIR/SB3-<date> directory per run
    assert list(tmp_path.glob("SB3-*")) == []
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {"ours", "sb3"}
    for side in summary.values():
        assert set(side) == {"return_mean", "return_std", "steps_per_s"}
        assert side["return_std"] == 0.0  # one seed
        assert 8.0 <= side["return_mean"] <= 500.0  # CartPole returns: every episode lasts 8..500 steps
        assert math.isfinite(side["steps_per_s"]) and side["steps_per_s"] > 0


def test_refuses_a_peer_the_algorithm_has_not():
    result = run_script("--algo", "td3", "--env", "Pendulum-v1", "--steps", "100", "--peer", "qrdqn")
    assert result.returncode == 2
    assert "--peer qrdqn is only available for" in result.stderr


def test_refuses_an_unknown_task():
    result = run_script("--algo", "td3", "--env", "CartPole-v1", "--steps", "100")
    assert result.returncode == 2
    assert "no preset for td3 on CartPole-v1" in result.stderr
