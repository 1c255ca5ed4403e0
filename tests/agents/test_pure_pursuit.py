"""Pure pursuit laps every shared race track on its raceline without touching a wall, near the raceline's time."""

from __future__ import annotations

import numpy as np
import pytest

from multi_agent_rl.agents.pure_pursuit import PurePursuit, PurePursuitConfig
from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.maps import Polyline
from multi_agent_rl.sim.simulator import SimConfig, Simulator
from multi_agent_rl.sim.vehicle import F1TENTH

WALL_CLEARANCE_M = 0.4
"""The shared racelines pass within 0.13 m of the drawn walls (their optimiser used wider nominal bounds), which
puts a 0.31 m wide car on the wall; the driver follows the raceline nudged to this clearance."""


def raceline_lap_time(raceline: Polyline, v_max: float) -> float:
    """Lap time (s) implied by the raceline's speed profile, capped at the vehicle's top speed."""
    closing = np.vstack([raceline.points, raceline.points[:1]])
    segment = np.hypot(*np.diff(closing, axis=0).T)
    speed = np.minimum(raceline.speeds, v_max)
    return float(np.sum(segment / speed))


def drive_one_lap(track, path: Polyline, config: PurePursuitConfig, max_seconds: float):
    """Lap time (s) and the number of steps with wall contact; None for the time if no lap was completed."""
    sim = Simulator(track, 1, 1, vehicle=F1TENTH, config=SimConfig(lidar=LidarConfig(num_beams=0)))
    start = path.points[0]
    heading = np.arctan2(*(path.points[1] - start)[::-1])
    sim.reset(np.array([[start[0], start[1], heading]]), speeds=np.array([[config.speed_scale * path.speeds[0]]]))
    driver = PurePursuit(path, F1TENTH, config)
    s_prev, progress, contacts = 0.0, 0.0, 0
    dt = sim.config.timestep_s
    for step in range(1, int(max_seconds / dt)):
        state = sim.state[0]
        view = sim.step(driver.act(state[:, [0, 1, 4]], state[:, 3])[None])
        contacts += int(view.collided.sum())
        s = path.project(view.state[0, :, :2])[0][0]
        ds = (s - s_prev + path.length / 2) % path.length - path.length / 2  # unwrap across the start line
        progress += ds
        s_prev = s
        if progress >= path.length:
            return step * dt, contacts
    return None, contacts


def test_pure_pursuit_laps_the_raceline(racetrack):
    raceline = racetrack.raceline
    path = raceline.kept_clear(racetrack, WALL_CLEARANCE_M)
    reference = raceline_lap_time(raceline, F1TENTH.v_max)
    lap_time, contacts = drive_one_lap(racetrack, path, PurePursuitConfig(), max_seconds=2 * reference)
    assert contacts == 0
    assert lap_time is not None
    assert lap_time <= 1.25 * reference
    assert lap_time >= 0.95 * reference  # faster than the optimised line would mean the lap was cut short


def test_reference_times_match_the_readme(racetrack):
    expected = {"Spielberg": 45.1, "Silverstone": 60.6, "Oschersleben": 35.8}[racetrack.name]
    assert raceline_lap_time(racetrack.raceline, F1TENTH.v_max) == pytest.approx(expected, abs=0.1)


def test_steering_points_at_the_path(line_track):
    driver = PurePursuit(line_track.centerline, F1TENTH, PurePursuitConfig(max_speed_mps=2.0))
    actions = driver.act(np.array([[0.0, 0.5, 0.0], [0.0, -0.5, 0.0], [0.0, 0.0, 0.0]]), np.zeros(3))
    assert actions[0, 0] < 0 < actions[1, 0]  # left of the line steers right, and vice versa
    assert actions[2, 0] == pytest.approx(0.0)
    np.testing.assert_allclose(actions[:, 1], 2.0)  # no speed profile: the cap


def test_pure_pursuit_steering_formula():
    """Target 1 m ahead and 1 m left of the rear axle: delta = atan(2 L sin(alpha) / l_d) = atan(L)."""
    path = Polyline(points=np.array([[0.0, 1.0], [100.0, 1.0]]), closed=False)
    driver = PurePursuit(path, F1TENTH, PurePursuitConfig(lookahead_base_m=1.0, lookahead_gain_s=0.0))
    # Rear axle at the origin: the reference point sits lr ahead of it.
    steer = driver.act(np.array([[F1TENTH.lr, 0.0, 0.0]]), np.zeros(1))[0, 0]
    assert steer == pytest.approx(np.arctan(2 * F1TENTH.wheelbase * 1.0 / 2.0))
