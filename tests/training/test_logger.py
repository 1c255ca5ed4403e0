"""Console/CSV logger columns and summary; TensorBoard scalars, HParams and videos in one event file."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from multi_agent_rl.training.logger import SimpleLogger, TensorBoardLogger
from multi_agent_rl.training.metrics import compute_episode_metrics


def read_rows(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_csv_columns_stay_aligned_when_metrics_appear_later(tmp_path, caplog):
    path = tmp_path / "metrics.csv"
    logger = SimpleLogger(path)
    with caplog.at_level(logging.INFO):
        logger.log({"rollout/car_0/ep_rew_mean": 1.0}, step=100)
    logger.log({"rollout/car_0/ep_rew_mean": 2.0, "train/car_0/policy_loss": 0.5}, step=200)
    logger.log({"train/car_0/policy_loss": 0.25}, step=300)
    rows = read_rows(path)
    assert rows[0] == ["step", "rollout/car_0/ep_rew_mean", "train/car_0/policy_loss"]
    assert rows[1:] == [["100", "1.0", ""], ["200", "2.0", "0.5"], ["300", "", "0.25"]]
    assert "ep_rew_mean=1" in caplog.text


def test_summary_statistics(tmp_path):
    logger = SimpleLogger(None, console=False)
    for step, value in enumerate([1.0, 2.0, 3.0, 6.0]):
        logger.log({"x": value, "y": float("nan") if step else 5.0}, step)
    summary = logger.get_summary()
    assert summary["x"] == pytest.approx({"mean": 3.0, "std": np.std([1, 2, 3, 6]), "min": 1.0, "max": 6.0,
                                          "count": 4})
    assert summary["y"]["count"] == 1


def test_resume_drops_rows_after_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    first = SimpleLogger(path, console=False)
    for step in (100, 200, 300):
        first.log({"a": step / 100}, step)
    resumed = SimpleLogger(path, console=False, resume_step=200)
    resumed.log({"a": 3.5, "b": 1.0}, 300)
    rows = read_rows(path)
    assert rows == [["step", "a", "b"], ["100", "1.0", ""], ["200", "2.0", ""], ["300", "3.5", "1.0"]]


def test_tensorboard_scalars_hparams_layout_video_in_one_event_file(tmp_path):
    tb = TensorBoardLogger(tmp_path / "tensorboard")
    tb.log_layout({"Gaplock": {"success": ["Multiline", ["rollout/success_rate", "eval/success_rate"]]}})
    for step in (10, 20, 30):
        tb.log_scalars({"rollout/success_rate": step / 100, "time/fps": 1000.0}, step)
    frames = np.zeros((4, 16, 24, 3), dtype=np.uint8)
    frames[:, :, :12] = 255
    tb.log_video("eval/car_0/video", frames, step=30)
    tb.log_hparams({"agent": "ppo", "lr": 3e-4, "layers": [64, 64]}, {"eval/final_success_rate": 0.8})
    tb.close()
    event_files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(event_files) == 1  # HParams did not open a sub-run
    acc = EventAccumulator(str(event_files[0]), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("rollout/success_rate")] == [10, 20, 30]
    assert acc.Images("eval/car_0/video")[0].encoded_image_string[:6] == b"GIF89a"
    assert "_hparams_/experiment" in acc.summary_metadata
    assert acc.Scalars("eval/final_success_rate")[0].value == pytest.approx(0.8)


def test_tensorboard_resume_purges_steps_after_checkpoint(tmp_path):
    log_dir = tmp_path / "tensorboard"
    first = TensorBoardLogger(log_dir)
    for step in (10, 20, 30):
        first.log_scalars({"a": 1.0}, step)
    first.close()
    resumed = TensorBoardLogger(log_dir, purge_step=21)
    for step in (30, 40):
        resumed.log_scalars({"a": 2.0}, step)
    resumed.close()
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("a")] == [(10, 1.0), (20, 1.0), (30, 2.0), (40, 2.0)]


def test_compute_episode_metrics_by_hand():
    metrics = compute_episode_metrics({"car_0": [1.0, 3.0], "car_1": [-1.0, -1.0], "car_2": []}, [10, 30])
    assert metrics["car_0/reward_mean"] == 2.0 and metrics["car_0/reward_total"] == 4.0
    assert metrics["car_0/reward_std"] == 1.0 and metrics["car_1/length_mean"] == 20.0
    assert metrics["reward_mean"] == 0.5 and metrics["reward_total"] == 2.0 and metrics["episodes"] == 2.0
    assert "car_2/reward_mean" not in metrics
    with pytest.raises(ValueError, match="car_0"):
        compute_episode_metrics({"car_0": [1.0]}, {"car_0": [1, 2]})
