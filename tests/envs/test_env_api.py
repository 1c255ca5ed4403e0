"""Library API conformance: PettingZoo's parallel_api_test, gymnasium's check_env, and SB3 PPO training."""

from __future__ import annotations

import warnings
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

from multi_agent_rl.envs import EnvConfig, RacingEnv, SingleAgentEnv, VectorRacingEnv, racing_env_config
from multi_agent_rl.tasks import GaplockConfig, RacingConfig

SHORT_GAPLOCK = EnvConfig(task=GaplockConfig(max_steps=300))


@pytest.mark.parametrize(
    "config", [SHORT_GAPLOCK, racing_env_config(num_cars=3, max_steps=300)], ids=["gaplock", "racing-3-cars"]
)
def test_parallel_api(config):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PettingZoo reports some API slips as warnings only
        parallel_api_test(RacingEnv(config, seed=0), num_cycles=400)


def test_parallel_env_removes_done_agents_and_keeps_flags_apart():
    env = RacingEnv(racing_env_config(num_cars=2, max_steps=150), seed=0)
    env.reset(seed=1)
    # F1TENTH speed commands span [-5, 20] m/s, so normalised -0.4 is 2.5 m/s and -0.6 is 0 m/s:
    # car_0 steers hard left into the wall 0.8 m away, car_1 stands still until the timeout
    done = {}
    for _ in range(160):
        actions = {a: (np.array([1.0, -0.4]) if a == "car_0" else np.array([0.0, -0.6])) for a in env.agents}
        _, _, term, trunc, infos = env.step(actions)
        for a in term:
            if term[a] or trunc[a]:
                done[a] = (term[a], trunc[a], infos[a]["outcome"])
        if not env.agents:
            break
    assert done["car_1"] == (False, True, "timeout")
    assert done["car_0"] == (True, False, "collision")


def test_parallel_env_infos_carry_reward_terms():
    env = RacingEnv(SHORT_GAPLOCK, seed=0)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
    for agent, info in infos.items():
        assert rewards[agent] == pytest.approx(sum(info["reward_terms"].values()))
        assert info["outcome"] == ""


def test_single_agent_check_env():
    env = gym.make("multi_agent_rl/Gaplock-v0", config=SHORT_GAPLOCK, render_mode="rgb_array")
    assert isinstance(env.unwrapped, SingleAgentEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures too
        check_env(env.unwrapped, skip_render_check=False)
    normalized = SingleAgentEnv(replace(SHORT_GAPLOCK, normalize_observations=True))
    normalized.normalizer.eval()  # a learning normaliser changes what the same seed yields, by design
    check_env(normalized, skip_render_check=True)


def test_single_agent_check_env_with_a_learner_action_repeat():
    """Ten sim steps per decision (the defender acting on each): still a conforming gymnasium env, rendering too."""
    config = replace(SHORT_GAPLOCK, learner_action_repeat=10)
    env = gym.make("multi_agent_rl/Gaplock-v0", config=config, render_mode="rgb_array")
    assert env.unwrapped.batch.repeat == 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


def test_single_agent_refuses_to_step_a_finished_episode():
    env = SingleAgentEnv(EnvConfig(task=GaplockConfig(max_steps=3)))
    env.reset(seed=0)
    for _ in range(3):
        _, _, term, trunc, info = env.step(env.action_space.sample())
    assert trunc and not term and info["outcome"] == "timeout"
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_single_agent_racing_view_without_opponents():
    env = SingleAgentEnv(racing_env_config(max_steps=100), seed=0)
    check_env(env, skip_render_check=True)


def test_bad_setup_is_explained():
    with pytest.raises(ValueError, match="learner_car"):
        SingleAgentEnv(replace(SHORT_GAPLOCK, learner_car=2))
    with pytest.raises(ValueError, match="vehicle"):
        EnvConfig(vehicle="tank")
    with pytest.raises(ValueError, match="opponents"):
        SingleAgentEnv(replace(racing_env_config(num_cars=3), opponents=(None, None, None)))
    with pytest.raises(ValueError, match="lidar_beams"):
        SingleAgentEnv(
            replace(SHORT_GAPLOCK, observation=replace(SHORT_GAPLOCK.observation, lidar_beams=2000))
        )
    with pytest.raises(ValueError, match="task"):
        EnvConfig(task=RacingConfig)


def test_sb3_ppo_trains_on_the_gaplock_view():
    """A library nobody here wrote: Stable-Baselines3 PPO collects and learns from 2,048 steps."""
    sb3 = pytest.importorskip("stable_baselines3")
    env = SingleAgentEnv(EnvConfig(), seed=0)
    model = sb3.PPO(
        "MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu", verbose=0
    )
    model.set_logger(sb3.common.logger.Logger(None, []))  # SB3's default logger leaves a $TMPDIR/SB3-* dir
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_reset_options_place_the_cars():
    poses = np.array([[-40.0, 0.5, 0.1], [-42.0, -0.5, 0.0]])
    env = SingleAgentEnv(SHORT_GAPLOCK)
    _, info = env.reset(seed=0, options={"poses": poses, "speeds": np.array([0.7, 0.0])})
    state = env.batch.core.state[0]
    np.testing.assert_allclose(state[:, [0, 1, 4]], poses)
    np.testing.assert_allclose(state[:, 3], [0.7, 0.0])
    assert info["spawn"] == "custom"
    multi = RacingEnv(SHORT_GAPLOCK)
    multi.reset(seed=0, options={"poses": poses})
    np.testing.assert_allclose(multi.state()[:, [0, 1, 4]], poses)


def test_registered_vector_id_builds_the_batched_env():
    vec = gym.make_vec("multi_agent_rl/GaplockVector-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       config=SHORT_GAPLOCK)
    assert isinstance(vec, VectorRacingEnv) and vec.num_envs == 3
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (3, vec.single_observation_space.shape[0])
