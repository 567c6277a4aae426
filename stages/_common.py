"""What every stage does the same way: read params.yaml, build configs, set up logging, seed.

Also the one way to derive a parameters set from params.yaml: `merge_overrides` puts a file of
overrides (CI's smoke configs, `.ci/params.py`) or a test's values onto it, and refuses a key
that params.yaml does not have.

Imports here stay light (no torch): `fader --help` loads every stage module, and each stage
imports the library inside its command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml

T = TypeVar("T")

#: The `--params` option every stage takes.
ParamsOption = typer.Option(Path("params.yaml"), "--params", help="Parameters file.")


class ParamsLoader(yaml.SafeLoader):
    """YAML as DVC writes it (1.2): `1e-3` is a number, where PyYAML's YAML 1.1 reads a string."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_mapping(path: Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (params.yaml, a file of overrides)."""
    if not path.is_file():
        raise FileNotFoundError(f"parameters file not found: {path}")
    try:
        values = yaml.load(path.read_text(), Loader=ParamsLoader)
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
    return values


def merge_overrides(
    values: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "overrides"
) -> dict[str, Any]:
    """`values` with `overrides` put in, section by section; neither argument is changed.

    A mapping in `overrides` goes into the mapping it names key by key; anything else (a number,
    a list) replaces the value whole. A key that `values` lacks is an error that names it (and
    `where`, e.g. the overrides file) and lists the valid ones, as a misspelt key in params.yaml
    would be: an override can change a value, never add one.
    """
    merged = dict(values)
    for key, value in overrides.items():
        if key not in values:
            raise ValueError(
                f"{where}: unknown key {key!r}, not in params.yaml (valid keys: "
                f"{sorted(map(str, values))})"
            )
        if isinstance(values[key], Mapping):
            if not isinstance(value, Mapping):
                raise ValueError(
                    f"{where}: {key!r} is a section of params.yaml: expected a mapping of its "
                    f"keys, got {value!r}"
                )
            merged[key] = merge_overrides(values[key], value, f"{where}: {key}")
        else:
            merged[key] = value
    return merged


class Params:
    """params.yaml: a mapping of sections, read once, built into configs one section at a time."""

    def __init__(
        self, path: Path, overrides: Mapping[str, Any] | None = None, where: str = "overrides"
    ) -> None:
        """`path` read, with `overrides` put in (`merge_overrides`; `where` names them)."""
        self.path = path
        self.values = merge_overrides(read_mapping(path), overrides or {}, where)

    def section(self, name: str) -> dict[str, Any]:
        """One section, which must exist and be a mapping."""
        if not isinstance(self.values.get(name), dict):
            raise ValueError(
                f"{self.path}: missing section {name!r} (sections: {sorted(self.values)})"
            )
        return self.values[name]

    def build(
        self,
        cls: type[T],
        section: str,
        supplied: dict[str, Any] | None = None,
        shared_with: Collection[type] = (),
    ) -> T:
        """The config `cls` from one section (strict: see `fader.config.build`)."""
        from fader import config

        where = f"{self.path}: {section}"
        return config.build(cls, self.section(section), where, supplied, shared_with)

    @property
    def seed(self) -> int:
        """The top-level `seed`, an int >= 0."""
        if "seed" not in self.values:
            raise ValueError(f"{self.path}: missing top-level key 'seed'")
        value = self.values["seed"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{self.path}: seed must be an int >= 0, got {value!r}")
        return value


def setup(seed: int | None = None, deterministic: bool = False) -> None:
    """Logging for a stage run, and no orphans; when `seed` is given (a stage that computes with
    torch), every RNG seeded and torch's backends set (`fader.runtime.set_backends`: TF32 off,
    deterministic kernels or cuDNN autotuning).

    `deterministic` also sets CUBLAS_WORKSPACE_CONFIG (unless the user set it), which cuBLAS reads
    when it starts: this runs before any CUDA work.

    On Linux the stage ends (SIGTERM) when its parent dies: a `dvc repro` killed with kill -9
    must not leave its trainer running, where the next `dvc repro` would start a second one.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _die_with_parent()
    if seed is not None:
        from fader import runtime

        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", runtime.CUBLAS_WORKSPACE_CONFIG)
        runtime.set_backends(deterministic)
        runtime.seed_everything(seed)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() == 1:  # the parent died before the call: do what it would have done
        os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def dvclive_logger(
    directory: Path, enabled: bool = True
) -> Iterator[Callable[[dict[str, float], int], None] | None]:
    """A metrics logger writing DVCLive plots under `directory`; dvc.yaml declares them.

    `dvcyaml=None` keeps DVCLive from rewriting dvc.yaml, and `save_dvc_exp=False` leaves
    experiments to `dvc exp run`. Not `enabled` (a training process other than rank 0): None,
    and nothing is written.
    """
    if not enabled:
        yield None
        return
    from dvclive import Live

    with Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log(metrics: dict[str, float], step: int) -> None:
            live.step = step
            for name, value in metrics.items():
                live.log_metric(name, value)
            live.make_summary()

        yield log
