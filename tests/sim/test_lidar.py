"""LiDAR against analytic distances: corridor walls, other cars, the map border; noise statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.maps import TrackMap
from multi_agent_rl.sim.simulator import SimConfig, Simulator
from multi_agent_rl.sim.vehicle import F1TENTH

EXACT = LidarConfig(noise_std_m=0.0)


def corridor_ranges(x0, y0, heading, angles, half_width, x_ends=(-50.0, 50.0), max_range=30.0):
    """Analytic range of each beam to the walls of an axis-aligned corridor."""
    a = heading + angles
    c, s = np.cos(a), np.sin(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        to_side = np.where(s > 0, (half_width - y0) / s, np.where(s < 0, (-half_width - y0) / s, np.inf))
        to_end = np.where(c > 0, (x_ends[1] - x0) / c, np.where(c < 0, (x_ends[0] - x0) / c, np.inf))
    return np.minimum(np.minimum(to_side, to_end), max_range)


@pytest.mark.parametrize(
    "pose",
    [(-43.8, -0.8, 0.0), (0.013, 0.377, 0.3), (12.5, -0.6, -2.0), (47.9, 0.0, 0.1), (-30.0, 1.05, math.pi / 2)],
)
def test_corridor_walls_at_analytic_distance(line_track, pose):
    sim = Simulator(line_track, 1, 1, config=SimConfig(lidar=EXACT))
    view = sim.reset(np.array([pose]))
    expected = corridor_ranges(*pose, sim.beam_angles, half_width=1.3)
    # Walls lie on pixel boundaries here, so the refined range is exact up to float32 rounding.
    np.testing.assert_allclose(view.scans[0, 0], expected, rtol=0, atol=1e-4)
    assert np.abs(view.scans[0, 0] - expected).max() < line_track.resolution_m / 100


def test_rotated_map_origin(line_track):
    """A map whose origin has a yaw: world-frame ranges must not change with the map's own rotation."""
    yaw = 0.7
    free = line_track.free
    ox, oy = -50.5, -1.8
    # Rotate the origin about the world origin so the corridor still lies on the x axis... of a rotated world.
    c, s = math.cos(yaw), math.sin(yaw)
    rotated = TrackMap(free, line_track.resolution_m, (c * ox - s * oy, s * ox + c * oy, yaw))
    x, y, heading = 3.0, 0.4, 0.25
    world_pose = (c * x - s * y, s * x + c * y, heading + yaw)
    sim = Simulator(rotated, 1, 1, config=SimConfig(lidar=EXACT))
    ranges = sim.reset(np.array([world_pose])).scans[0, 0]
    expected = corridor_ranges(x, y, heading, sim.beam_angles, half_width=1.3)
    np.testing.assert_allclose(ranges, expected, rtol=0, atol=1e-3)


def test_beam_layout():
    cfg = LidarConfig(num_beams=108, fov_rad=4.7)
    angles = cfg.beam_angles()
    assert angles[0] == pytest.approx(-2.35)  # right-rear
    assert angles[-1] == pytest.approx(2.35)
    assert np.diff(angles) == pytest.approx(np.full(107, 4.7 / 107))
    odd = LidarConfig(num_beams=1081).beam_angles()
    assert odd[540] == pytest.approx(0.0, abs=1e-12)  # the middle beam looks straight ahead


def test_opponent_rectangle_at_analytic_distance(line_track_wide):
    sim = Simulator(line_track_wide, 1, 2, vehicle=F1TENTH, config=SimConfig(lidar=LidarConfig(
        num_beams=1081, noise_std_m=0.0)))
    half_l, half_w = F1TENTH.length / 2, F1TENTH.width / 2
    view = sim.reset(np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]))
    angles = sim.beam_angles
    ahead = view.scans[0, 0]
    assert ahead[540] == pytest.approx(5.0 - half_l, abs=1e-5)
    # Beams that meet the opponent's rear face x = 5 - half_l within its width.
    hits_rear = np.abs((5.0 - half_l) * np.tan(angles)) < half_w - 1e-3
    hits_rear &= np.abs(angles) < 0.5
    np.testing.assert_allclose(ahead[hits_rear], (5.0 - half_l) / np.cos(angles[hits_rear]), atol=1e-5)
    # The opponent sees our front face, 180 degrees behind it, on its rear beams... which the 4.7 rad FOV lacks:
    # its beams toward us (|angle| > 2.35) do not exist, so its scan only holds walls.
    walls_only = corridor_ranges(5.0, 0.0, 0.0, angles, half_width=2.45)
    np.testing.assert_allclose(view.scans[0, 1], walls_only, atol=1e-4)
    # Turned across the corridor, the opponent shows its side: nearest face at 5 - half_w.
    view = sim.reset(np.array([[0.0, 0.0, 0.0], [5.0, 0.0, math.pi / 2]]))
    assert view.scans[0, 0, 540] == pytest.approx(5.0 - half_w, abs=1e-5)


def test_noise_has_configured_sigma_and_differs_between_cars_and_episodes(line_track_wide):
    sigma = 0.01
    clean = Simulator(line_track_wide, 1, 2, config=SimConfig(lidar=EXACT))
    noisy = Simulator(line_track_wide, 1, 2, config=SimConfig(lidar=LidarConfig(noise_std_m=sigma)), seed=3)
    poses = np.array([[-20.0, 1.0, 0.0], [-20.0, -1.0, 0.0]])
    reference = clean.reset(poses).scans[0].copy()
    first = noisy.reset(poses).scans[0].copy()
    second = noisy.reset(poses).scans[0].copy()  # no seed: the generator continues
    inside = reference < 29.0  # clipping at max range would bias the statistics
    residual = (first - reference)[inside]
    assert residual.std() == pytest.approx(sigma, rel=0.05)
    assert abs(residual.mean()) < 3 * sigma / math.sqrt(residual.size)
    assert not np.allclose(first[0] - reference[0], first[1] - reference[1])  # cars differ
    assert not np.allclose(first, second)  # episodes differ
    reseeded_a = noisy.reset(poses, seeds=[7]).scans[0].copy()
    reseeded_b = noisy.reset(poses, seeds=[7]).scans[0].copy()
    np.testing.assert_array_equal(reseeded_a, reseeded_b)  # an explicit seed reproduces


def test_outside_the_map_counts_as_obstacle():
    free = np.ones((40, 60), dtype=bool)  # no walls drawn at all: the border is the only obstacle
    track = TrackMap(free, 0.1, (0.0, 0.0, 0.0))
    sim = Simulator(track, 1, 1, config=SimConfig(lidar=LidarConfig(num_beams=361, fov_rad=2 * math.pi,
                                                                   noise_std_m=0.0)))
    view = sim.reset(np.array([[2.0, 1.5, 0.0]]))
    angles = sim.beam_angles
    c, s = np.cos(angles), np.sin(angles)
    with np.errstate(divide="ignore"):
        tx = np.where(c > 0, (6.0 - 2.0) / c, np.where(c < 0, -2.0 / c, np.inf))
        ty = np.where(s > 0, (4.0 - 1.5) / s, np.where(s < 0, -1.5 / s, np.inf))
    np.testing.assert_allclose(view.scans[0, 0], np.minimum(tx, ty), atol=1e-4)


def test_max_range_caps_and_sensor_in_wall_reads_zero(line_track):
    sim = Simulator(line_track, 1, 1, config=SimConfig(lidar=LidarConfig(max_range_m=5.0, noise_std_m=0.0)))
    scans = sim.reset(np.array([[0.0, 0.0, 0.0]])).scans[0, 0]
    assert scans.max() == pytest.approx(5.0)
    assert scans[len(scans) // 2] == pytest.approx(5.0)
    inside_wall = sim.reset(np.array([[0.0, 1.6, 0.0]])).scans[0, 0]
    assert (inside_wall == 0.0).all()


def test_mount_offset_moves_the_sensor_forward(line_track):
    plain = Simulator(line_track, 1, 1, config=SimConfig(lidar=EXACT))
    mounted = Simulator(line_track, 1, 1, config=SimConfig(lidar=LidarConfig(noise_std_m=0.0,
                                                                             mount_offset_m=0.25)))
    pose = np.array([[0.0, 0.0, math.pi / 2]])  # facing the left wall 1.3 m away
    assert plain.reset(pose).scans[0, 0, 540] == pytest.approx(1.3, abs=1e-5)
    assert mounted.reset(pose).scans[0, 0, 540] == pytest.approx(1.05, abs=1e-5)


def test_simulators_on_different_maps_do_not_interfere(line_track, line_track_wide):
    pose = np.array([[0.0, 0.5, 0.2]])
    alone_a = Simulator(line_track, 1, 1, config=SimConfig(lidar=EXACT)).reset(pose).scans.copy()
    alone_b = Simulator(line_track_wide, 1, 1, config=SimConfig(lidar=LidarConfig(
        num_beams=108, noise_std_m=0.0))).reset(pose).scans.copy()
    a = Simulator(line_track, 1, 1, config=SimConfig(lidar=EXACT))
    b = Simulator(line_track_wide, 1, 1, config=SimConfig(lidar=LidarConfig(num_beams=108, noise_std_m=0.0)))
    a.reset(pose)
    b.reset(pose)
    for _ in range(5):
        a.step(np.array([[[0.0, 0.0]]]))
        b.step(np.array([[[0.0, 0.0]]]))
    np.testing.assert_array_equal(a.reset(pose).scans, alone_a)
    np.testing.assert_array_equal(b.reset(pose).scans, alone_b)
    assert line_track.distance_px is line_track.distance_px  # computed once, kept on the map


@pytest.mark.parametrize("threads", ["never", "always"])
def test_a_skipped_scan_cast_later_equals_the_full_step(line_track_wide, threads):
    """``step(actions, scan=mask)`` leaves the unscanned cars' rows as they were; ``cast`` before the next
    step gives exactly the scans a full step casts, LiDAR noise included (every step draws every car's noise)."""
    lidar = LidarConfig(num_beams=270, noise_std_m=0.02)
    config = SimConfig(lidar=lidar, threads=threads)
    full, skipping = (Simulator(line_track_wide, 3, 2, config=config, seed=5) for _ in range(2))
    poses = np.array([[-20.0, 1.0, 0.0], [-18.0, -1.0, 0.1]])
    full.reset(poses)
    view = skipping.reset(poses)  # a live read-only view: it follows every step and cast
    actions = np.tile([0.2, 2.0], (3, 2, 1))
    others_only = np.array([[False, True]] * 3)
    for _ in range(3):
        before = view.scans.copy()
        expected = full.step(actions).scans
        skipping.step(actions, scan=others_only)
        np.testing.assert_array_equal(view.scans[:, 1], expected[:, 1])
        np.testing.assert_array_equal(view.scans[:, 0], before[:, 0])  # not cast: the last scan stays
        assert not np.array_equal(view.scans[:, 0], expected[:, 0])
        skipping.cast(np.array([[True, False], [False, False], [True, False]]))
        np.testing.assert_array_equal(view.scans[[0, 2], 0], expected[[0, 2], 0])
        np.testing.assert_array_equal(view.scans[1, 0], before[1, 0])
        skipping.cast(~others_only)
        np.testing.assert_array_equal(view.scans, expected)
    with pytest.raises(ValueError, match=r"scan must be a bool array of shape \(envs, cars\) = \(3, 2\)"):
        skipping.step(actions, scan=np.ones((3,), dtype=bool))
    with pytest.raises(ValueError, match=r"cars must be a bool array of shape \(envs, cars\) = \(3, 2\)"):
        skipping.cast(np.ones((3, 2)))
