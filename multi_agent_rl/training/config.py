"""Checks of a composed config before any work: unknown keys and wrong types, named by their full key.

Every node with a ``_target_`` that names a dataclass (or a class taking a ``config`` dataclass, with
``_partial_: true``) is compared field by field with that dataclass: a key it does not have, or a value of the wrong
type, stops the run with one sentence such as

    agent.config.learning_rate: expected a float, got 'fast' (str)
    env.sim.lidar.num_beam: unknown key for LidarConfig; allowed keys: fov_rad, max_range_m, ...

Hydra itself already refuses overrides of keys that do not exist (``foo=1`` without ``+``) and unknown group
options; this covers what Hydra cannot know: the fields of our own dataclasses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import types
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

SPECIAL_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and what is allowed."""


def check_config(cfg: DictConfig, root: str = "") -> None:
    """Raise :class:`ConfigError` for the first unknown key or wrongly typed value under ``cfg``."""
    # Nodes that only repeat another node (agents.car_0: ${agent}) are checked where the user writes them.
    raw = OmegaConf.to_container(cfg, resolve=False)
    aliases = {key for key, value in _walk(raw, root) if isinstance(value, str) and _is_node_alias(value)}
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = _full_key(err)
        raise ConfigError(f"{key}: needs a value (???), e.g. {key}=... on the command line") from None
    except Exception as err:  # noqa: BLE001 - OmegaConf raises several kinds for a bad interpolation
        raise ConfigError(f"{_full_key(err) or root or 'config'}: {_first_line(err)}") from None
    _check_node(resolved, root, aliases)


def _walk(node: Any, key: str):
    """(full key, value) of every entry of a nested container."""
    if isinstance(node, dict):
        for name, value in node.items():
            child = f"{key}.{name}" if key else str(name)
            yield child, value
            yield from _walk(value, child)


def _is_node_alias(value: str) -> bool:
    """``${agent}``-style: the whole value is one interpolation of a config node."""
    return value.startswith("${") and value.endswith("}") and value.count("${") == 1 and ":" not in value


def config_hash(cfg: DictConfig) -> str:
    """A short stable hash of the resolved config (goes into checkpoint metadata)."""
    text = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def target_class(path: str, key: str) -> Any:
    """The class or function a ``_target_`` names."""
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{key}._target_: cannot import {path!r}") from None


def _check_node(node: Any, key: str, aliases: frozenset[str] | set[str] = frozenset()) -> None:
    if key in aliases:
        return
    if isinstance(node, dict):
        if "_target_" in node:
            _check_target(node, key)
        for name, value in node.items():
            if name not in SPECIAL_KEYS:
                _check_node(value, f"{key}.{name}" if key else str(name), aliases)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_node(value, f"{key}[{i}]", aliases)


def _check_target(node: dict, key: str) -> None:
    schema = target_class(node["_target_"], key)
    if not dataclasses.is_dataclass(schema):
        return  # e.g. an agent class with _partial_: its `config` node has a _target_ of its own
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for name, value in node.items():
        if name in SPECIAL_KEYS:
            continue
        where = f"{key}.{name}" if key else name
        if name not in fields:
            allowed = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key for {schema.__name__}; allowed keys: {allowed}")
        problem = _type_problem(value, hints[name])
        if problem:
            raise ConfigError(f"{where}: {problem}")
    missing = [
        n for n, f in fields.items()
        if n not in node and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{key}: {schema.__name__} needs a value for {', '.join(missing)}")


def _type_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (None when it fits)."""
    if _matches(value, annotation):
        return None
    return f"expected {_describe(annotation)}, got {value!r} ({type(value).__name__})"


def _matches(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence) or annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(annotation)
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis or origin is list or origin is typing.Sequence:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        # A nested config: a node with its own _target_ (checked on its own) or an instance.
        return isinstance(value, dict) and "_target_" in value or isinstance(value, annotation)
    return True  # annotations we do not model (callables, protocols) are not checked


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if annotation in (int, float, str, bool):
        article = "an" if annotation is int else "a"
        return f"{article} {annotation.__name__}"
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        inner = _describe(args[0]) if args else "values"
        return f"a list of {inner.removeprefix('a ').removeprefix('an ')}s"
    if inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        return f"a {annotation.__name__} node (with _target_)"
    return getattr(annotation, "__name__", str(annotation))


def _full_key(err: Exception) -> str:
    return str(getattr(err, "full_key", "") or "")


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__

