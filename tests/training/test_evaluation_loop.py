"""The evaluation loop's action summary and its deterministic / sampled switch."""

from __future__ import annotations

import numpy as np
import pytest

from multi_agent_rl.envs import EnvConfig, VectorRacingEnv
from multi_agent_rl.envs.drivers import ConstantDriver
from multi_agent_rl.tasks import GaplockConfig
from multi_agent_rl.training.loop import EvaluationLoop, action_summary


def test_action_summary_on_a_hand_example():
    # two episodes of [steer, speed]; the jump from the first episode's last steer (1) to the second's (-1) is
    # not a change between consecutive decisions and must not count
    episodes = [np.array([[0.0, 1.0], [0.5, 1.0], [1.0, 1.0]]), np.array([[-1.0, 0.99]])]
    summary = action_summary(episodes, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    assert summary["mean"] == pytest.approx([0.125, 0.9975])
    assert summary["q50"] == pytest.approx([0.25, 1.0])
    assert summary["at_low"] == pytest.approx([0.25, 0.0])
    assert summary["at_high"] == pytest.approx([0.25, 1.0])  # 0.99 is within 1 % of the range (0.02) of 1
    assert summary["mean_abs_change"] == pytest.approx([0.5, 0.0])
    assert summary["std"] == pytest.approx([float(np.std([0.0, 0.5, 1.0, -1.0])), float(np.std([1, 1, 1, 0.99]))],
                                           abs=1e-4)
    assert action_summary([np.zeros((0, 2))], np.zeros(2), np.ones(2)) == {}


class RecordingAgent:
    """Steers 0 and drives at 0.6 (normalised); records the deterministic flag of every call."""

    def __init__(self):
        self.flags: set[bool] = set()

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        self.flags.add(deterministic)
        return np.tile(np.array([0.0, 0.6], dtype=np.float32), (len(obs), 1))

    def reset(self, mask, deterministic: bool = False) -> None:
        self.flags.add(deterministic)


@pytest.mark.parametrize("deterministic", [True, False])
def test_evaluation_acts_as_asked_and_summarises_the_actions(deterministic):
    config = EnvConfig(task=GaplockConfig(spawn_names=("gaplock_00",), max_steps=60))

    def make_env(num_envs: int) -> VectorRacingEnv:
        return VectorRacingEnv(config, num_envs=num_envs, seed=0, opponents=[ConstantDriver(num_envs, 0.0, 0.5)])

    names = make_env(1).batch.core.task.outcome_names
    agent = RecordingAgent()
    result = EvaluationLoop(make_env, agent, "car_0", names, "target_crash", 3, 2, seed=0,
                            deterministic=deterministic).run()
    assert agent.flags == {deterministic}
    actions = result.actions
    assert actions["mean"] == pytest.approx([0.0, 0.6]) and actions["std"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert actions["at_high"] == [0.0, 0.0] and actions["mean_abs_change"] == [0.0, 0.0]
