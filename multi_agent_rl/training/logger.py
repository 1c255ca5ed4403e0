"""Metric sinks: console + CSV (``SimpleLogger``) and TensorBoard (``TensorBoardLogger``).

Metric names are TensorBoard tags in Stable-Baselines3's sections with an agent segment
(``rollout/car_0/ep_rew_mean``, ``train/car_0/policy_loss``, ``eval/success_rate``, ``time/fps``); the CSV uses the
same names as columns, and the x axis everywhere is the number of environment steps.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

STEP_COLUMN = "step"


class SimpleLogger:
    """Console and CSV logging with stable columns, and a summary of everything logged.

    The CSV has one row per ``log`` call: ``step`` first, then every metric in the order it first appeared.
    When a metric appears for the first time after rows were written, the file is rewritten with the wider header
    (earlier rows get empty cells), so columns always line up.

    Args:
        csv_path: where ``metrics.csv`` goes (None: no file).
        console: also write each row to the ``logging`` logger (Hydra sends it to ``train.log`` and stdout).
        resume_step: continue an existing CSV: rows logged after this step are dropped (they will be logged
            again), earlier rows are kept.
    """

    def __init__(self, csv_path: str | Path | None = None, console: bool = True, resume_step: int | None = None):
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.console = console
        self._columns: list[str] = []
        self._rows: list[dict[str, float]] = []
        if self.csv_path is not None and resume_step is not None and self.csv_path.is_file():
            self._load_existing(resume_step)
        if self.csv_path is not None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._rewrite()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record one row of metrics at environment step ``step``."""
        row = {STEP_COLUMN: int(step)}
        row.update({name: _as_float(value) for name, value in metrics.items()})
        new = [name for name in row if name not in self._columns and name != STEP_COLUMN]
        self._columns.extend(new)
        self._rows.append(row)
        if self.csv_path is not None:
            if new:
                self._rewrite()  # a wider header: earlier rows get empty cells
            else:
                self._append(row)
        if self.console:
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != STEP_COLUMN)
            log.info("step %d: %s", step, shown)

    def get_summary(self) -> dict[str, dict[str, float]]:
        """Per metric: mean, std, min, max and count over every row that holds it (NaNs ignored)."""
        summary = {}
        for name in self._columns:
            values = np.array([r[name] for r in self._rows if name in r and not math.isnan(r[name])])
            if values.size:
                summary[name] = {
                    "mean": float(values.mean()),
                    "std": float(values.std()),
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "count": int(values.size),
                }
        return summary

    @property
    def columns(self) -> list[str]:
        """``step`` and then the metric names in first-seen order."""
        return [STEP_COLUMN, *self._columns]

    def close(self) -> None:
        """Nothing stays open between calls; kept for symmetry with the other sinks."""

    def _load_existing(self, resume_step: int) -> None:
        with self.csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            self._columns = [c for c in (reader.fieldnames or []) if c != STEP_COLUMN]
            for record in reader:
                step = int(float(record[STEP_COLUMN]))
                if step > resume_step:
                    continue
                row = {STEP_COLUMN: step}
                row.update({k: float(v) for k, v in record.items() if k != STEP_COLUMN and v not in ("", None)})
                self._rows.append(row)

    def _rewrite(self) -> None:
        tmp = self.csv_path.with_name(self.csv_path.name + ".tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, restval="")
            writer.writeheader()
            writer.writerows(self._rows)
        os.replace(tmp, self.csv_path)

    def _append(self, row: dict[str, float]) -> None:
        with self.csv_path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, restval="").writerow(row)


class TensorBoardLogger:
    """Scalars, HParams, a custom-scalars layout and evaluation videos in the run's own event file.

    Args:
        log_dir: the run's ``tensorboard/`` folder.
        purge_step: when resuming at this environment step, TensorBoard discards events logged at or after it by
            the interrupted run, so curves continue without duplicates.
    """

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # torch's writer; the tensorboard package renders it

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def log_scalars(self, metrics: Mapping[str, float], step: int) -> None:
        for tag, value in metrics.items():
            value = _as_float(value)
            if not math.isnan(value):
                self.writer.add_scalar(tag, value, global_step=int(step))

    def log_layout(self, layout: dict[str, dict[str, list]]) -> None:
        """Custom-scalars dashboard: {category: {chart title: ["Multiline", [tag regexes]]}}."""
        self.writer.add_custom_scalars(layout)

    def log_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """The HParams plugin's record, written into this run's event file (not a sub-run as add_hparams does)."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        clean = {k: _hparam_value(v) for k, v in hparams.items()}
        values = {k: _as_float(v) for k, v in metrics.items()}
        experiment, session_start, session_end = hparams_summary(clean, values)
        writer = self.writer.file_writer
        for summary in (experiment, session_start, session_end):
            writer.add_summary(summary)
        for tag, value in values.items():
            self.writer.add_scalar(tag, value)

    def log_video(self, tag: str, frames: np.ndarray, step: int, fps: float = 20.0) -> None:
        """An animated GIF (T, H, W, 3 uint8 frames) in the Images dashboard."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        frames = np.asarray(frames, dtype=np.uint8)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(f"video frames must be (T, H, W, 3) uint8, got shape {frames.shape}")
        buffer = io.BytesIO()
        images = [Image.fromarray(f) for f in frames]
        images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0)
        height, width = frames.shape[1:3]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue())
        self.writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), int(step))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _as_float(value: Any) -> float:
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _hparam_value(value: Any) -> bool | int | float | str:
    """HParams take bools, numbers and strings; anything else (lists, None) becomes its string."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)
