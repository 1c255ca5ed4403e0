"""Checkpoints: one folder per checkpoint holding ``<agent_id>.pt`` files and ``metadata.json``, written atomically.

A checkpoint is first written to a hidden temporary folder beside its target, every file flushed to disk, and then
renamed into place; an existing checkpoint of the same name is renamed aside first and removed last. A crash leaves
either the old or the new checkpoint complete (``load_checkpoint`` finds an old one that was set aside), never a mix.
``metadata.json`` records the SHA-256 of every file so a damaged or truncated file is caught on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import torch

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1  # written into metadata.json; raise it when a checkpoint can no longer be read the old way


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or damaged; the message names the folder or file."""


def save_checkpoint(
    directory: str | Path,
    states: dict[str, dict[str, Any]],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically.

    Args:
        directory: the checkpoint folder, e.g. ``<run>/checkpoints/last``.
        states: agent id -> state dict (anything ``torch.save`` takes); each becomes ``<agent_id>.pt``. Extra
            entries (e.g. ``"loop"`` for the training loop's own counters and RNG states) are saved the same way.
        metadata: JSON-serialisable facts (episode, global step, metrics, config hash); a timestamp is added.
    Returns:
        The folder written.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a checkpoint is as readable as the run
    try:
        files = {}
        for name, state in states.items():
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"checkpoint entry names must be plain file names, got {name!r}")
            path = tmp / f"{name}.pt"
            torch.save(state, path)
            files[path.name] = _sha256(path)
        meta = {"format_version": FORMAT_VERSION, "timestamp": time.time(), **(metadata or {}), "files": files}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=_json_default))
        for path in tmp.iterdir():
            _fsync(path)
        _fsync(tmp)
        aside = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
        if directory.exists():
            os.rename(directory, aside)
        os.rename(tmp, directory)
        _fsync(directory.parent)
        shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_checkpoint(directory: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns:
        (states, metadata): entry name -> state dict, and the parsed ``metadata.json``.
    Raises:
        CheckpointError: naming the folder or file when it is missing, incomplete, altered or unreadable.
    """
    directory = _existing_or_set_aside(Path(directory))
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {METADATA_FILE}); it may be incomplete")
    try:
        metadata = json.loads(meta_path.read_text())
        files = metadata["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{meta_path}: unreadable checkpoint metadata ({err})") from None
    version = metadata.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"{meta_path}: checkpoint format {version!r} is not one this code reads "
                              f"(1 to {FORMAT_VERSION}); load it with the multi_agent_rl version that wrote it")
    states = {}
    for file_name, digest in files.items():
        path = directory / file_name
        if not path.is_file():
            raise CheckpointError(f"{path}: listed in {METADATA_FILE} but missing")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path}: contents do not match {METADATA_FILE} (damaged or truncated)")
        try:
            # Our own files (hash-checked above); they hold numpy RNG states, so not weights_only.
            states[path.stem] = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing here
            raise CheckpointError(f"{path}: cannot be loaded ({err.__class__.__name__}: {err})") from None
    return states, metadata


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """Only the ``metadata.json`` of a checkpoint (cheap: no tensors loaded)."""
    path = _existing_or_set_aside(Path(directory)) / METADATA_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({err})") from None


def _existing_or_set_aside(directory: Path) -> Path:
    """The folder, or the copy a crash left set aside between the two renames of a save."""
    if directory.is_dir():
        return directory
    aside = sorted(directory.parent.glob(f".{directory.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if aside:
        return aside[-1]
    raise CheckpointError(f"{directory}: checkpoint folder not found")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic there
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()  # numpy and torch scalars
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
