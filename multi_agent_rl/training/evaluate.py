"""``evaluate(cfg)``: a run's own config and checkpoint, played on the fixed evaluation episodes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from multi_agent_rl.training.checkpoint import CheckpointError, load_checkpoint
from multi_agent_rl.training.config import ConfigError
from multi_agent_rl.training.loop import EvalResult, EvaluationLoop
from multi_agent_rl.training.train import RESOLVED_CONFIG, _build

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> EvalResult:
    """Load ``cfg.run_dir``'s config and ``cfg.checkpoint``, play the evaluation episodes, print and save the
    outcome table (JSON with every episode: spawn, outcome, return, length in decisions, sim steps)."""
    run_dir = Path(str(cfg.run_dir))
    saved = run_dir / RESOLVED_CONFIG
    if not saved.is_file():
        raise ConfigError(f"run_dir: {run_dir} is not a run directory (no {RESOLVED_CONFIG})")
    run_cfg = OmegaConf.load(saved)
    run_cfg.logger.tensorboard = False
    run_cfg.logger.csv = False
    run = _build(run_cfg, run_dir)
    checkpoint = run_dir / "checkpoints" / str(cfg.checkpoint)
    try:
        states, metadata = load_checkpoint(checkpoint)
    except CheckpointError as err:
        raise ConfigError(f"checkpoint: {err}") from None
    run.agent.load_state_dict(states[run.agent_id])
    normalizer_state = states.get("loop", {}).get("normalizer")
    if normalizer_state is not None and run.env.normalizer is not None:
        run.env.normalizer.load_state_dict(normalizer_state)
    training = run.loop.config
    episodes = int(cfg.episodes or training.eval_episodes)
    seed = int(training.eval_seed if cfg.seed is None else cfg.seed)
    num_envs = int(cfg.num_envs or training.eval_num_envs)
    evaluation = run.loop.evaluation
    deterministic = cfg.deterministic
    if not isinstance(deterministic, bool):
        raise ConfigError(f"deterministic: expected true or false, got {deterministic!r}")
    loop = EvaluationLoop(run.make_eval_env, run.agent, run.agent_id, evaluation.outcome_names,
                          evaluation.success_outcome, episodes, num_envs, seed, deterministic=deterministic)
    result = loop.run(record_video_steps=training.video_max_steps if cfg.video else 0)
    report = _report(result, run_dir, str(cfg.checkpoint), metadata, seed)
    report["deterministic"] = deterministic
    output = Path(str(cfg.output)) if cfg.output else run_dir / f"eval_{cfg.checkpoint}.json"
    output.write_text(json.dumps(report, indent=2))
    print(_table(report))
    print(f"saved {output}")
    if cfg.video and result.frames is not None:
        _write_video(Path(str(cfg.video)), result.frames)
        print(f"saved {cfg.video}")
    return result


def _report(result: EvalResult, run_dir: Path, checkpoint: str, metadata: dict, seed: int) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
        "checkpoint_step": metadata.get("global_step"),
        "seed": seed,
        "episodes": len(result.outcomes),
        "outcomes": result.outcome_table(),
        "outcome_details": result.detail_table(),
        "metrics": result.metrics,
        "actions": result.actions,
        "episode_records": [
            {"episode": k, "seed": seed + k, "spawn": s, "outcome": o, "details": list(d), "return": float(r),
             "length": int(n), "sim_steps": int(m), "final_poses": _poses(result.final_states, k)}
            for k, (s, o, d, r, n, m) in enumerate(zip(result.spawns, result.outcomes, result.details, result.returns,
                                                       result.lengths, result.sim_steps, strict=True))
        ],
    }


def _poses(states, k: int) -> dict[str, list[float]]:
    """Every car's last [x, y, yaw, speed] in episode k (a crashed car: its pre-contact pose)."""
    if states is None or len(states) <= k:
        return {}
    return {f"car_{i}": [round(float(v), 4) for v in car[[0, 1, 4, 3]]] for i, car in enumerate(states[k])}


def _table(report: dict[str, Any]) -> str:
    n = report["episodes"]
    lines = [f"{report['run_dir']} [{report['checkpoint']} @ step {report['checkpoint_step']}], {n} episodes:",
             f"  {'outcome':<18}{'episodes':>9}{'rate':>8}"]
    for name, count in sorted(report["outcomes"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<18}{count:>9}{count / n:>8.2f}")
        for label, hits in sorted(report["outcome_details"].get(name, {}).items(), key=lambda kv: -kv[1]):
            lines.append(f"    {label:<16}{hits:>9}{hits / n:>8.2f}")
    for key, value in report["metrics"].items():
        if not key.startswith(("eval/outcome/", "eval/detail/")):
            lines.append(f"  {key} = {value:.4g}")
    actions = report.get("actions") or {}
    if actions:
        kind = "deterministic" if report.get("deterministic", True) else "sampled"
        lines.append(f"  actions ({kind}), per dimension (racing envs: [steer, speed] in [-1, 1]):")
        for name, values in actions.items():
            lines.append(f"    {name:<16}" + "".join(f"{v:>9.3f}" for v in values))
    return "\n".join(lines)


def _write_video(path: Path, frames) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0)
    else:
        import imageio.v2 as imageio  # optional: pip install -e ".[video]"

        imageio.mimwrite(path, list(frames), fps=20)


def main_with_clear_errors(cfg: DictConfig) -> EvalResult:
    try:
        return evaluate(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
