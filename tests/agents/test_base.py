"""The action/observation space check gives one clear sentence before any step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from multi_agent_rl.agents.base import IncompatibleSpaceError, check_spaces
from multi_agent_rl.agents.ppo import PPO
from multi_agent_rl.agents.td3 import TD3

OBS = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
STEER_SPEED = gym.spaces.Box(np.array([-0.4, -1.0], np.float32), np.array([0.4, 1.0], np.float32))


def test_ppo_accepts_box_and_discrete():
    check_spaces(PPO, OBS, STEER_SPEED)
    check_spaces(PPO, OBS, gym.spaces.Discrete(3))


def test_td3_refuses_discrete_with_a_sentence():
    with pytest.raises(
        IncompatibleSpaceError, match=r"^TD3 needs a continuous \(Box\) action space; got Discrete\(3\)\.$"
    ):
        check_spaces(TD3, OBS, gym.spaces.Discrete(3))


def test_non_box_observations_and_multi_discrete_actions_are_refused():
    with pytest.raises(IncompatibleSpaceError, match="needs a Box observation space"):
        check_spaces(PPO, gym.spaces.Discrete(4), STEER_SPEED)
    with pytest.raises(IncompatibleSpaceError, match=r"got MultiDiscrete"):
        check_spaces(PPO, OBS, gym.spaces.MultiDiscrete([2, 2]))


def test_agent_constructor_runs_the_check():
    with pytest.raises(IncompatibleSpaceError, match="TD3 needs a continuous"):
        TD3(OBS, gym.spaces.Discrete(2))
