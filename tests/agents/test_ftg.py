"""Follow-The-Gap: unit behaviour on synthetic scans, batching, purity, and closed-loop driving on real
maps."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from multi_agent_rl.agents.ftg import FollowTheGap, FTGConfig, follow_the_gap
from multi_agent_rl.envs import BatchedEnv, racing_env_config
from multi_agent_rl.envs.drivers import ftg_config_for
from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.maps import load_map
from multi_agent_rl.sim.simulator import Simulator
from multi_agent_rl.sim.vehicle import F1TENTH, LIMO, VehicleParams
from tests.conftest import LINE_TRACK, RACETRACK_NAMES, racetrack_yaml

ANGLES = LidarConfig().beam_angles()


def corridor_scan(left_m: float, right_m: float, max_range_m: float = 30.0) -> np.ndarray:
    """Ranges (1080,) of a car heading along an endless corridor, walls left_m to its left, right_m to its
    right."""
    s = np.sin(ANGLES)
    with np.errstate(divide="ignore"):
        r = np.where(s > 0, left_m / s, np.where(s < 0, right_m / -s, np.inf))
    return np.minimum(r, max_range_m).astype(np.float32)[None]


def test_centred_in_a_corridor_drives_straight():
    actions, _ = follow_the_gap(corridor_scan(1.3, 1.3), ANGLES, FTGConfig(), np.zeros(1))
    assert abs(actions[0, 0]) < 0.02
    assert actions[0, 1] == pytest.approx(FTGConfig().max_speed_mps)


@pytest.mark.parametrize("left, right, sign", [(0.5, 2.1, -1.0), (2.1, 0.5, 1.0)])
def test_steers_away_from_the_nearer_wall(left, right, sign):
    actions, _ = follow_the_gap(
        corridor_scan(left, right), ANGLES, FTGConfig(steer_smoothing=0.0), np.zeros(1)
    )
    assert sign * actions[0, 0] > 0.02


def test_obstacle_ahead_left_makes_it_turn_right():
    scan = corridor_scan(1.3, 1.3)
    ahead_left = (ANGLES > 0.0) & (ANGLES < 0.35)
    scan[0, ahead_left] = 1.0  # a car 1 m ahead, slightly to the left
    actions, _ = follow_the_gap(scan, ANGLES, FTGConfig(steer_smoothing=0.0), np.zeros(1))
    assert actions[0, 0] < -0.05


def test_close_obstacle_ahead_slows_to_the_floor():
    cfg = FTGConfig()
    scan = corridor_scan(1.3, 1.3)
    scan[0, np.abs(ANGLES) < 0.3] = cfg.stop_margin_m + 0.01
    actions, _ = follow_the_gap(scan, ANGLES, cfg, np.zeros(1))
    assert actions[0, 1] == pytest.approx(cfg.min_speed_mps)


@pytest.mark.parametrize("stop, speed", [(False, FTGConfig().min_speed_mps), (True, 0.0)])
def test_boxed_in_it_creeps_like_the_classic_ftg_or_stops_when_told(stop, speed):
    """Facing a wall closer than the stop margin with no gap anywhere: the classic FTG creeps on (an adversary can
    push it into the wall); ``stop_when_blocked`` stops it instead."""
    cfg = FTGConfig(stop_when_blocked=stop)
    scan = np.full((1, ANGLES.size), 0.3, np.float32)
    scan[0, ANGLES > 1.0] = 1.0  # the longest beams, to the left
    actions, _ = follow_the_gap(scan, ANGLES, cfg, np.zeros(1))
    assert actions[0, 1] == speed
    assert actions[0, 0] > 0.0  # steering toward the longest beams


def test_steering_is_limited_at_speed():
    cfg = FTGConfig(steer_smoothing=0.0, max_steer_rad=0.4, wheelbase_m=0.33, max_lateral_accel_mps2=4.0)
    scan = corridor_scan(0.3, 5.0)
    slow, _ = follow_the_gap(scan, ANGLES, cfg, np.zeros(1), np.array([0.5]))
    fast, _ = follow_the_gap(scan, ANGLES, cfg, np.zeros(1), np.array([5.0]))
    assert abs(fast[0, 0]) == pytest.approx(math.atan(4.0 * 0.33 / 25.0))
    assert abs(slow[0, 0]) > abs(fast[0, 0])


def test_steering_filter_blends_the_previous_command():
    cfg = FTGConfig(steer_smoothing=0.5)
    scan = corridor_scan(1.2, 1.4)
    raw, _ = follow_the_gap(scan, ANGLES, FTGConfig(steer_smoothing=0.0), np.zeros(1))
    assert 0.05 < abs(raw[0, 0]) < 0.3  # inside the steering limit, so the blend is not clipped
    blended, new_steer = follow_the_gap(scan, ANGLES, cfg, np.array([0.2]))
    assert blended[0, 0] == pytest.approx(0.5 * 0.2 + 0.5 * raw[0, 0])
    assert new_steer[0] == blended[0, 0]


def test_batch_matches_row_by_row_and_is_pure():
    rng = np.random.default_rng(0)
    scans = np.concatenate([corridor_scan(*rng.uniform(0.3, 2.0, 2)) for _ in range(6)])
    scans += rng.normal(0, 0.01, scans.shape).astype(np.float32)
    prev = rng.uniform(-0.2, 0.2, 6)
    prev_copy = prev.copy()
    speeds = rng.uniform(0, 1, 6)
    batch, steer = follow_the_gap(scans, ANGLES, FTGConfig(), prev, speeds)
    np.testing.assert_array_equal(prev, prev_copy)
    for i in range(6):
        row, row_steer = follow_the_gap(
            scans[i : i + 1], ANGLES, FTGConfig(), prev[i : i + 1], speeds[i : i + 1]
        )
        np.testing.assert_allclose(row[0], batch[i])
        assert row_steer[0] == steer[i]


def test_class_keeps_filter_state_and_resets_it():
    ftg = FollowTheGap(ANGLES, FTGConfig(), num_envs=2)
    scan = np.concatenate([corridor_scan(0.5, 2.1), corridor_scan(2.1, 0.5)])
    first = ftg(scan).copy()
    second = ftg(scan).copy()
    assert np.all(np.abs(second[:, 0]) > np.abs(first[:, 0]))  # the filter converges toward the raw command
    ftg.reset(np.array([0]))
    np.testing.assert_allclose(ftg(scan)[0], first[0])
    with pytest.raises(ValueError, match="scans must have shape"):
        ftg(scan[:1])


@pytest.mark.parametrize(
    "field, value",
    [
        ("aim", "closest"),
        ("steer_smoothing", 1.0),
        ("max_speed_mps", 0.0),
        ("min_gap_range_m", 50.0),
        ("bubble_radius_m", -1.0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"FTGConfig.{field}"):
        FTGConfig(**{field: value})


def test_module_does_not_import_torch():
    code = "import sys, multi_agent_rl.agents.ftg; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _drive_line_track_from_every_spawn(vehicle: VehicleParams, max_speed_mps: float, max_steps: int) -> None:
    """Every pose of every named spawn point of line_track, one car each, driven by FTG: no wall contact, and
    every car crosses the finish line (x = 45 m)."""
    track = load_map(LINE_TRACK)
    poses = np.unique(np.concatenate(list(track.spawn_points.values())), axis=0)
    assert len(poses) >= 20
    sim = Simulator(track, len(poses), 1, vehicle, seed=0)
    ftg = FollowTheGap(sim.beam_angles, ftg_config_for(vehicle, max_speed_mps=max_speed_mps), len(poses))
    view = sim.reset(poses[:, None, :])
    finish_x = track.finish_line[0, 0]
    finished = np.zeros(len(poses), dtype=bool)
    touched = np.zeros(len(poses), dtype=bool)
    for _ in range(max_steps):
        actions = ftg(view.scans[:, 0], view.state[:, 0, 3]) * ~finished[:, None]
        view = sim.step(actions[:, None, :])
        touched |= view.collided[:, 0]
        finished |= view.state[:, 0, 0] >= finish_x
        if finished.all():
            break
    assert not touched.any(), f"wall contact from poses {poses[touched].tolist()}"
    assert finished.all(), f"did not finish from poses {poses[~finished].tolist()}"


def test_alone_on_line_track_reaches_the_finish_from_every_spawn():
    _drive_line_track_from_every_spawn(F1TENTH, 4.0, 4_000)  # 90 m at 4 m/s: about 2,300 steps


def test_gaplock_defender_alone_reaches_the_finish_from_every_spawn():
    _drive_line_track_from_every_spawn(LIMO, 1.0, 11_000)  # the gaplock defender: 90 m at 1 m/s, 9,000 steps


def _lap(track_name: str) -> None:
    config = racing_env_config(str(racetrack_yaml(track_name)), laps=1, max_steps=30_000)
    env = BatchedEnv(config, 1, seed=0)
    ftg = FollowTheGap(env.sim.beam_angles, ftg_config_for(env.vehicle, max_speed_mps=3.0), 1)
    env.reset()
    for _ in range(config.task.max_steps):
        result = env.step(ftg(env.scans[:, 0], env.state[:, 0, 3])[:, None, :])
        assert not env.collided.any(), f"FTG touched a wall on {track_name} at {env.state[0, 0, :2]}"
        if result.terminated.any() or result.truncated.any():
            break
    assert env.outcome_name(result.outcome[0, 0]) == "finished"
    assert env.task.episode_stats()["laps"][0, 0] == 1


@pytest.mark.parametrize("name", RACETRACK_NAMES)
def test_laps_a_shared_race_track_without_touching_a_wall(name):
    _lap(name)
