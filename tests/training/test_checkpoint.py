"""Checkpoints: round trip, atomic replacement, and clear errors for damaged or missing ones."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from multi_agent_rl.training.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint


def sample_states(value: float) -> dict:
    rng = np.random.default_rng(0)
    return {
        "car_0": {"net": {"w": torch.full((3, 2), value)}, "np_rng": rng.bit_generator.state, "steps": 7},
        "loop": {"episode": 4, "buffer": np.arange(5)},
    }


def test_round_trip(tmp_path):
    folder = save_checkpoint(tmp_path / "checkpoints" / "last", sample_states(1.5),
                             {"episode": 4, "global_step": 1000, "metrics": {"eval/success_rate": np.float32(0.5)}})
    states, meta = load_checkpoint(folder)
    assert torch.equal(states["car_0"]["net"]["w"], torch.full((3, 2), 1.5))
    assert states["car_0"]["np_rng"] == np.random.default_rng(0).bit_generator.state
    np.testing.assert_array_equal(states["loop"]["buffer"], np.arange(5))
    assert meta["global_step"] == 1000 and meta["metrics"]["eval/success_rate"] == 0.5
    assert set(meta["files"]) == {"car_0.pt", "loop.pt"} and "timestamp" in meta
    assert read_metadata(folder)["episode"] == 4
    assert sorted(p.name for p in folder.parent.iterdir()) == ["last"]  # no temporary leftovers


def test_overwrite_replaces_whole_checkpoint(tmp_path):
    target = tmp_path / "last"
    save_checkpoint(target, {"a": {"x": 1}, "b": {"x": 2}}, {"global_step": 1})
    save_checkpoint(target, {"a": {"x": 3}}, {"global_step": 2})
    states, meta = load_checkpoint(target)
    assert states == {"a": {"x": 3}} and meta["global_step"] == 2
    assert not (target / "b.pt").exists()


def test_crash_between_renames_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last"
    save_checkpoint(target, {"a": {"x": 1}}, {"global_step": 1})
    real_rename = os.rename
    calls = []

    def crash_on_second(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after setting the old checkpoint aside
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(target, {"a": {"x": 2}}, {"global_step": 2})
    monkeypatch.undo()
    states, meta = load_checkpoint(target)  # found where it was set aside
    assert states == {"a": {"x": 1}} and meta["global_step"] == 1


def test_crash_while_writing_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last"
    save_checkpoint(target, {"a": {"x": 1}}, {"global_step": 1})

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, {"a": {"x": 2}})
    monkeypatch.undo()
    assert load_checkpoint(target)[0] == {"a": {"x": 1}}
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


def test_damaged_file_is_named(tmp_path):
    folder = save_checkpoint(tmp_path / "last", {"car_0": {"x": torch.zeros(100)}})
    data = (folder / "car_0.pt").read_bytes()
    (folder / "car_0.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"car_0\.pt.*damaged or truncated"):
        load_checkpoint(folder)


def test_missing_and_foreign_folders_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="no metadata.json"):
        load_checkpoint(tmp_path / "plain")
    folder = save_checkpoint(tmp_path / "last", {"a": {}})
    (folder / "metadata.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable checkpoint metadata"):
        load_checkpoint(folder)
    meta = {"format_version": 1, "files": {"ghost.pt": "0" * 64}}
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="ghost.pt: listed in metadata.json but missing"):
        load_checkpoint(folder)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_a_format_this_code_does_not_read_is_named(tmp_path, version):
    folder = save_checkpoint(tmp_path / "last", {"a": {}})
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["format_version"] == 1
    meta["format_version"] = version
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=rf"checkpoint format {version!r} is not one this code reads \(1 to 1\); "
                                              "load it with the multi_agent_rl version that wrote it"):
        load_checkpoint(folder)
