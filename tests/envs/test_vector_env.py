"""The vector env: same-step autoreset, final observations and infos, reset masks, seeds, batching."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from multi_agent_rl.envs import EnvConfig, SingleAgentEnv, VectorRacingEnv
from multi_agent_rl.tasks import GaplockConfig

CONFIG = EnvConfig(task=GaplockConfig(max_steps=60))


def test_declares_same_step_autoreset_and_batched_spaces():
    env = VectorRacingEnv(CONFIG, num_envs=5, seed=0)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.observation_space.shape == (5, env.single_observation_space.shape[0])
    assert env.action_space.shape == (5, 2)


def test_same_step_autoreset_keeps_the_final_observation():
    """Copy 0 times out on step 60: that step returns its reward and truncation, the next episode's first
    observation, and the last observation of the ended episode in info["final_obs"]."""
    env = VectorRacingEnv(CONFIG, num_envs=3, seed=0)
    env.reset(seed=0)
    shadow = SingleAgentEnv(CONFIG)  # replays copy 0 (seed 0 + 0) to know its true last observation
    shadow.reset(seed=0)
    actions = np.tile([0.0, 0.6], (3, 1)).astype(np.float32)  # drive on: no idle stop before the timeout
    for k in range(1, 61):
        obs, rewards, term, trunc, info = env.step(actions)
        s_obs, s_rew, s_term, s_trunc, s_info = shadow.step(actions[0])
        if k < 60:
            assert "final_obs" not in info
            np.testing.assert_array_equal(obs[0], s_obs)
    assert trunc.all() and not term.any()
    assert s_trunc and s_info["outcome"] == "timeout"
    assert rewards[0] == s_rew
    np.testing.assert_array_equal(info["final_obs"][0], s_obs)
    assert info["_final_obs"].all() and info["_final_info"].all()
    assert list(info["final_info"]["outcome"]) == ["timeout"] * 3
    assert np.all(info["final_info"]["episode_length"] == 60)
    np.testing.assert_allclose(info["episode"]["r"], info["final_info"]["episode_return"])
    assert not np.array_equal(obs[0], s_obs)  # already the next episode's first observation
    assert np.all(env.batch.core.episode_step == 0)
    np.testing.assert_allclose(rewards, [sum(v[i] for v in info["reward_terms"].values()) for i in range(3)])


def test_raw_observations_are_the_returned_ones_before_normalisation():
    """``raw_obs`` and ``info["final_raw_obs"]`` (what off-policy learners store) are the returned observations
    and final observations before the normaliser (frozen here, so one set of statistics maps one onto the
    other); without a normaliser they are the same arrays' values."""
    for normalize in (False, True):
        env = VectorRacingEnv(replace(CONFIG, normalize_observations=normalize), num_envs=3, seed=0)
        obs, _ = env.reset(seed=0)
        to_obs = (lambda raw: raw) if env.normalizer is None else env.normalizer.eval().normalize
        if env.normalizer is not None:
            env.normalizer.update(obs * 3.0 + 1.0)  # statistics that differ from the identity
            obs, _ = env.reset(seed=0)
        np.testing.assert_array_equal(obs, to_obs(env.raw_obs))
        actions = np.tile([0.0, 0.6], (3, 1)).astype(np.float32)
        for _ in range(60):
            obs, _, term, trunc, info = env.step(actions)
            np.testing.assert_array_equal(obs, to_obs(env.raw_obs))
        assert (term | trunc).all()
        np.testing.assert_array_equal(info["final_obs"], to_obs(info["final_raw_obs"]))
        assert not np.array_equal(info["final_raw_obs"], env.raw_obs)  # the ended episodes', not the new ones'
        if normalize:
            assert not np.allclose(info["final_obs"], info["final_raw_obs"])


def test_only_ended_copies_reset():
    config = EnvConfig(task=GaplockConfig(max_steps=5000, idle_steps=10))
    env = VectorRacingEnv(config, num_envs=2, seed=0)
    env.reset(seed=0)
    actions = np.array([[0.0, 0.0], [0.0, 0.6]], dtype=np.float32)  # copy 0 stops (idle), copy 1 drives
    for _ in range(400):
        _, _, term, trunc, info = env.step(actions)
        if trunc[0]:
            break
    assert trunc[0] and not trunc[1] and not term.any()
    assert info["final_info"]["outcome"][0] == "idle_stop" and info["final_info"]["outcome"][1] == ""
    assert info["_final_obs"].tolist() == [True, False]
    assert env.batch.core.episode_step[0] == 0 and env.batch.core.episode_step[1] > 10


def test_reset_mask_resets_only_the_selected_copies():
    env = VectorRacingEnv(CONFIG, num_envs=3, seed=0)
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros((3, 2), np.float32))
    obs, _ = env.reset(seed=[None, 42, None], options={"reset_mask": np.array([False, True, False])})
    assert env.batch.core.episode_step.tolist() == [5, 0, 5]
    alone = SingleAgentEnv(CONFIG)
    np.testing.assert_array_equal(obs[1], alone.reset(seed=42)[0])
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.array([1, 0, 0])})


def test_step_checks_the_batch_shape_and_requires_a_reset():
    env = VectorRacingEnv(CONFIG, num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((2, 2)))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="num_envs, 2"):
        env.step(np.zeros((3, 2)))


def test_copies_are_independent():
    """Copy 1's trajectory does not depend on what copy 0 does."""

    def run(action0):
        env = VectorRacingEnv(CONFIG, num_envs=2)
        env.reset(seed=3)
        out = []
        for _ in range(50):
            obs, *_ = env.step(np.array([action0, [0.1, 0.5]], dtype=np.float32))
            out.append(obs[1])
        return np.array(out)

    np.testing.assert_array_equal(run([1.0, 1.0]), run([-1.0, 0.0]))


def test_shared_normaliser_learns_in_training_and_freezes_in_eval():
    env = VectorRacingEnv(replace(CONFIG, normalize_observations=True), num_envs=4, seed=0)
    norm = env.normalizer
    env.reset(seed=0)
    count = norm.count
    env.step(env.action_space.sample())
    assert norm.count == pytest.approx(count + 4)
    norm.eval()
    frozen = norm.state_dict()
    env.step(env.action_space.sample())
    assert norm.count == frozen["count"]
    np.testing.assert_array_equal(norm.mean, frozen["mean"])
    evaluation = VectorRacingEnv(CONFIG, num_envs=1, normalizer=norm)
    assert evaluation.normalizer is norm


def test_a_done_car_stops_and_earns_nothing_while_its_rival_drives_on():
    """Head-to-head racing in the array core: car_0 crashes into the wall, car_1 keeps racing; car_0 then gets a
    stop command whatever it is sent, and zero reward, until the copy resets."""
    from multi_agent_rl.envs import BatchedEnv, racing_env_config

    env = BatchedEnv(racing_env_config(num_cars=2), num_envs=1, seed=0)
    env.reset()
    actions = np.array([[[0.4, 2.0], [0.0, 2.0]]])  # car_0 (left slot of grid_2) steers hard left into the wall
    for _ in range(300):
        result = env.step(actions)
        if result.terminated[0, 0]:
            break
    assert result.terminated[0, 0] and env.outcome_name(result.outcome[0, 0]) == "collision"
    assert env.active.tolist() == [[False, True]]
    pose = env.state[0, 0, [0, 1, 4]].copy()
    for _ in range(50):
        result = env.step(actions)
        assert result.rewards[0, 0] == 0.0 and not result.terminated[0, 0]
    np.testing.assert_allclose(env.state[0, 0, [0, 1, 4]], pose, atol=1e-3)
    assert env.state[0, 1, 0] > pose[0] + 1.0 and not env.done()[0]
