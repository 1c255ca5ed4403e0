"""Exact environment state for checkpoints: capture every mutable array, generator and counter, restore in place.

An environment here is a graph of this package's objects (view -> learner batch -> batched core -> simulator,
task, observation builder, drivers, normaliser) whose state lives in numpy arrays, numpy generators and plain
counters. ``capture_state`` walks that graph and copies them; ``restore_state`` writes them back into an
environment built from the same config, **in place**, so the many views between buffers (observation slices, reward
term views, read-only simulator views) keep pointing at the right memory. Configs (frozen dataclasses), maps and
read-only arrays are static and skipped.

This is what makes a resumed training run continue bit for bit: the cars are mid-episode, the noise generators
mid-stream, the Follow-The-Gap filters warm.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numba import typed

from multi_agent_rl.sim.maps import Polyline, TrackMap

_PACKAGE = "multi_agent_rl."
_PRIMITIVES = (bool, int, float, str, type(None), np.integer, np.floating, np.bool_)


def capture_state(obj: Any) -> dict[str, Any]:
    """A nested dict of copies of every mutable array, generator state and counter reachable from ``obj``."""
    return _capture_object(obj, set())


def restore_state(obj: Any, state: dict[str, Any]) -> None:
    """Write a state from :func:`capture_state` back into ``obj`` (built from the same config and reset once, so
    its buffers and views exist), in place.

    Raises:
        ValueError: when the state does not fit the object (another config, another number of copies).
    """
    _restore_object(obj, state, "env")


def _is_ours(value: Any) -> bool:
    cls = type(value)
    return cls.__module__.startswith(_PACKAGE) and not dataclasses.is_dataclass(value) and not isinstance(
        value, (TrackMap, Polyline)
    )


def _capture_object(obj: Any, seen: set[int]) -> dict[str, Any]:
    seen.add(id(obj))
    out = {}
    for name, value in vars(obj).items():
        captured = _capture_value(value, seen)
        if captured is not _SKIP:
            out[name] = captured
    return out


class _Skip:
    pass


_SKIP = _Skip()
_SKIPPED_ITEM = {"__skip__": True}  # a static entry of a list (kept as built)


def _capture_value(value: Any, seen: set[int]) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy() if value.flags.writeable else _SKIP
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, typed.List):
        return {"__typed_list__": [_capture_value(v, seen) for v in value]}
    if isinstance(value, tuple):
        # Immutable: only the mutable things inside (arrays, generators, objects) can change, in place.
        items = [_capture_value(v, seen) if not isinstance(v, _PRIMITIVES) else _SKIP for v in value]
        if all(i is _SKIP for i in items):
            return _SKIP
        return {"__tuple__": [_SKIPPED_ITEM if i is _SKIP else i for i in items]}
    if isinstance(value, list):
        items = [_capture_value(v, seen) for v in value]
        if items and all(i is _SKIP for i in items):
            return _SKIP
        return {"__list__": [_SKIPPED_ITEM if i is _SKIP else i for i in items]}
    if isinstance(value, dict):
        items = {k: _capture_value(v, seen) for k, v in value.items()}
        kept = {k: v for k, v in items.items() if v is not _SKIP}
        return {"__dict__": kept} if kept else _SKIP
    if _is_ours(value):
        if id(value) in seen:
            return _SKIP  # already captured through another reference
        return {"__object__": _capture_object(value, seen)}
    return _SKIP  # configs, maps, spaces, callables: static


def _is_skipped(item_state: Any) -> bool:
    return isinstance(item_state, dict) and item_state.get("__skip__") is True


def _restore_object(obj: Any, state: dict[str, Any], path: str) -> None:
    attrs = vars(obj)
    for name, saved in state.items():
        where = f"{path}.{name}"
        if name not in attrs:
            raise ValueError(f"{where}: not present in this environment (built from another config?)")
        new = _restore_value(attrs[name], saved, where)
        if new is not _SKIP:
            setattr(obj, name, new)


def _restore_value(current: Any, saved: Any, path: str) -> Any:
    """Restore in place where possible; return a replacement value, or _SKIP when done in place."""
    if isinstance(current, np.ndarray):
        if current.shape != saved.shape:
            raise ValueError(f"{path}: saved shape {saved.shape} does not fit {current.shape}")
        current[...] = saved
        return _SKIP
    if isinstance(saved, dict) and "__generator__" in saved:
        current.bit_generator.state = saved["__generator__"]
        return _SKIP
    if isinstance(saved, dict) and "__typed_list__" in saved:
        for item, item_state in zip(current, saved["__typed_list__"], strict=True):
            _restore_value(item, item_state, path)
        return _SKIP
    if isinstance(saved, dict) and "__tuple__" in saved:
        for k, (item, item_state) in enumerate(zip(current, saved["__tuple__"], strict=True)):
            if not _is_skipped(item_state):
                _restore_value(item, item_state, f"{path}[{k}]")
        return _SKIP
    if isinstance(saved, dict) and "__list__" in saved:
        items = saved["__list__"]
        if len(items) != len(current):
            raise ValueError(f"{path}: saved {len(items)} entries, this environment has {len(current)}")
        replaced = []
        for k, (item, item_state) in enumerate(zip(current, items, strict=True)):
            if _is_skipped(item_state):
                replaced.append(item)
                continue
            new = _restore_value(item, item_state, f"{path}[{k}]")
            replaced.append(item if new is _SKIP else new)
        current[:] = replaced
        return _SKIP
    if isinstance(saved, dict) and "__dict__" in saved:
        for key, item_state in saved["__dict__"].items():
            new = _restore_value(current[key], item_state, f"{path}[{key!r}]")
            if new is not _SKIP:
                current[key] = new
        return _SKIP
    if isinstance(saved, dict) and "__object__" in saved:
        _restore_object(current, saved["__object__"], path)
        return _SKIP
    return saved  # a primitive
