"""Observation components on hand-built states, and declared spaces holding every observation of long random
runs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from multi_agent_rl.envs import (
    EnvConfig,
    ObservationConfig,
    RacingEnv,
    SingleAgentEnv,
    VectorRacingEnv,
    racing_env_config,
)
from multi_agent_rl.envs.observations import ObservationBuilder
from multi_agent_rl.sim.lidar import LidarConfig
from multi_agent_rl.sim.vehicle import LIMO
from multi_agent_rl.tasks import GaplockConfig

ALL = ("lidar", "ego", "opponent_pose", "opponent_motion", "prev_action")


def car(x=0.0, y=0.0, yaw=0.0, v=0.0, yaw_rate=0.0, slip=0.0):
    return [x, y, 0.0, v, yaw, yaw_rate, slip]


def build(config: ObservationConfig, state, scans=None, prev=None):
    state = np.array([state], dtype=float)
    n = state.shape[1]
    lidar = LidarConfig(num_beams=1080, max_range_m=30.0)
    builder = ObservationBuilder(config, 1, n, LIMO, lidar)
    scans = np.full((1, n, 1080), 30.0, np.float32) if scans is None else scans
    prev = np.zeros((1, n, 2)) if prev is None else prev
    return builder, builder.reset(np.array([0]), state, scans, prev)


def test_layout_follows_the_configured_order():
    cfg = ObservationConfig(components=("ego", "prev_action", "lidar"), lidar_beams=10)
    builder, _ = build(cfg, [car(), car(2.0)])
    assert builder.layout == {"ego": slice(0, 3), "prev_action": slice(3, 5), "lidar": slice(5, 15)}
    assert builder.size == 15


def test_opponent_pose_and_motion_in_the_ego_frame():
    """Ego at the origin heading +y; the other car 2 m ahead and 1 m to the ego's right, heading +x at 0.5
    m/s."""
    cfg = ObservationConfig(components=("opponent_pose", "opponent_motion"), opponent_range_m=10.0)
    ego = car(0.0, 0.0, yaw=math.pi / 2)
    other = car(1.0, 2.0, yaw=0.0, v=0.5, yaw_rate=0.3)
    builder, obs = build(cfg, [ego, other])
    pose, motion = obs[0, 0, :5], obs[0, 0, 5:]
    np.testing.assert_allclose(
        pose, [0.2, -0.1, math.sin(-math.pi / 2), math.cos(-math.pi / 2), math.sqrt(5) / 10], atol=1e-6
    )
    v_scale = max(LIMO.v_max, -LIMO.v_min)
    yaw_scale = LIMO.v_max * math.tan(LIMO.s_max) / LIMO.wheelbase
    np.testing.assert_allclose(
        motion, [0.0, -0.5 / v_scale, 0.3 / yaw_scale], atol=1e-6
    )  # moving to ego's right


def test_ego_motion_uses_slip():
    cfg = ObservationConfig(components=("ego",))
    _, obs = build(cfg, [car(v=0.8, slip=0.1, yaw_rate=-0.5)])
    yaw_scale = LIMO.v_max * math.tan(LIMO.s_max) / LIMO.wheelbase
    np.testing.assert_allclose(
        obs[0, 0], [0.8 * math.cos(0.1), 0.8 * math.sin(0.1), -0.5 / yaw_scale], rtol=1e-6
    )


def test_lidar_subsample_keeps_window_middles_and_min_keeps_the_nearest():
    scans = np.linspace(1.0, 29.0, 1080, dtype=np.float32)[None, None].copy()
    scans[0, 0, 3] = 0.5  # a thin obstacle inside the first window
    sub_cfg = ObservationConfig(components=("lidar",), lidar_beams=108, lidar_range_m=10.0)
    _, sub = build(sub_cfg, [car()], scans)
    _, low = build(replace(sub_cfg, lidar_reduce="min"), [car()], scans)
    assert sub[0, 0, 0] == pytest.approx(scans[0, 0, 4] / 10.0)  # beams 0..9, middle 4
    assert low[0, 0, 0] == pytest.approx(0.05)
    assert np.all(low <= sub) and sub.max() == 1.0  # clipped at lidar_range_m


def test_prev_action_and_frame_stack():
    cfg = ObservationConfig(components=("ego", "prev_action"), frame_stack=3)
    builder, first = build(cfg, [car(v=0.2)])
    np.testing.assert_array_equal(first[0, 0, :5], first[0, 0, 5:10])
    state = np.array([[car(v=0.6)]])
    prev = np.array([[[0.5, -0.25]]])
    out = builder.build(state, np.zeros((1, 1, 1080), np.float32), prev)
    np.testing.assert_allclose(out[0, 0, 10:15], [0.6, 0.0, 0.0, 0.5, -0.25])
    np.testing.assert_allclose(out[0, 0, 0:5], [0.2, 0, 0, 0, 0])  # oldest first


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"components": ("lidar", "radar")}, "components"),
        ({"components": ("ego", "ego")}, "components"),
        ({"lidar_reduce": "mean"}, "lidar_reduce"),
        ({"frame_stack": 0}, "frame_stack"),
    ],
)
def test_bad_observation_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        ObservationConfig(**kwargs)


CONFIGS = {
    "gaplock-default": EnvConfig(task=GaplockConfig(max_steps=500)),
    "gaplock-everything-stacked": EnvConfig(
        task=GaplockConfig(max_steps=500),
        observation=ObservationConfig(components=ALL, frame_stack=3, lidar_reduce="min", lidar_range_m=3.0),
    ),
    "racing-3-cars": racing_env_config(num_cars=3, max_steps=500),
    "gaplock-physical-actions": EnvConfig(
        task=GaplockConfig(max_steps=500), action=replace(EnvConfig().action, normalized=False)
    ),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_spaces_hold_every_observation_of_random_runs(name):
    """3,000 random steps of the PettingZoo env (every car acting at random, so crashes, spins and reversing
    happen), checking every agent's observation against its declared space."""
    env = RacingEnv(CONFIGS[name], seed=0)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for agent, o in obs.items():
        assert env.observation_space(agent).contains(o), agent
    for _ in range(3000):
        actions = {a: env.action_space(a).sample() for a in env.agents}
        if rng.random() < 0.5:  # half the time: full throttle, hard steering (extremes of the state space)
            actions = {a: np.sign(rng.uniform(-1, 1, 2)).astype(np.float32) for a in env.agents}
        obs, *_ = env.step(actions)
        for agent, o in obs.items():
            assert env.observation_space(agent).contains(o), (agent, o)
        if not env.agents:
            obs, _ = env.reset()


def test_vector_and_normalised_views_hold_their_observations():
    vec = VectorRacingEnv(
        replace(CONFIGS["gaplock-default"], normalize_observations=True, normalizer_clip=5.0),
        num_envs=4,
        seed=0,
    )
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    for _ in range(500):
        obs, _, _, _, info = vec.step(vec.action_space.sample())
        assert vec.observation_space.contains(obs)
        if "final_obs" in info:
            assert vec.single_observation_space.contains(info["final_obs"][info["_final_obs"]][0])
    single = SingleAgentEnv(CONFIGS["gaplock-everything-stacked"], seed=0)
    obs, _ = single.reset(seed=1)
    for _ in range(500):
        assert single.observation_space.contains(obs)
        obs, _, term, trunc, _ = single.step(single.action_space.sample())
        if term or trunc:
            obs, _ = single.reset()


def test_extreme_states_are_clipped_into_the_declared_bounds():
    """A spinning car, a far-away opponent and out-of-range ranges still give in-bounds observations."""
    cfg = ObservationConfig(components=ALL, lidar_beams=108)
    scans = np.full((1, 2, 1080), 1e6, np.float32)
    scans[..., :5] = -1.0
    builder, obs = build(
        cfg,
        [car(v=-3.0, yaw_rate=500.0, slip=1.2), car(400.0, -300.0, v=9.0, yaw_rate=-80.0)],
        scans,
        np.full((1, 2, 2), 1.0),
    )
    assert np.all(obs >= builder.low) and np.all(obs <= builder.high)
    assert obs[0, 0, builder.layout["ego"]][2] == 1.0
    assert obs[0, 0, builder.layout["opponent_pose"]][4] == 1.0
