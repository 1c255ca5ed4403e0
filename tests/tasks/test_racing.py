"""Racing: progress, laps and lap times on an open line and a closed ring, collisions, timeouts, real
tracks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multi_agent_rl.envs import BatchedEnv, racing_env_config
from multi_agent_rl.sim.collision import touches_wall
from multi_agent_rl.sim.maps import Polyline, TrackMap, load_map
from multi_agent_rl.sim.vehicle import F1TENTH
from multi_agent_rl.tasks.racing import RACING_OUTCOMES, RacingConfig, RacingRewardConfig
from tests.conftest import LINE_TRACK, RACETRACK_NAMES, racetrack_yaml

DT = 0.01
LINE = load_map(LINE_TRACK)


def ring_track(radius_m: float = 5.0, half_width_m: float = 1.0, res: float = 0.05) -> TrackMap:
    """A closed circular corridor centred on the origin, with its centreline (counter-clockwise)."""
    size = 2 * (radius_m + half_width_m + 1.0)
    n = int(round(size / res))
    centres = (np.arange(n) + 0.5) * res - size / 2
    xx, yy = np.meshgrid(centres, centres)
    r = np.hypot(xx, yy)
    free = np.abs(r - radius_m) < half_width_m
    angles = np.linspace(0.0, 2 * np.pi, 400, endpoint=False)
    line = Polyline(points=radius_m * np.stack([np.cos(angles), np.sin(angles)], axis=1), closed=True)
    return TrackMap(free, res, (-size / 2, -size / 2, 0.0), name="ring", centerline=line)


def car(x, y, yaw=0.0, v=1.0):
    return [x, y, 0.0, v, yaw, 0.0, 0.0]


def step(task, prev, new, collided=False, k=1):
    prev, new = np.array([[prev]], dtype=float), np.array([[new]], dtype=float)
    return task.step(prev, new, np.array([[collided]]), np.array([[False]]), np.array([k]))


def outcome(result):
    return RACING_OUTCOMES[int(result.outcome[0, 0])]


def test_progress_is_centreline_metres_gained():
    task = RacingConfig().build(LINE, 1, DT)
    task.reset(np.array([0]), np.array([[car(-10.0, 0.3)]]))
    r = step(task, car(-10.0, 0.3), car(-9.25, 0.5))
    assert r.terms["progress"][0, 0] == pytest.approx(0.75)
    r = step(task, car(-9.25, 0.5), car(-9.5, 0.5), k=2)
    assert r.terms["progress"][0, 0] == pytest.approx(-0.25)
    assert r.rewards[0, 0] == pytest.approx(sum(v[0, 0] for v in r.terms.values()))


def test_finish_line_completes_the_lap_of_an_open_track():
    cfg = RacingConfig(reward=RacingRewardConfig(lap=7.0))
    task = cfg.build(LINE, 1, DT)
    task.reset(np.array([0]), np.array([[car(44.0, 0.0)]]))
    assert outcome(step(task, car(44.0, 0.0), car(44.99, 0.0), k=150)) == ""
    r = step(task, car(44.99, 0.0), car(45.01, 0.0), k=151)
    assert outcome(r) == "finished"
    assert r.terminated.all() and not r.truncated.any()
    assert r.terms["lap"][0, 0] == 7.0
    assert task.episode_stats()["last_lap_time_s"][0, 0] == pytest.approx(151 * DT)


def test_crossing_the_finish_line_backwards_is_no_lap():
    task = RacingConfig().build(LINE, 1, DT)
    task.reset(np.array([0]), np.array([[car(45.5, 0.0)]]))
    r = step(task, car(45.01, 0.0), car(44.99, 0.0))
    assert outcome(r) == "" and r.terms["lap"][0, 0] == 0.0


def test_a_ring_lap_needs_a_full_turn_and_wraps_at_the_seam():
    ring = ring_track()
    task = RacingConfig(laps=2).build(ring, 1, DT)
    radius = 5.0
    angles = np.linspace(0, 2 * np.pi * 2.05, 600)  # just over two laps, counter-clockwise
    poses = [car(radius * math.cos(a), radius * math.sin(a), a + math.pi / 2) for a in angles]
    task.reset(np.array([0]), np.array([[poses[0]]]))
    laps_at = []
    for k in range(1, len(poses)):
        r = step(task, poses[k - 1], poses[k], k=k)
        assert abs(r.terms["progress"][0, 0]) < 0.2  # no jump of a lap length at the seam
        if r.terms["lap"][0, 0]:
            laps_at.append(k)
        if r.terminated.any():
            break
    assert len(laps_at) == 2
    assert outcome(r) == "finished"
    first_lap_k = laps_at[0]
    assert angles[first_lap_k] == pytest.approx(2 * np.pi, abs=0.03)
    assert task.episode_stats()["progress_m"][0, 0] == pytest.approx(2 * task.line.length_m, abs=0.2)


def test_back_and_forth_over_the_seam_earns_no_lap():
    ring = ring_track()
    task = RacingConfig().build(ring, 1, DT)
    a, b = car(5.0 * math.cos(-0.05), 5.0 * math.sin(-0.05)), car(5.0 * math.cos(0.05), 5.0 * math.sin(0.05))
    task.reset(np.array([0]), np.array([[a]]))
    for k in range(1, 50):
        r = step(task, a, b, k=2 * k - 1)
        r2 = step(task, b, a, k=2 * k)
        assert r.terms["lap"][0, 0] == 0.0 and r2.terms["lap"][0, 0] == 0.0
    assert task.episode_stats()["progress_m"][0, 0] == pytest.approx(0.0, abs=1e-9)


def test_collision_costs_and_terminates():
    task = RacingConfig().build(LINE, 1, DT)
    task.reset(np.array([0]), np.array([[car(0.0, 0.0)]]))
    r = step(task, car(0.0, 0.0), car(0.0, 0.0), collided=True)
    assert outcome(r) == "collision"
    assert r.terminated.all()
    assert r.terms["collision"][0, 0] == RacingRewardConfig().collision


def test_collision_without_termination_only_costs():
    task = RacingConfig(terminate_on_collision=False).build(LINE, 1, DT)
    task.reset(np.array([0]), np.array([[car(0.0, 0.0)]]))
    r = step(task, car(0.0, 0.0), car(0.0, 0.0), collided=True)
    assert outcome(r) == "" and not r.terminated.any()
    assert r.terms["collision"][0, 0] < 0


def test_timeout_truncates():
    task = RacingConfig(max_steps=10).build(LINE, 1, DT)
    task.reset(np.array([0]), np.array([[car(0.0, 0.0)]]))
    r = step(task, car(0.0, 0.0), car(0.01, 0.0), k=10)
    assert outcome(r) == "timeout"
    assert r.truncated.all() and not r.terminated.any()


def test_line_track_uses_its_named_spawns():
    task = RacingConfig(num_cars=2).build(LINE, 1, DT)
    start = task.sample_start(np.random.default_rng(0), 3)
    assert start.spawn == ["grid_2"] * 3
    np.testing.assert_array_equal(start.poses[0], LINE.spawn("grid_2"))


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match="laps"):
        RacingConfig(laps=0)
    with pytest.raises(ValueError, match="centreline"):
        RacingConfig().build(TrackMap(np.ones((10, 10), bool), 0.1, (0, 0, 0), name="blank"), 1, DT)


@pytest.mark.parametrize("name", RACETRACK_NAMES)
def test_grid_start_on_a_shared_race_track_is_clear_of_walls(name):
    """Without spawn points the grid sits on the centreline; three cars start without touching a wall."""
    track = load_map(racetrack_yaml(name))
    task = RacingConfig(num_cars=3).build(track, 1, DT)
    start = task.sample_start(np.random.default_rng(0), 1)
    assert start.spawn == ["centerline_grid"]
    assert not touches_wall(track, start.poses[0], F1TENTH.length, F1TENTH.width).any()


def test_racing_env_makes_progress_on_a_shared_race_track():
    config = racing_env_config(str(racetrack_yaml("Spielberg")))
    env = BatchedEnv(config, 1, seed=0)
    env.reset()
    total = 0.0
    for _ in range(200):
        result = env.step(np.array([[[0.0, 2.0]]]))  # straight ahead at 2 m/s down the start straight
        total += result.terms["progress"][0, 0]
    assert total == pytest.approx(env.task.episode_stats()["progress_m"][0, 0])
    assert 2.5 < total < 4.5


def test_ray_distance_is_exact_on_the_pixel_grid():
    from multi_agent_rl.tasks.geometry import ray_distance_m

    args = LINE.kernel_args()  # walls at y = +-1.3 m, the start wall at x = -50 m
    assert ray_distance_m(*args, 0.0, 0.2, -math.pi / 2, 5.0) == pytest.approx(1.5)
    assert ray_distance_m(*args, 0.0, 0.2, math.pi / 2, 5.0) == pytest.approx(1.1)
    assert ray_distance_m(*args, -49.0, 0.0, math.pi, 5.0) == pytest.approx(1.0)
    assert ray_distance_m(*args, 0.0, 0.0, 0.0, 5.0) == 5.0  # capped
    assert ray_distance_m(*args, 0.0, 0.0, math.pi / 4, 5.0) == pytest.approx(1.3 * math.sqrt(2))
    assert ray_distance_m(*args, 0.0, 1.5, 0.0, 5.0) == 0.0  # inside the wall
