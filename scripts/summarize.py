"""Summarise a multirun: per configuration, the final metric across seeds with a 95 % bootstrap confidence
interval, steps and wall time to reach thresholds, and learning curves with shaded intervals.

    python scripts/summarize.py multirun/2026-11-25/10-00-00
    python scripts/summarize.py multirun/... --metric eval/success_rate --thresholds 0.5 0.8 --out curves.png

A configuration is a job's command-line overrides without ``seed=``; every job directory holds Hydra's
``.hydra/overrides.yaml`` and our ``metrics.csv``. Prints a Markdown table, writes ``summary.json`` and the plot
next to the multirun (or where --out says).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from scipy import stats


def read_job(job: Path, metric: str) -> dict | None:
    """Overrides, the (step, value) curve of ``metric`` and the elapsed-time column of one job."""
    overrides_file = job / ".hydra" / "overrides.yaml"
    metrics_file = job / "metrics.csv"
    if not overrides_file.is_file() or not metrics_file.is_file():
        return None
    overrides = yaml.safe_load(overrides_file.read_text()) or []
    steps, values = [], []
    elapsed = {}
    with metrics_file.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(row["step"])
            if row.get("time/elapsed_s"):
                elapsed[step] = float(row["time/elapsed_s"])
            if row.get(metric):
                steps.append(step)
                values.append(float(row[metric]))
    if not steps:
        return None
    if elapsed:  # an evaluation step need not be a logging step: interpolate the elapsed time between log rows
        logged = sorted(elapsed)
        times = np.interp(steps, logged, [elapsed[s] for s in logged]).tolist()
    else:
        times = [math.nan] * len(steps)
    config = " ".join(sorted(o for o in overrides if not o.startswith("seed=") and not o.startswith("hydra")))
    seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "0")
    return {"config": config or "(defaults)", "seed": seed, "steps": np.array(steps), "values": np.array(values),
            "times": np.array(times), "job": job.name}


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean (the mean itself when there is a single value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or np.all(values == values[0]):
        return float(values.mean()), float(values.mean())
    result = stats.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=10_000, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def first_reaching(job: dict, threshold: float) -> tuple[float, float]:
    """(env steps, wall seconds) when the metric first reached ``threshold`` (nan if never)."""
    hit = np.flatnonzero(job["values"] >= threshold)
    if hit.size == 0:
        return math.nan, math.nan
    return float(job["steps"][hit[0]]), float(job["times"][hit[0]])


def summarize(jobs: list[dict], thresholds: list[float]) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for job in jobs:
        groups[job["config"]].append(job)
    rows = []
    for config, members in sorted(groups.items()):
        finals = np.array([m["values"][-1] for m in members])
        low, high = bootstrap_ci(finals)
        row = {"config": config, "seeds": len(members), "final_mean": float(finals.mean()), "ci_low": low,
               "ci_high": high, "finals": finals.tolist(), "thresholds": {}}
        for threshold in thresholds:
            reached = [first_reaching(m, threshold) for m in members]
            steps = [s for s, _ in reached if not math.isnan(s)]
            times = [t for s, t in reached if not math.isnan(s)]
            row["thresholds"][str(threshold)] = {
                "reached": f"{len(steps)}/{len(members)}",
                "steps_mean": float(np.mean(steps)) if steps else None,
                "minutes_mean": float(np.nanmean(times)) / 60 if times else None,
            }
        rows.append(row)
    return rows


def markdown(rows: list[dict], metric: str, thresholds: list[float]) -> str:
    head = f"| configuration | seeds | final {metric} (mean [95 % CI]) |"
    sep = "|---|---:|---|"
    for t in thresholds:
        head += f" to {t}: runs, env steps, minutes |"
        sep += "---|"
    lines = [head, sep]
    for row in rows:
        line = (f"| `{row['config']}` | {row['seeds']} | {row['final_mean']:.3f} "
                f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}] |")
        for t in thresholds:
            r = row["thresholds"][str(t)]
            if r["steps_mean"] is None:
                line += f" {r['reached']}, -, - |"
            else:
                no_time = r["minutes_mean"] is None or math.isnan(r["minutes_mean"])
                minutes = "-" if no_time else f"{r['minutes_mean']:.1f}"
                line += f" {r['reached']}, {r['steps_mean']:,.0f}, {minutes} |"
        lines.append(line)
    return "\n".join(lines)


def plot(jobs: list[dict], metric: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = defaultdict(list)
    for job in jobs:
        groups[job["config"]].append(job)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for config, members in sorted(groups.items()):
        grid = np.unique(np.concatenate([m["steps"] for m in members]))
        curves = np.array([np.interp(grid, m["steps"], m["values"], right=np.nan) for m in members])
        mean = np.nanmean(curves, axis=0)
        bands = [bootstrap_ci(col[~np.isnan(col)]) if (~np.isnan(col)).sum() else (np.nan, np.nan)
                 for col in curves.T]
        low, high = np.array(bands).T
        ax.plot(grid, mean, label=f"{config} ({len(members)} seeds)")
        ax.fill_between(grid, low, high, alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("multirun_dir", type=Path)
    parser.add_argument("--metric", default="eval/success_rate")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.5, 0.8])
    parser.add_argument("--out", type=Path, default=None, help="plot path (default: <multirun>/learning_curves.png)")
    args = parser.parse_args(argv)
    job_dirs = sorted({p.parent.parent for p in args.multirun_dir.rglob(".hydra/overrides.yaml")})
    jobs = [j for j in (read_job(d, args.metric) for d in job_dirs) if j is not None]
    if not jobs:
        raise SystemExit(f"no job under {args.multirun_dir} has {args.metric} in its metrics.csv")
    rows = summarize(jobs, args.thresholds)
    print(markdown(rows, args.metric, args.thresholds))
    out = args.out or args.multirun_dir / "learning_curves.png"
    plot(jobs, args.metric, out)
    (args.multirun_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    print(f"\nsaved {out} and {args.multirun_dir / 'summary.json'}")
    return rows


if __name__ == "__main__":
    main()
