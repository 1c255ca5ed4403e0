"""Train our agent and Stable-Baselines3's side by side on a gymnasium task, with matched hyperparameters.

    python scripts/compare_sb3.py --algo td3 --env Pendulum-v1 --steps 20000 --seeds 3 --json

Both sides get the same rl-baselines3-zoo hyperparameters, network sizes, number of env steps and of gradient
steps, and the same environment pipeline: a gymnasium ``SyncVectorEnv`` with same-step autoreset (wrapped as
an SB3 ``VecEnv`` for SB3), plus, where the zoo asks for ``normalize``, one shared VecNormalize-like wrapper.
Each (side, seed) run is a fresh subprocess; sides alternate per seed so slow drifts in machine load hit both.
Every run is then evaluated deterministically on 10 episodes of a separate env (seeds 10_000 + i).

The last line printed is JSON: {"ours": {"return_mean", "return_std", "steps_per_s"}, "sb3": {...}} with the
mean over seeds of each run's evaluation mean, the std across seeds, and env steps per second of training wall
time (mean over seeds). ``PendulumNoVel-v1`` is Pendulum-v1 with the angular velocity removed.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

EVAL_EPISODES = 10
EVAL_SEED = 10_000


# --- environments -------------------------------------------------------------------------------------------


class MaskVelocity(gym.ObservationWrapper):
    """Pendulum without the angular velocity: observations [cos theta, sin theta] (partially observed)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        low, high = env.observation_space.low[:2], env.observation_space.high[:2]
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[:2]


def make_single_env(env_id: str) -> gym.Env:
    if env_id == "PendulumNoVel-v1":
        return MaskVelocity(gym.make("Pendulum-v1"))
    return gym.make(env_id)


class RunningMeanStd:
    """Streaming mean and variance (parallel-batch update), as SB3's VecNormalize keeps them."""

    def __init__(self, shape: tuple[int, ...]):
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0), len(batch)
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var, self.count = m2 / total, total


class NormalizeVector(gym.vector.VectorWrapper):
    """What SB3's VecNormalize does, for both sides alike: observations (including ``info["final_obs"]``)
    standardised by running statistics, rewards divided by the running std of the discounted return, both
    clipped to +-10."""

    def __init__(self, env: gym.vector.VectorEnv, gamma: float, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.obs_rms = RunningMeanStd(env.single_observation_space.shape)
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(env.num_envs)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        scaled = (obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.returns[:] = 0.0
        self.obs_rms.update(obs)
        return self.normalize(obs), info

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self.obs_rms.update(obs)
        self.returns = self.returns * self.gamma + rewards
        self.ret_rms.update(self.returns)
        scaled = np.clip(rewards / np.sqrt(self.ret_rms.var + self.epsilon), -self.clip, self.clip)
        done = terminated | truncated
        self.returns[done] = 0.0
        if done.any():
            info = dict(info)
            final = np.array(info["final_obs"], dtype=object)
            for index in np.flatnonzero(done):
                final[index] = self.normalize(final[index])
            info["final_obs"] = final
        return self.normalize(obs), scaled.astype(np.float32), terminated, truncated, info


def make_vector_env(env_id: str, num_envs: int, normalize_gamma: float | None) -> gym.vector.VectorEnv:
    env = gym.vector.SyncVectorEnv(
        [lambda: make_single_env(env_id) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    return env if normalize_gamma is None else NormalizeVector(env, normalize_gamma)


def sb3_vec_env(env: gym.vector.VectorEnv):
    """The same gymnasium vector env seen through SB3's ``VecEnv`` interface."""
    from stable_baselines3.common.vec_env import VecEnv

    class GymnasiumVecEnv(VecEnv):
        def __init__(self, inner: gym.vector.VectorEnv):
            super().__init__(inner.num_envs, inner.single_observation_space, inner.single_action_space)
            self.inner = inner
            self._actions: np.ndarray | None = None

        def reset(self):
            seed = self._seeds[0]
            obs, _ = self.inner.reset(seed=seed)
            self._reset_seeds()
            return obs

        def step_async(self, actions: np.ndarray) -> None:
            self._actions = actions

        def step_wait(self):
            obs, rewards, terminated, truncated, info = self.inner.step(self._actions)
            dones = terminated | truncated
            infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            for index in np.flatnonzero(dones):
                infos[index]["terminal_observation"] = info["final_obs"][index]
                infos[index]["TimeLimit.truncated"] = bool(truncated[index] and not terminated[index])
            return obs, rewards.astype(np.float32), dones, infos

        def close(self) -> None:
            self.inner.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self.inner, attr_name, None)] * self.num_envs

        def set_attr(self, attr_name, value, indices=None) -> None:
            setattr(self.inner, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [getattr(self.inner, method_name)(*args, **kwargs)]

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * self.num_envs

    return GymnasiumVecEnv(env)


# --- presets: rl-baselines3-zoo hyperparameters mapped onto both sides --------------------------------------


@dataclass(frozen=True)
class Preset:
    """One task: env copies, normalisation, and builders of our config and of SB3's model."""

    num_envs: int
    on_policy_steps: int | None  # rollout length per env (on-policy), to round the budget up like SB3
    normalize_gamma: float | None
    ours: Callable[[int], tuple[type, Any]]  # total steps -> (agent class, config)
    sb3: Callable[[Any, int, int], Any]  # (vec env, total steps, seed) -> SB3 model
    notes: tuple[str, ...] = field(default_factory=tuple)


def _linear(start: float) -> Callable[[float], float]:
    return lambda progress_remaining: start * progress_remaining


def _ppo_pendulum(total: int):
    from multi_agent_rl.agents.ppo import PPO, PPOConfig

    return PPO, PPOConfig(
        total_timesteps=total,
        num_steps=1024,
        minibatch_size=64,
        update_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_coef=0.2,
        use_sde=True,
        sde_sample_freq=4,
    )


def _sb3_ppo_pendulum(env, total, seed):
    from stable_baselines3 import PPO

    return PPO(
        "MlpPolicy",
        env,
        n_steps=1024,
        batch_size=64,
        n_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        seed=seed,
        device="cpu",
    )


def _ppo_cartpole(total: int):
    from multi_agent_rl.agents.ppo import PPO, PPOConfig

    return PPO, PPOConfig(
        total_timesteps=total,
        num_steps=32,
        minibatch_size=256,
        update_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        learning_rate=1e-3,
        anneal_lr=True,
        clip_coef=0.2,
        anneal_clip_coef=True,
    )


def _sb3_ppo_cartpole(env, total, seed):
    from stable_baselines3 import PPO

    return PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        learning_rate=_linear(1e-3),
        clip_range=_linear(0.2),
        seed=seed,
        device="cpu",
    )


def _td3_pendulum(total: int):
    from multi_agent_rl.agents.td3 import TD3, TD3Config

    # zoo: train_freq [1, "episode"], gradient_steps -1; Pendulum episodes are exactly 200 steps, so training
    # every 200 steps for 200 gradient steps is the same schedule
    return TD3, TD3Config(
        gamma=0.98,
        buffer_size=200_000,
        learning_starts=10_000,
        exploration_noise=0.1,
        train_freq=200,
        gradient_steps=-1,
        learning_rate=1e-3,
        hidden_sizes=(400, 300),
    )


def _sb3_td3_pendulum(env, total, seed):
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    noise = NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1))
    return TD3(
        "MlpPolicy",
        env,
        gamma=0.98,
        buffer_size=200_000,
        learning_starts=10_000,
        action_noise=noise,
        gradient_steps=-1,
        train_freq=(1, "episode"),
        learning_rate=1e-3,
        policy_kwargs=dict(net_arch=[400, 300]),
        seed=seed,
        device="cpu",
    )


def _sac_pendulum(total: int):
    from multi_agent_rl.agents.sac import SAC, SACConfig

    return SAC, SACConfig(policy_lr=1e-3, q_lr=1e-3)


def _sb3_sac_pendulum(env, total, seed):
    from stable_baselines3 import SAC

    return SAC("MlpPolicy", env, learning_rate=1e-3, seed=seed, device="cpu")


# rl-baselines3-zoo's DQN settings for CartPole-v1, in our config names (the Rainbow row shares them)
_DQN_CARTPOLE = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_network_frequency=10,
    train_frequency=256,
    gradient_steps=128,
)


def _dqn_cartpole(total: int):
    from multi_agent_rl.agents.dqn import DQN, DQNConfig

    # SB3's DQN is vanilla (max over the target network): compare the same algorithm, double_q off
    return DQN, DQNConfig(
        total_timesteps=total,
        exploration_fraction=0.16,
        end_e=0.04,
        hidden_sizes=(256, 256),
        double_q=False,
        **_DQN_CARTPOLE,
    )


def _rainbow_cartpole(total: int):
    from multi_agent_rl.agents.rainbow import Rainbow, RainbowConfig

    # the zoo's DQN settings, plus Rainbow's own parts: 3-step returns, 51 atoms on [0, 100] (returns of
    # CartPole with gamma 0.99 stay below 1 / (1 - 0.99)), PER (0.5, 0.4 -> 1), noisy heads, no epsilon.
    # Network size matched by parameter count: a value and an advantage stream of one 256-unit hidden layer
    # each (82k parameters incl. the noise scales) against SB3's 256-256 Q-network (68k).
    return Rainbow, RainbowConfig(
        total_timesteps=total, adam_eps=1e-8, v_min=0.0, v_max=100.0, hidden_sizes=(256,), **_DQN_CARTPOLE
    )


# the same zoo settings under SB3's names, shared by the DQN and QR-DQN peers (ours write the exploration
# schedule as exploration_fraction / end_e in _dqn_cartpole)
_SB3_NAMES = {"target_network_frequency": "target_update_interval", "train_frequency": "train_freq"}
_SB3_DQN_CARTPOLE = {
    **{_SB3_NAMES.get(name, name): value for name, value in _DQN_CARTPOLE.items()},
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
}


def _sb3_dqn_cartpole(env, total, seed):
    from stable_baselines3 import DQN

    return DQN(
        "MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", **_SB3_DQN_CARTPOLE
    )


def _sb3_qrdqn_cartpole(env, total, seed):
    from sb3_contrib import QRDQN

    # sb3-contrib's distributional DQN, the closest peer of Rainbow there: the zoo's DQN settings, 51 quantiles
    # to match Rainbow's 51 atoms
    policy_kwargs = dict(net_arch=[256, 256], n_quantiles=51)
    return QRDQN("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=seed, device="cpu", **_SB3_DQN_CARTPOLE)


# other SB3 peers selectable with --peer: (algo, env, peer) -> SB3 model builder
OTHER_PEERS: dict[tuple[str, str, str], Callable[[Any, int, int], Any]] = {
    ("rainbow", "CartPole-v1", "qrdqn"): _sb3_qrdqn_cartpole,
}


def _recurrent_ppo_pendulum_novel(total: int):
    from multi_agent_rl.agents.recurrent_ppo import RecurrentPPO, RecurrentPPOConfig

    return RecurrentPPO, RecurrentPPOConfig(
        total_timesteps=total,
        num_steps=1024,
        minibatch_size=128,
        seq_len=32,
        update_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_coef=0.2,
        use_sde=True,
        sde_sample_freq=4,
        ortho_init=False,
        activation="relu",
        lstm_hidden_size=64,
        critic_lstm=True,
        hidden_sizes=(64,),
    )


def _sb3_recurrent_ppo_pendulum_novel(env, total, seed):
    from sb3_contrib import RecurrentPPO
    from torch import nn

    policy_kwargs = dict(
        ortho_init=False,
        activation_fn=nn.ReLU,
        lstm_hidden_size=64,
        enable_critic_lstm=True,
        net_arch=dict(pi=[64], vf=[64]),
    )
    return RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=1024,
        batch_size=128,
        n_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        policy_kwargs=policy_kwargs,
        seed=seed,
        device="cpu",
    )


PRESETS: dict[tuple[str, str], Preset] = {
    ("ppo", "Pendulum-v1"): Preset(8, 1024, None, _ppo_pendulum, _sb3_ppo_pendulum),
    ("ppo", "CartPole-v1"): Preset(8, 32, None, _ppo_cartpole, _sb3_ppo_cartpole),
    ("td3", "Pendulum-v1"): Preset(1, None, None, _td3_pendulum, _sb3_td3_pendulum),
    ("sac", "Pendulum-v1"): Preset(1, None, None, _sac_pendulum, _sb3_sac_pendulum),
    ("dqn", "CartPole-v1"): Preset(1, None, None, _dqn_cartpole, _sb3_dqn_cartpole),
    ("rainbow", "CartPole-v1"): Preset(1, None, None, _rainbow_cartpole, _sb3_dqn_cartpole),
    ("recurrent_ppo", "PendulumNoVel-v1"): Preset(
        4, 1024, 0.9, _recurrent_ppo_pendulum_novel, _sb3_recurrent_ppo_pendulum_novel
    ),
}


# --- one run ------------------------------------------------------------------------------------------------


def vector_steps(preset: Preset, total: int) -> int:
    """Vector steps SB3 takes for ``total`` env steps: whole rollouts for on-policy learners."""
    if preset.on_policy_steps is None:
        return math.ceil(total / preset.num_envs)
    per_rollout = preset.on_policy_steps * preset.num_envs
    return math.ceil(total / per_rollout) * preset.on_policy_steps


def evaluate(policy: Callable[[np.ndarray, bool], np.ndarray], env_id: str, normalize) -> float:
    """Mean undiscounted return of deterministic episodes; ``policy(obs_batch, episode_start)``."""
    env = make_single_env(env_id)
    returns = []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + episode)
        total, done, start = 0.0, False, True
        while not done:
            action = policy(normalize(obs[None]), start)[0]
            start = False
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_ours(preset: Preset, env_id: str, total: int, seed: int) -> dict[str, float]:
    from multi_agent_rl.agents.gym_runner import train

    env = make_vector_env(env_id, preset.num_envs, preset.normalize_gamma)
    agent_class, config = preset.ours(total)
    start, cpu_start = time.perf_counter(), time.process_time()
    agent = agent_class(
        env.single_observation_space, env.single_action_space, config, preset.num_envs, "cpu", seed
    )
    stats = train(agent, env, vector_steps(preset, total), seed=seed)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    normalize = env.normalize if isinstance(env, NormalizeVector) else (lambda obs: obs)

    def policy(obs: np.ndarray, episode_start: bool) -> np.ndarray:
        if episode_start:
            agent.reset(None, deterministic=True)
        return agent.act(obs, deterministic=True)

    return {
        "return": evaluate(policy, env_id, normalize),
        "env_steps": stats.env_steps,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def silent_sb3_logger() -> Any:
    """An SB3 logger with no outputs. SB3's own default (``configure``) makes an empty ``$TMPDIR/SB3-<date>``
    directory at every ``learn`` even when it writes nothing, and those pile up over benchmark and test runs."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def run_sb3(
    preset: Preset, env_id: str, total: int, seed: int, build: Callable[[Any, int, int], Any] | None = None
) -> dict[str, float]:
    """SB3's side; ``build`` replaces the preset's SB3 model builder (another peer, see --peer)."""
    env = make_vector_env(env_id, preset.num_envs, preset.normalize_gamma)
    start, cpu_start = time.perf_counter(), time.process_time()
    model = (build or preset.sb3)(sb3_vec_env(env), total, seed)
    model.set_logger(silent_sb3_logger())
    model.learn(total_timesteps=total)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    normalize = env.normalize if isinstance(env, NormalizeVector) else (lambda obs: obs)
    state: list[Any] = [None]

    def policy(obs: np.ndarray, episode_start: bool) -> np.ndarray:
        action, state[0] = model.predict(
            obs, state=state[0], episode_start=np.array([episode_start]), deterministic=True
        )
        return action

    return {
        "return": evaluate(policy, env_id, normalize),
        "env_steps": model.num_timesteps,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def worker(args: argparse.Namespace) -> None:
    import torch

    import multi_agent_rl

    threads = args.threads_ours if args.side == "ours" else args.threads_sb3
    if threads > 0:
        torch.set_num_threads(threads)
    preset = PRESETS[(args.algo, args.env)]
    if args.side == "ours":
        result = run_ours(preset, args.env, args.steps, args.seed)
    else:
        peer = OTHER_PEERS[(args.algo, args.env, args.peer)] if args.peer != "default" else None
        result = run_sb3(preset, args.env, args.steps, args.seed, peer)
    result.update(
        side=args.side, seed=args.seed, torch_threads=torch.get_num_threads(), module=multi_agent_rl.__file__
    )
    print(json.dumps(result), flush=True)


# --- driver -------------------------------------------------------------------------------------------------


def summarise(results: list[dict[str, float]]) -> dict[str, float]:
    returns = np.array([r["return"] for r in results])
    speeds = np.array([r["env_steps"] / r["wall_s"] for r in results])
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "steps_per_s": float(speeds.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", required=True, choices=sorted({algo for algo, _ in PRESETS}))
    parser.add_argument("--env", required=True)
    parser.add_argument("--steps", type=int, required=True, help="env steps per run, summed over env copies")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed+seeds-1"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary as the last line")
    parser.add_argument(
        "--threads-ours", type=int, default=1, help="torch threads for ours (0 = torch default)"
    )
    parser.add_argument(
        "--threads-sb3", type=int, default=1, help="torch threads for SB3 (0 = torch default)"
    )
    parser.add_argument(
        "--peer",
        default="default",
        choices=("default", *sorted({peer for _, _, peer in OTHER_PEERS})),
        help="SB3 side: the preset's peer, or another one (qrdqn: sb3-contrib's QR-DQN for rainbow)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.algo, args.env) not in PRESETS:
        known = ", ".join(f"{a} on {e}" for a, e in PRESETS)
        parser.error(f"no preset for {args.algo} on {args.env}; known: {known}")
    if args.peer != "default" and (args.algo, args.env, args.peer) not in OTHER_PEERS:
        parser.error(f"--peer {args.peer} is only available for: {', '.join(map(str, OTHER_PEERS))}")
    if args.worker:
        worker(args)
        return

    results: dict[str, list[dict[str, float]]] = {"ours": [], "sb3": []}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        order = ("ours", "sb3") if seed % 2 == 0 else ("sb3", "ours")
        for side in order:
            command = [
                sys.executable,
                __file__,
                "--worker",
                "--side",
                side,
                "--seed",
                str(seed),
                "--algo",
                args.algo,
                "--env",
                args.env,
                "--steps",
                str(args.steps),
                "--threads-ours",
                str(args.threads_ours),
                "--threads-sb3",
                str(args.threads_sb3),
                "--peer",
                args.peer,
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            results[side].append(result)
            if not args.json:
                print(
                    f"{side:>4} seed {seed}: return {result['return']:9.2f}  "
                    f"{result['env_steps'] / result['wall_s']:8.1f} steps/s  ({result['wall_s']:.1f} s, "
                    f"{result['torch_threads']} torch threads)",
                    flush=True,
                )
    summary = {side: summarise(runs) for side, runs in results.items()}
    print(json.dumps({"runs": results}))  # per-seed details, one line
    if not args.json:
        for side, s in summary.items():
            mean, std, speed = s["return_mean"], s["return_std"], s["steps_per_s"]
            print(f"{side:>4}: return {mean:.2f} +- {std:.2f}, {speed:.1f} steps/s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
