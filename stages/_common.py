"""What every stage does the same way: read params.yaml, build configs, set up logging, seed.

Imports here stay light (no torch): `fader --help` loads every stage module, and each stage
imports the library inside its command.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml

T = TypeVar("T")

#: The `--params` option every stage takes.
ParamsOption = typer.Option(Path("params.yaml"), "--params", help="Parameters file.")


class Params:
    """params.yaml: a mapping of sections, read once, built into configs one section at a time."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"parameters file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: malformed YAML: {error}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
        self.path = path
        self.values = values

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


def setup(seed: int | None = None) -> None:
    """Logging for a stage run, and every RNG seeded when `seed` is given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if seed is not None:
        from fader import runtime

        runtime.seed_everything(seed)


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
