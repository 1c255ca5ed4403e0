"""Evaluate a run's agent on the fixed evaluation episodes and save the outcome table.

    python scripts/evaluate.py run_dir=outputs/2026-11-25/10-00-00
    python scripts/evaluate.py run_dir=... checkpoint=last episodes=100 video=episode.gif
"""

import hydra
from omegaconf import DictConfig

from multi_agent_rl.training.evaluate import main_with_clear_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    main_with_clear_errors(cfg)


if __name__ == "__main__":
    main()
