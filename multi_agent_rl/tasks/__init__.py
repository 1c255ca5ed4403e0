"""Tasks: rewards, terminations, truncations and outcomes of batched copies (racing, gaplock)."""

from multi_agent_rl.tasks.base import Start, Task, TaskStep
from multi_agent_rl.tasks.gaplock import (
    GAPLOCK_OUTCOMES,
    GAPLOCK_REWARD_PRESETS,
    GaplockConfig,
    GaplockRewardConfig,
)
from multi_agent_rl.tasks.racing import RacingConfig, RacingRewardConfig

__all__ = [
    "GAPLOCK_OUTCOMES",
    "GAPLOCK_REWARD_PRESETS",
    "GaplockConfig",
    "GaplockRewardConfig",
    "RacingConfig",
    "RacingRewardConfig",
    "Start",
    "Task",
    "TaskStep",
]
