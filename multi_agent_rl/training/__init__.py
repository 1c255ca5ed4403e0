"""Training: the shared loop, evaluation, checkpoints, logging, and the Hydra entry points.

The Python API keeps the original system's names::

    from multi_agent_rl.training import (TrainingLoop, EvaluationLoop, save_checkpoint, load_checkpoint,
                                         SimpleLogger, set_random_seeds, compute_episode_metrics)
"""

from multi_agent_rl.training.checkpoint import load_checkpoint, save_checkpoint
from multi_agent_rl.training.logger import SimpleLogger, TensorBoardLogger
from multi_agent_rl.training.loop import EvaluationLoop, LoggerConfig, TrainingConfig, TrainingLoop
from multi_agent_rl.training.metrics import compute_episode_metrics
from multi_agent_rl.training.seeding import set_random_seeds

__all__ = [
    "EvaluationLoop",
    "LoggerConfig",
    "SimpleLogger",
    "TensorBoardLogger",
    "TrainingConfig",
    "TrainingLoop",
    "compute_episode_metrics",
    "load_checkpoint",
    "save_checkpoint",
    "set_random_seeds",
]
