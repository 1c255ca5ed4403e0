"""rgb_array frames and the episode recorder."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from multi_agent_rl.envs import EnvConfig, RacingEnv, RenderConfig, SingleAgentEnv, VectorRacingEnv
from multi_agent_rl.envs.render import CAR_RGB, RAY_RGB, WALL_RGB
from multi_agent_rl.tasks import GaplockConfig
from tests.conftest import REPO_ROOT


def count(frame: np.ndarray, rgb) -> int:
    return int(np.all(frame == np.array(rgb, dtype=np.uint8), axis=-1).sum())


def test_follow_view_draws_walls_both_cars_and_rays():
    env = RacingEnv(
        EnvConfig(render=RenderConfig(window_m=(8.0, 4.0), pixels_per_m=50.0)), render_mode="rgb_array"
    )
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (200, 400, 3) and frame.dtype == np.uint8
    assert count(frame, WALL_RGB) > 1000  # the corridor walls at y = +-1.3 m lie inside a 4 m tall window
    assert count(frame, CAR_RGB[0]) > 50 and count(frame, CAR_RGB[1]) > 50
    assert count(frame, RAY_RGB) > 100


def test_full_view_fits_the_map_and_shows_motion():
    config = EnvConfig(render=RenderConfig(view="full", max_pixels=800, lidar_car=None))
    env = SingleAgentEnv(config, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert max(first.shape[:2]) == 800
    assert count(first, RAY_RGB) == 0
    for _ in range(100):
        env.step(np.array([0.0, 1.0], np.float32))
    assert not np.array_equal(first, env.render())


def test_no_render_mode_renders_nothing_and_bad_modes_are_refused():
    assert SingleAgentEnv().render() is None
    with pytest.raises(ValueError, match="render_mode"):
        SingleAgentEnv(render_mode="human")
    with pytest.raises(ValueError, match="RenderConfig.view"):
        RenderConfig(view="3d")


def test_vector_env_renders_the_chosen_copy():
    env = VectorRacingEnv(
        replace(EnvConfig(), render=RenderConfig(env_index=1)), num_envs=2, render_mode="rgb_array"
    )
    env.reset(seed=0)
    (frame,) = env.render()
    assert frame.ndim == 3 and frame.shape[-1] == 3


def test_record_episode_writes_a_gif(tmp_path):
    out = tmp_path / "episode.gif"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "record_episode.py"),
        "--out",
        str(out),
        "--attacker",
        "straight",
        "--max-steps",
        "120",
        "--every",
        "10",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "outcome: timeout" in result.stdout
    with Image.open(out) as gif:
        assert gif.n_frames == 13  # the first frame, then every 10th of 120 steps
        assert gif.size == (400, 200)


def test_record_episode_writes_an_mp4(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "episode.mp4"
    cmd = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "record_episode.py"),
        "--out",
        str(out),
        "--max-steps",
        "60",
    ]
    subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stat().st_size > 1000


def test_gaplock_episode_frame_shows_the_outcome():
    env = RacingEnv(EnvConfig(task=GaplockConfig(max_steps=2)), render_mode="rgb_array")
    env.reset(seed=0)
    env.step({a: np.zeros(2, np.float32) for a in env.agents})
    before = env.render()
    env.step({a: np.zeros(2, np.float32) for a in env.agents})
    after = env.render()  # "timeout" is appended to the status line: its white box grows
    assert count(after[:20], (255, 255, 255)) > count(before[:20], (255, 255, 255)) + 100
