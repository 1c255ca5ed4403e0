"""PPO attacker vs the Follow-The-Gap defender with the plain Python API (no Hydra): copy this to start your own.

    python scripts/examples/train_ppo_simple.py --total-timesteps 50000 --run-dir runs/ppo_simple
"""

import argparse

from multi_agent_rl.agents.ppo import PPO, PPOConfig
from multi_agent_rl.envs import EnvConfig, VectorRacingEnv
from multi_agent_rl.tasks.gaplock import GaplockConfig
from multi_agent_rl.training import EvaluationLoop, LoggerConfig, TrainingConfig, TrainingLoop, set_random_seeds

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--total-timesteps", type=int, default=50_000)
parser.add_argument("--run-dir", default="runs/ppo_simple")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

set_random_seeds(args.seed)
env_config = EnvConfig(task=GaplockConfig(), normalize_observations=True)  # gaplock on line_track, LIMO robots
training = TrainingConfig(total_timesteps=args.total_timesteps, num_envs=8, eval_every_steps=25_000,
                          eval_episodes=20, eval_num_envs=10, checkpoint_every_steps=25_000)
env = VectorRacingEnv(env_config, num_envs=training.num_envs, seed=args.seed)

agent = PPO(env.single_observation_space, env.single_action_space,
            PPOConfig(total_timesteps=training.total_timesteps, num_steps=256, minibatch_size=256, ent_coef=0.005),
            num_envs=training.num_envs, seed=args.seed)


def make_eval_env(num_envs: int) -> VectorRacingEnv:
    # Evaluation shares the training normaliser (frozen while it runs) and uses fixed seeds.
    return VectorRacingEnv(env_config, num_envs=num_envs, normalizer=env.normalizer, render_mode="rgb_array")


task = env.batch.core.task
evaluation = EvaluationLoop(make_eval_env, agent, "car_0", task.outcome_names, task.success_outcome,
                            training.eval_episodes, training.eval_num_envs, training.eval_seed)
loop = TrainingLoop(env, agent, "car_0", training, LoggerConfig(log_every_steps=5_000), args.run_dir,
                    evaluation, task.outcome_names, task.success_outcome, seed=args.seed)
final = loop.run()  # checkpoints, metrics.csv and tensorboard/ land in --run-dir
print({k: round(v, 3) for k, v in final.items()})
