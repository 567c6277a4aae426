"""What every stage does the same way: read params.yaml, build configs, set up logging, seed."""

from __future__ import annotations

import dataclasses
import logging
import random
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import typer
import yaml

T = TypeVar("T")

#: The `--params` option every stage takes.
ParamsOption = typer.Option(Path("params.yaml"), "--params", help="Parameters file.")


def load_params(path: Path) -> dict[str, Any]:
    """Read params.yaml (a mapping of sections), with a clear error when absent or malformed."""
    if not path.is_file():
        raise FileNotFoundError(f"parameters file not found: {path}")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """One section of params.yaml, which must exist and be a mapping."""
    if not isinstance(params.get(name), dict):
        raise ValueError(f"params.yaml: missing section {name!r} (sections: {sorted(params)})")
    return params[name]


def build(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build the frozen config dataclass `cls` from `values`, refusing unknown or missing keys.

    Lists become tuples where the field is a tuple, so configs stay hashable and comparable.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"params.yaml: {where}: unknown key(s) {unknown}; valid: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if isinstance(value, list) and _is_tuple(hint):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required key is missing
        raise ValueError(f"params.yaml: {where}: {error}") from None


def _is_tuple(hint: Any) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple(arg) for arg in typing.get_args(hint))
    return hint is tuple or typing.get_origin(hint) is tuple


def pick(values: dict[str, Any], keys: list[str], where: str) -> dict[str, Any]:
    """The given keys of a params section, each of which must be present."""
    missing = [k for k in keys if k not in values]
    if missing:
        raise ValueError(f"params.yaml: {where}: missing key(s) {missing}")
    return {k: values[k] for k in keys}


def setup(seed: int | None = None) -> None:
    """Logging for a stage run, and every RNG seeded when `seed` is given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
