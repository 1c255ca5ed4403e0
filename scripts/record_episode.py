"""Record one episode as a GIF (Pillow) or an MP4 (imageio + imageio-ffmpeg: pip install -e ".[video]").

    python scripts/record_episode.py --out gaplock.gif                       # FTG attacker vs FTG defender
    python scripts/record_episode.py --attacker random --seed 3 --out random.mp4
    python scripts/record_episode.py --task racing --map ../shared/racetracks/Spielberg/Spielberg_map.yaml \
        --attacker ftg --max-speed 3 --view full --out spielberg.gif

The learner's car (car_0) is driven by the chosen scripted policy ("ftg", "random" or "straight" at --speed);
in gaplock the defender (car_1) is the configured FTG. Every --every-th step becomes a frame (real time at the
default). The episode's outcome is printed.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from multi_agent_rl.envs import EnvConfig, RenderConfig, SingleAgentEnv, racing_env_config
from multi_agent_rl.envs.drivers import ConstantDriver, FTGDriver, RandomDriver, ftg_config_for


def make_env(args: argparse.Namespace) -> SingleAgentEnv:
    if args.task == "gaplock":
        config = EnvConfig() if args.map is None else EnvConfig(map_path=args.map)
    else:
        config = racing_env_config(args.map or "maps/line_track/line_track.yaml")
    render = RenderConfig(
        view=args.view,
        window_m=(args.window, args.window / 2),
        pixels_per_m=args.ppm,
        max_pixels=args.max_pixels,
    )
    task = config.task
    if args.max_steps:
        task = replace(task, max_steps=args.max_steps)
    return SingleAgentEnv(replace(config, render=render, task=task), render_mode="rgb_array")


def make_attacker(env: SingleAgentEnv, args: argparse.Namespace):
    core = env.batch.core
    if args.attacker == "ftg":
        top = args.max_speed if args.max_speed is not None else min(core.vehicle.v_max, 1.0)
        return FTGDriver(core.sim.beam_angles, 1, ftg_config_for(core.vehicle, max_speed_mps=top))
    if args.attacker == "random":
        return RandomDriver(1, core.vehicle, core.vehicle.v_max, seed=args.seed)
    return ConstantDriver(1, 0.0, args.speed)


def write(frames: list[np.ndarray], path: Path, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, optimize=False
        )
    elif path.suffix.lower() == ".mp4":
        try:
            import imageio.v2 as imageio
        except ImportError:
            raise SystemExit(
                'MP4 output needs imageio and imageio-ffmpeg: pip install -e ".[video]"'
            ) from None
        with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
            for f in frames:
                writer.append_data(f)
    else:
        raise SystemExit(f"--out must end in .gif or .mp4, got {path.name}")


def record(args: argparse.Namespace) -> tuple[list[np.ndarray], str, int]:
    env = make_env(args)
    attacker = make_attacker(env, args)
    core = env.batch.core
    env.reset(seed=args.seed)
    frames = [env.render()]
    outcome, steps = "", 0
    while True:
        physical = attacker.act(core.state[:, 0], core.scans[:, 0], core.observations[:, 0])
        action = core.to_normalized(physical[0]) if core.config.action.normalized else physical[0]
        _, _, terminated, truncated, info = env.step(action.astype(np.float32))
        steps += 1
        if steps % args.every == 0 or terminated or truncated:
            frames.append(env.render())
        if terminated or truncated:
            outcome = info["outcome"]
            break
    return frames, outcome, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output file, .gif or .mp4")
    parser.add_argument("--task", choices=("gaplock", "racing"), default="gaplock")
    parser.add_argument("--map", default=None, help="map YAML (default: line_track)")
    parser.add_argument(
        "--attacker", choices=("ftg", "random", "straight"), default="ftg", help="policy driving car_0"
    )
    parser.add_argument("--speed", type=float, default=0.6, help="straight attacker speed (m/s)")
    parser.add_argument("--max-speed", type=float, default=None, help="FTG attacker speed cap (m/s)")
    parser.add_argument("--max-steps", type=int, default=None, help="override the task's max_steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=4, help="keep every n-th step as a frame")
    parser.add_argument("--view", choices=("follow", "full"), default="follow")
    parser.add_argument("--window", type=float, default=10.0, help="follow-view width (m)")
    parser.add_argument("--ppm", type=float, default=40.0, help="follow-view pixels per metre")
    parser.add_argument("--max-pixels", type=int, default=900, help="full-view longer side (pixels)")
    args = parser.parse_args()
    frames, outcome, steps = record(args)
    fps = 1.0 / (0.01 * args.every)
    write(frames, args.out, fps)
    print(f"{args.out}: {len(frames)} frames, {steps} steps, outcome: {outcome or 'none'}")


if __name__ == "__main__":
    main()
