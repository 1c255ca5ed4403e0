"""TD3 attacker vs the Follow-The-Gap defender with the plain Python API (no Hydra): copy this to start your own.

Off-policy agents use the same loop: the agent decides in update() when to learn (after learning_starts, every
train_freq steps); checkpoints hold its replay buffer when save_replay_buffer is set, for an exact resume.

    python scripts/examples/train_td3_simple.py --total-timesteps 30000 --run-dir runs/td3_simple
"""

import argparse

from multi_agent_rl.agents.td3 import TD3, TD3Config
from multi_agent_rl.envs import EnvConfig, VectorRacingEnv
from multi_agent_rl.training import EvaluationLoop, LoggerConfig, TrainingConfig, TrainingLoop, set_random_seeds

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--total-timesteps", type=int, default=30_000)
parser.add_argument("--run-dir", default="runs/td3_simple")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

set_random_seeds(args.seed)
env_config = EnvConfig(normalize_observations=True)  # the default task: gaplock on line_track
training = TrainingConfig(total_timesteps=args.total_timesteps, num_envs=4, eval_every_steps=10_000,
                          eval_episodes=20, eval_num_envs=10, checkpoint_every_steps=10_000,
                          save_replay_buffer=True)
env = VectorRacingEnv(env_config, num_envs=training.num_envs, seed=args.seed)
agent = TD3(env.single_observation_space, env.single_action_space,
            TD3Config(learning_starts=2_000, hidden_sizes=(256, 256), buffer_size=200_000),
            num_envs=training.num_envs, seed=args.seed)

task = env.batch.core.task
evaluation = EvaluationLoop(
    lambda n: VectorRacingEnv(env_config, num_envs=n, normalizer=env.normalizer, render_mode="rgb_array"),
    agent, "car_0", task.outcome_names, task.success_outcome,
    training.eval_episodes, training.eval_num_envs, training.eval_seed)
loop = TrainingLoop(env, agent, "car_0", training, LoggerConfig(log_every_steps=2_000), args.run_dir,
                    evaluation, task.outcome_names, task.success_outcome, seed=args.seed)
final = loop.run()
print({k: round(v, 3) for k, v in final.items()})

# Resuming later is two lines: a loop built the same way, then loop.resume(f"{args.run_dir}/checkpoints/last").
