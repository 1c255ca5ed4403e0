"""Train an agent: Hydra composes conf/train.yaml with your overrides, then train(cfg) runs it.

    python scripts/train.py                                   # PPO attacker vs Follow-The-Gap on line_track
    python scripts/train.py agent=td3 seed=3 training.total_timesteps=500000
    python scripts/train.py experiment=gaplock_sac
    python scripts/train.py -m agent=ppo,td3 seed=0,1,2 hydra/launcher=local_parallel
    python scripts/train.py resume=outputs/2026-11-25/10-00-00
    python scripts/train.py --help                            # every group and option
"""

import hydra
from omegaconf import DictConfig

from multi_agent_rl.training.train import main_with_clear_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return main_with_clear_errors(cfg)


if __name__ == "__main__":
    main()
