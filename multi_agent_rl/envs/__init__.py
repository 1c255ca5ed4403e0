"""Environments on the batched simulator: PettingZoo (all cars), gymnasium single-learner and vector views.

RacingEnv          PettingZoo ParallelEnv, agents car_0 ... car_{n-1}
SingleAgentEnv     gymnasium.Env, one learning car, the others driven by drivers (FTG by default)
VectorRacingEnv    gymnasium VectorEnv of E copies in one simulator (same-step autoreset)
BatchedEnv         the array core under all three (E copies x N cars, no autoreset)
"""

from types import MappingProxyType

from multi_agent_rl.envs.batched import BatchedEnv, BatchedStep
from multi_agent_rl.envs.config import ActionConfig, EnvConfig, RenderConfig, racing_env_config
from multi_agent_rl.envs.drivers import DriverConfig, ftg_config_for
from multi_agent_rl.envs.learner import SingleAgentEnv
from multi_agent_rl.envs.normalize import RunningNormalizer
from multi_agent_rl.envs.observations import ObservationConfig
from multi_agent_rl.envs.parallel import RacingEnv
from multi_agent_rl.envs.vector import VectorRacingEnv

GYMNASIUM_IDS = MappingProxyType({
    "multi_agent_rl/Gaplock-v0": "multi_agent_rl.envs.learner:SingleAgentEnv",
    "multi_agent_rl/GaplockVector-v0": "multi_agent_rl.envs.vector:VectorRacingEnv",
})
"""gymnasium ids registered on import: ``gymnasium.make("multi_agent_rl/Gaplock-v0", config=EnvConfig(...))`` and
``gymnasium.make_vec("multi_agent_rl/GaplockVector-v0", num_envs=64, vectorization_mode="vector_entry_point")``."""


def _register() -> None:
    import gymnasium

    for env_id, entry_point in GYMNASIUM_IDS.items():
        if env_id not in gymnasium.registry:
            if "Vector" in env_id:
                gymnasium.register(env_id, vector_entry_point=entry_point)
            else:
                gymnasium.register(env_id, entry_point=entry_point)


_register()

__all__ = [
    "GYMNASIUM_IDS",
    "ActionConfig",
    "BatchedEnv",
    "BatchedStep",
    "DriverConfig",
    "EnvConfig",
    "ObservationConfig",
    "RacingEnv",
    "RenderConfig",
    "RunningNormalizer",
    "SingleAgentEnv",
    "VectorRacingEnv",
    "ftg_config_for",
    "racing_env_config",
]
