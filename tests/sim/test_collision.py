"""Contacts: rectangle overlap by hand, cars against walls (head-on, side, at rest), car against car."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multi_agent_rl.sim.collision import rectangles_overlap, touches_wall
from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.simulator import SimConfig, Simulator
from multi_agent_rl.sim.vehicle import F1TENTH, LIMO

NO_LIDAR = SimConfig(lidar=LidarConfig(num_beams=0))
HALF_L, HALF_W = F1TENTH.length / 2, F1TENTH.width / 2


@pytest.mark.parametrize(
    ("second", "overlap"),
    [
        ((2.0, 0.0, 0.0), True),  # end faces touch exactly (unit squares, centres 2 apart)
        ((2.001, 0.0, 0.0), False),
        ((1.5, 0.5, 0.0), True),
        ((0.0, 2.0, 0.0), True),  # side faces touch
        ((0.0, 2.001, 0.0), False),
        ((1.0 + math.sqrt(2) - 1e-3, 0.0, math.pi / 4), True),  # diamond corner just inside
        ((1.0 + math.sqrt(2) + 1e-3, 0.0, math.pi / 4), False),  # ... just outside
        ((2.2, 2.2, math.pi / 4), False),  # bounding boxes overlap, the shapes do not
    ],
)
def test_rectangle_overlap_by_hand(second, overlap):
    x, y, psi = second
    assert rectangles_overlap(0.0, 0.0, 0.0, 1.0, 1.0, x, y, psi, 1.0, 1.0) == overlap
    assert rectangles_overlap(x, y, psi, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0) == overlap


def test_footprint_against_corridor_wall(line_track):
    # The left wall starts at y = 1.3; a car heading +x has its side at y + HALF_W.
    clear = 1.3 - HALF_W - 0.01
    touching = 1.3 - HALF_W + 0.005
    poses = np.array([[0.0, clear, 0.0], [0.0, touching, 0.0], [0.0, 1.3 - HALF_L - 0.01, math.pi / 2],
                      [0.0, 1.3 - HALF_L + 0.01, math.pi / 2]])
    np.testing.assert_array_equal(
        touches_wall(line_track, poses, F1TENTH.length, F1TENTH.width), [False, True, False, True])
    # Rotated 30 degrees: the front-left corner reaches y + HALF_L sin30 + HALF_W cos30.
    reach = HALF_L * 0.5 + HALF_W * math.cos(math.pi / 6)
    rotated = np.array([[0.0, 1.3 - reach - 0.01, math.pi / 6], [0.0, 1.3 - reach + 0.01, math.pi / 6]])
    np.testing.assert_array_equal(
        touches_wall(line_track, rotated, F1TENTH.length, F1TENTH.width), [False, True])


def test_car_driven_into_wall_stops_at_pre_step_pose_and_is_flagged(line_track):
    sim = Simulator(line_track, 1, 1, config=NO_LIDAR)
    sim.reset(np.array([[0.0, 0.0, math.pi / 2]]), speeds=np.array([[3.0]]))
    flagged_at = None
    for k in range(200):
        before = sim.state.copy()
        view = sim.step(np.array([[[0.0, 3.0]]]))
        if view.collided[0, 0]:
            flagged_at = k
            break
    assert flagged_at is not None
    assert not sim.car_contact.any()  # a wall, not a car
    state = view.state[0, 0]
    np.testing.assert_array_equal(state[[0, 1, 4]], before[0, 0, [0, 1, 4]])
    assert state[3] == 0.0 and state[5] == 0.0
    assert state[1] + HALF_L <= 1.3  # the nose never entered the wall
    assert state[1] + HALF_L > 1.3 - 3.0 * 0.01 - 1e-9  # it stopped within one step's travel of it


def test_side_contact_is_flagged(line_track):
    """Driving parallel to the wall while drifting toward it: the side touches first, not the nose."""
    sim = Simulator(line_track, 1, 1, config=NO_LIDAR)
    sim.reset(np.array([[0.0, 1.3 - HALF_W - 0.02, 0.02]]), speeds=np.array([[2.0]]))
    for _ in range(100):
        view = sim.step(np.array([[[0.0, 2.0]]]))
        if view.collided[0, 0]:
            break
    assert view.collided[0, 0]
    assert abs(view.state[0, 0, 4]) < 0.05  # still nearly parallel to the wall


def test_car_at_rest_against_wall_is_flagged(line_track):
    sim = Simulator(line_track, 1, 1, config=NO_LIDAR)
    view = sim.reset(np.array([[0.0, 1.3 - HALF_W + 0.01, 0.0]]))
    assert view.collided[0, 0]
    assert sim.step(np.zeros((1, 1, 2))).collided[0, 0]
    away = sim.reset(np.array([[0.0, 0.0, 0.0]]))
    assert not away.collided[0, 0]


def test_car_car_contact_flags_both_and_stops_them(line_track):
    sim = Simulator(line_track, 2, 2, vehicle=LIMO, config=NO_LIDAR)
    # Copy 0: nose to tail 0.05 m apart, the rear car faster. Copy 1: the same cars 5 m apart.
    sim.reset(np.array([[[0.0, 0.0, 0.0], [LIMO.length + 0.05, 0.0, 0.0]],
                        [[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]]), speeds=np.array([[1.0, 0.0], [1.0, 0.0]]))
    hit = False
    for _ in range(20):
        view = sim.step(np.array([[[0.0, 1.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]))
        hit = hit or view.collided[0].all()
        np.testing.assert_array_equal(sim.car_contact, view.collided)  # every contact here is car-car
        assert not view.collided[1].any()
    assert hit
    assert view.state[0, 0, 0] + LIMO.length / 2 <= view.state[0, 1, 0] - LIMO.length / 2 + 1e-9
