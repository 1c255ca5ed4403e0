"""The learner's action repeat (EnvConfig.learner_action_repeat): one decision = R sim steps with the learner's
action held, the drivers and the task running every sim step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from multi_agent_rl.envs import EnvConfig, RacingEnv, SingleAgentEnv, VectorRacingEnv
from multi_agent_rl.envs.drivers import FTGDriver, ftg_config_for
from multi_agent_rl.envs.learner import LearnerBatch
from multi_agent_rl.sim.vehicle import LIMO
from multi_agent_rl.tasks import GaplockConfig

CONFIG = EnvConfig(task=GaplockConfig(max_steps=400, idle_steps=30))
R = 10
INTO_THE_WALL = np.array([1.0, 1.0], dtype=np.float32)  # full left at 1 m/s: a self crash after ~1.6 s


class CountingFTG:
    """The default Follow-The-Gap defender, counting its calls."""

    def __init__(self, env_config: EnvConfig, num_envs: int = 1) -> None:
        self.ftg = FTGDriver(env_config.sim.lidar.beam_angles(), num_envs, ftg_config_for(LIMO))
        self.calls = 0

    def reset(self, env_ids: np.ndarray) -> None:
        self.ftg.reset(env_ids)

    def seed(self, seed: int | None) -> None:
        """Deterministic."""

    def act(self, state: np.ndarray, scans: np.ndarray, obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.ftg.act(state, scans, obs)


def old_learner_step(batch: LearnerBatch, learner_actions: np.ndarray):
    """The single-learner step as it was before the learner's action repeat: drivers act, one core step."""
    core = batch.core
    actions = np.zeros((core.num_envs, core.num_cars, 2))
    for j, m in enumerate(batch.others):
        actions[:, m] = batch.drivers[j].act(core.state[:, m], core.scans[:, m], core.observations[:, m])
    actions[:, batch.learner] = core.to_physical(learner_actions)
    return core.step(actions)


def test_repeat_1_is_bit_identical_to_the_old_step():
    """600 steps of 4 copies with resets: observations, rewards, flags, outcomes, terms and step counters are the
    same bytes as one core step per learner step."""
    new, old = LearnerBatch(CONFIG, 4, seed=5), LearnerBatch(CONFIG, 4, seed=5)
    new.reset(seeds=[5, 6, 7, 8])
    old.reset(seeds=[5, 6, 7, 8])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(600):
        actions = rng.uniform(-1, 1, (4, 2))
        got, want = new.step(actions), old_learner_step(old, actions)
        for g, w in zip(got[:5], want[:5], strict=True):
            assert g.tobytes() == w.tobytes()
        for name in want.terms:
            assert got.terms[name].tobytes() == want.terms[name].tobytes()
        np.testing.assert_array_equal(new.episode_decisions, old.core.episode_step)
        np.testing.assert_array_equal(new.episode_sim_steps, old.core.episode_step)
        assert new.final_state.tobytes() == old.core.state.tobytes()
        ended = np.flatnonzero(want.terminated[:, 0] | want.truncated[:, 0])
        if ended.size:
            ends += ended.size
            new.reset(ended)
            old.reset(ended)
    assert ends > 4  # the comparison crossed episode boundaries


def test_a_decision_is_r_sim_steps_with_the_driver_acting_on_each():
    """R = 10: the defender is asked 10 times per decision and the simulator advances 10 sim steps; time, poses,
    observations and the summed rewards equal 10 steps of R = 1 with the learner's action held."""
    config = replace(CONFIG, learner_action_repeat=R)
    slow_driver, fast_driver = CountingFTG(config), CountingFTG(CONFIG)
    slow = SingleAgentEnv(config, opponents=[slow_driver])
    fast = SingleAgentEnv(CONFIG, opponents=[fast_driver])
    slow.reset(seed=3)
    fast.reset(seed=3)
    actions = np.array([[0.1, 0.6], [-0.2, 0.8], [0.0, 1.0], [0.3, 0.2], [-0.1, 0.5]], dtype=np.float32)
    for d, action in enumerate(actions, start=1):
        calls = slow_driver.calls
        obs, reward, terminated, truncated, info = slow.step(action)
        assert slow_driver.calls - calls == R
        fast_reward, fast_terms = 0.0, dict.fromkeys(info["reward_terms"], 0.0)
        for _ in range(R):
            fast_obs, r, fast_term, fast_trunc, fast_info = fast.step(action)
            fast_reward += r
            for name, value in fast_info["reward_terms"].items():
                fast_terms[name] += value
        assert not (terminated or truncated or fast_term or fast_trunc)
        assert slow.batch.core.episode_step[0] == fast.batch.core.episode_step[0] == R * d
        assert slow_driver.calls == fast_driver.calls == R * d
        np.testing.assert_array_equal(slow.batch.core.state, fast.batch.core.state)
        np.testing.assert_array_equal(obs, fast_obs)
        assert reward == fast_reward
        assert info["reward_terms"] == fast_terms
        assert (info["episode_step"], info["episode_sim_steps"]) == (d, R * d)
        assert info["idle_steps"] == fast_info["idle_steps"]


def reference_episode(action: np.ndarray, seed: int, config: EnvConfig = CONFIG) -> list[tuple]:
    """Every sim step of an R = 1 episode with ``action`` held: (obs, reward, terminated, truncated, info,
    car states)."""
    env = SingleAgentEnv(config)
    env.reset(seed=seed)
    steps = []
    while True:
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, reward, terminated, truncated, info, env.batch.core.state[0].copy()))
        if terminated or truncated:
            return steps


@pytest.mark.parametrize(("max_steps", "outcome"), [(25, "timeout"), (400, "self_crash")])
def test_an_episode_ending_mid_decision_reports_that_sim_step(max_steps, outcome):
    """The episode ends at sim step k of a decision (k < R): the decision returns the observation, flags and
    outcome of sim step k and the rewards of sim steps 1..k only."""
    config = replace(CONFIG, task=replace(CONFIG.task, max_steps=max_steps))
    ref = reference_episode(INTO_THE_WALL, seed=2, config=config)
    end = len(ref)
    assert end % R != 0, "the setup must end mid-decision"
    decisions, k = divmod(end, R)
    env = SingleAgentEnv(replace(config, learner_action_repeat=R))
    env.reset(seed=2)
    for _ in range(decisions):
        assert env.step(INTO_THE_WALL)[2:4] == (False, False)
    obs, reward, terminated, truncated, info = env.step(INTO_THE_WALL)
    ref_obs, _, ref_term, ref_trunc, ref_info, ref_state = ref[-1]
    assert info["outcome"] == ref_info["outcome"] == outcome
    assert (terminated, truncated) == (ref_term, ref_trunc)
    np.testing.assert_array_equal(obs, ref_obs)
    np.testing.assert_array_equal(env.batch.core.state[0], ref_state)
    assert reward == sum(step[1] for step in ref[decisions * R:])
    assert (info["episode_step"], info["episode_sim_steps"]) == (decisions + 1, decisions * R + k)


def test_vector_env_final_obs_is_the_sim_step_the_copy_ended():
    """Copy 0 crashes mid-decision while copy 1 drives on (its sim steps keep moving copy 0's braking car): the
    final observation, car states, return and lengths are those of copy 0's last sim step."""
    ref = reference_episode(INTO_THE_WALL, seed=2)
    end = len(ref)
    assert end % R != 0
    env = VectorRacingEnv(replace(CONFIG, learner_action_repeat=R), num_envs=2)
    env.reset(seed=2)  # copy 0 is seeded 2, like the reference
    actions = np.stack([INTO_THE_WALL, [0.0, 0.5]]).astype(np.float32)
    for _ in range(end // R):
        _, _, terminated, truncated, _ = env.step(actions)
        assert not (terminated | truncated).any()
    obs, rewards, terminated, truncated, info = env.step(actions)
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert env.batch.core.episode_step[0] == 0  # copy 0 already reset, copy 1 ran the whole decision
    final = info["final_info"]
    np.testing.assert_array_equal(info["final_obs"][0], ref[-1][0])
    np.testing.assert_array_equal(final["car_states"][0], ref[-1][5])
    assert final["outcome"][0] == "self_crash"
    assert (final["episode_length"][0], final["episode_sim_steps"][0]) == (end // R + 1, end)
    assert final["episode_return"][0] == pytest.approx(sum(step[1] for step in ref), rel=1e-12)
    assert rewards[0] == sum(step[1] for step in ref[end // R * R:])
    np.testing.assert_allclose(rewards[0], sum(v[0] for v in info["reward_terms"].values()))
    assert info["episode_step"][1] == end // R + 1 and info["episode_sim_steps"][1] == (end // R + 1) * R


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10", None])
def test_bad_repeat_is_refused_with_a_sentence(value):
    with pytest.raises(ValueError, match=r"^EnvConfig\.learner_action_repeat must be an integer >= 1 .*got"):
        EnvConfig(learner_action_repeat=value)


def test_the_parallel_env_refuses_a_learner_repeat():
    with pytest.raises(ValueError, match="learner_action_repeat .* single-learner views only"):
        RacingEnv(replace(CONFIG, learner_action_repeat=R))


def test_render_and_timing_follow_decisions():
    env = SingleAgentEnv(replace(CONFIG, learner_action_repeat=R), render_mode="rgb_array")
    assert env.batch.decision_timestep_s == pytest.approx(0.1)
    assert env.metadata["render_fps"] == 5  # as R = 1's 50 frames/s for 0.01 s steps: half real time
    env.reset(seed=0)
    first = env.render()
    env.step(np.array([0.0, 1.0], dtype=np.float32))
    second = env.render()
    assert first.shape == second.shape and first.dtype == np.uint8 and not np.array_equal(first, second)
