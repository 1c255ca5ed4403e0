"""Which wall the defender hit: carried from the vector env's final info into evaluation and rollout metrics."""

from __future__ import annotations

import numpy as np
import pytest

from multi_agent_rl.envs import EnvConfig, VectorRacingEnv
from multi_agent_rl.envs.drivers import ConstantDriver
from multi_agent_rl.tasks import GaplockConfig
from multi_agent_rl.training.loop import EvaluationLoop, _EpisodeWindow

# The attacker starts ahead and to the right (y = -0.8) of the defender and drives straight on at 0.6 m/s.
CONFIG = EnvConfig(task=GaplockConfig(spawn_names=("gaplock_00",), attacker_start_speeds_mps=(0.6,)))


class StraightAgent:
    """The attacker: steering 0, 0.6 m/s (normalised actions), the only methods evaluation needs."""

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return np.tile(np.array([0.0, 0.6], dtype=np.float32), (len(obs), 1))

    def reset(self, mask, deterministic: bool = False) -> None:
        """Stateless."""


def evaluate_against(defender_steer: float, defender_speed: float, episodes: int = 2, config: EnvConfig = CONFIG):
    def make_env(num_envs: int) -> VectorRacingEnv:
        return VectorRacingEnv(config, num_envs=num_envs, seed=0,
                               opponents=[ConstantDriver(num_envs, defender_steer, defender_speed)])

    names = make_env(1).batch.core.task.outcome_names
    loop = EvaluationLoop(make_env, StraightAgent(), "car_0", names, "target_crash", episodes, episodes, seed=0)
    return loop.run()


@pytest.mark.parametrize(
    ("steer", "speed", "labels"),
    [
        (0.2, 1.0, ("side_wall",)),  # a left arc from the centreline: into the left wall, still facing +x
        (0.0, -1.0, ("end_wall",)),  # straight back into the start wall at x = -50, nose still forward
    ],
)
def test_evaluation_reports_which_wall_the_defender_hit(steer, speed, labels):
    result = evaluate_against(steer, speed)
    assert result.outcomes == ["target_crash", "target_crash"]
    assert result.details == [labels, labels]
    assert result.final_states.shape == (2, 2, 7)
    wall = labels[0]
    other = "end_wall" if wall == "side_wall" else "side_wall"
    assert result.metrics[f"eval/detail/target_crash/{wall}"] == 1.0
    assert result.metrics[f"eval/detail/target_crash/{other}"] == 0.0
    assert result.metrics["eval/detail/target_crash/defender_reversed"] == 0.0
    assert result.detail_table() == {"target_crash": {wall: 2}}
    defender = result.final_states[:, 1]
    if wall == "side_wall":
        assert np.all(defender[:, 1] > 0.9)  # near the left wall at y = +1.3
    else:
        assert np.all(defender[:, 0] < -49.5)  # at the start wall


def test_details_are_zero_when_nothing_crashed():
    short = EnvConfig(task=GaplockConfig(spawn_names=("gaplock_00",), max_steps=100))
    result = evaluate_against(0.0, 0.0, episodes=1, config=short)  # the defender stands; the attacker drives on
    assert result.outcomes != ["target_crash"] and result.details == [()]
    assert all(result.metrics[f"eval/detail/target_crash/{label}"] == 0.0
               for label in ("side_wall", "end_wall", "defender_reversed"))


def test_final_info_carries_every_cars_final_state():
    env = VectorRacingEnv(CONFIG, num_envs=2, seed=0, opponents=[ConstantDriver(2, 0.46, 1.0)])
    env.reset(seed=0)
    for _ in range(1000):
        obs, rewards, term, trunc, info = env.step(np.tile([0.0, 0.6], (2, 1)))
        if (term | trunc).any():
            break
    states = info["final_info"]["car_states"]
    assert states.shape == (2, 2, 7)
    ended = info["_final_info"]
    # the ended copies were reset, so their final states are not the current ones
    assert not np.allclose(states[ended], env.batch.core.state[ended])


def test_old_rollout_windows_without_details_still_load():
    window = _EpisodeWindow(3, returns=[1.0], lengths=[5], outcomes=["timeout"], terms=[{}])
    window.add(2.0, 6, "target_crash", {}, ("end_wall",))
    assert list(window.details)[-1] == ("end_wall",)
