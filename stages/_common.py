"""What every stage does the same way: read params.yaml, build configs, set up logging, seed."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import types
import typing
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import typer
import yaml

from fader import io

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


def pick(values: dict[str, Any], keys: list[str], where: str,
         known: Collection[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The given keys of a params section, each of which must be present.

    `known`, when given, is every valid key of the section (other stages may read the rest);
    any other key is refused, so a typo never passes silently.
    """
    if known is not None and (unknown := sorted(set(values) - set(known))):
        raise ValueError(f"params.yaml: {where}: unknown key(s) {unknown}; valid: {sorted(known)}")
    missing = [k for k in keys if k not in values]
    if missing:
        raise ValueError(f"params.yaml: {where}: missing key(s) {missing}")
    return {k: values[k] for k in keys}


#: The shared `data` section, by the stage that reads each key.
DATA_KEYS = {
    "download": ["source", "synthetic_size", "celeba_dir", "flowers_dir", "workers"],
    "preprocess": ["img_size", "attributes", "split", "split_fractions", "skip_bad", "workers"],
}


def data_params(params: dict[str, Any], stage: str) -> dict[str, Any]:
    """The keys of the `data` section that `stage` reads; unknown keys are refused."""
    known = {key for keys in DATA_KEYS.values() for key in keys}
    return pick(section(params, "data"), DATA_KEYS[stage], "data", known)


def seed(params: dict[str, Any]) -> int:
    """The top-level `seed`, which must be an int."""
    value = pick(params, ["seed"], "top level")["seed"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"params.yaml: seed must be an int >= 0, got {value!r}")
    return value


def setup(seed: int | None = None) -> None:
    """Logging for a stage run, and every RNG seeded when `seed` is given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


@contextlib.contextmanager
def dvclive_logger(directory: Path) -> Iterator[Callable[[dict[str, float], int], None]]:
    """A metrics logger writing DVCLive plots under `directory`; dvc.yaml declares them.

    `dvcyaml=None` keeps DVCLive from rewriting dvc.yaml, and `save_dvc_exp=False` leaves
    experiments to `dvc exp run`.
    """
    from dvclive import Live

    with Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log(metrics: dict[str, float], step: int) -> None:
            live.step = step
            for name, value in metrics.items():
                live.log_metric(name, value)
            live.make_summary()

        yield log


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Write a stage's metrics file (small JSON, committed to git, declared in dvc.yaml)."""
    io.write_json(path, metrics)


def build_many(values: dict[str, Any], where: str, *parts: tuple[type, dict[str, Any]]) -> list:
    """Split one params section between several config dataclasses and build each.

    Each part is (class, extra values not in params.yaml); every key of `values` must belong to
    exactly one class.
    """
    names = [{f.name for f in dataclasses.fields(cls)} for cls, _ in parts]
    unknown = sorted(set(values) - set().union(*names))
    if unknown:
        valid = sorted(set().union(*names) - {k for _, extra in parts for k in extra})
        raise ValueError(f"params.yaml: {where}: unknown key(s) {unknown}; valid: {valid}")
    return [
        build(cls, {**{k: v for k, v in values.items() if k in fields}, **extra}, where)
        for (cls, extra), fields in zip(parts, names)
    ]
