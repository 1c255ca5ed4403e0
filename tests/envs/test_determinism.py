"""Seeds: the same seed replays 1,000 steps exactly, different seeds differ, in every env form."""

from __future__ import annotations

import numpy as np

from multi_agent_rl.envs import EnvConfig, RacingEnv, SingleAgentEnv, VectorRacingEnv
from multi_agent_rl.envs.drivers import DriverConfig
from multi_agent_rl.tasks import GaplockConfig

STEPS = 1000
CONFIG = EnvConfig(task=GaplockConfig(max_steps=400))  # several episodes within 1,000 steps


def parallel_rollout(seed: int) -> np.ndarray:
    """1,000 steps of the PettingZoo env with actions from a generator seeded alike; records observations,
    rewards and flags of every agent, resetting (unseeded: the generators continue) when all are done."""
    env = RacingEnv(CONFIG)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    record = []
    for _ in range(STEPS):
        actions = {a: rng.uniform(-1, 1, 2) for a in env.agents}
        obs, rew, term, trunc, _ = env.step(actions)
        for a in sorted(obs):
            record.append(np.concatenate([obs[a], [rew[a], term[a], trunc[a]]]))
        if not env.agents:
            obs, _ = env.reset()
    return np.array(record)


def test_parallel_env_same_seed_same_trajectory():
    a, b = parallel_rollout(7), parallel_rollout(7)
    np.testing.assert_array_equal(a, b)
    assert a[:, -2:].any()  # episodes did end and restart within the window


def test_parallel_env_different_seeds_differ():
    assert not np.array_equal(parallel_rollout(7), parallel_rollout(8))


def single_rollout(seed: int, config: EnvConfig = CONFIG) -> tuple[np.ndarray, list[str]]:
    env = SingleAgentEnv(config)
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    rows, spawns = [], [info["spawn"]]
    for _ in range(STEPS):
        obs, rew, term, trunc, info = env.step(env.action_space.sample())
        rows.append(np.concatenate([obs, [rew, term, trunc]]))
        if term or trunc:
            obs, info = env.reset()
            spawns.append(info["spawn"])
    return np.array(rows), spawns


def test_single_agent_env_with_ftg_defender_replays():
    a, spawns_a = single_rollout(3)
    b, spawns_b = single_rollout(3)
    np.testing.assert_array_equal(a, b)
    assert spawns_a == spawns_b and len(spawns_a) > 1
    c, _ = single_rollout(4)
    assert not np.array_equal(a, c)


def test_single_agent_env_with_a_learner_action_repeat_replays():
    config = EnvConfig(task=GaplockConfig(max_steps=400), learner_action_repeat=10)
    a, spawns_a = single_rollout(3, config)
    b, spawns_b = single_rollout(3, config)
    np.testing.assert_array_equal(a, b)
    assert spawns_a == spawns_b and len(spawns_a) > 1


def test_random_opponent_is_seeded_by_reset():
    config = EnvConfig(task=GaplockConfig(max_steps=400), opponents=(DriverConfig(kind="random"),))
    a, _ = single_rollout(5, config)
    b, _ = single_rollout(5, config)
    np.testing.assert_array_equal(a, b)


def test_unseeded_resets_do_not_repeat_episodes():
    env = SingleAgentEnv(CONFIG)
    env.reset(seed=0)
    firsts = []
    for _ in range(3):
        obs, _ = env.reset()
        firsts.append(obs)
    assert len({obs.tobytes() for obs in firsts}) == 3  # fresh LiDAR noise (and draws) every episode


def test_vector_copy_i_replays_the_single_env_seeded_with_seed_plus_i():
    """reset(seed=s) seeds copy i with s + i: each copy follows the single env seeded with s + i exactly."""
    vec = VectorRacingEnv(CONFIG, num_envs=3)
    vec_obs, _ = vec.reset(seed=10)
    singles = [SingleAgentEnv(CONFIG) for _ in range(3)]
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(vec_obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    for _ in range(300):
        actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        vec_obs, vec_rew, vec_term, vec_trunc, _ = vec.step(actions)
        for i, env in enumerate(singles):
            obs, rew, term, trunc, _ = env.step(actions[i])
            assert (rew, term, trunc) == (vec_rew[i], vec_term[i], vec_trunc[i])
            if term or trunc:
                break
            np.testing.assert_array_equal(obs, vec_obs[i])
        if (vec_term | vec_trunc).any():
            break
