"""A full parameters file from params.yaml and a file of overrides (CI's smoke configs).

    python .ci/params.py .ci/smoke.params.yaml --out scratch/params.yaml
    python .ci/params.py .ci/smoke.params.yaml --set seed=1 --set train_fader.precision=bf16

The overrides file holds only the keys whose values differ from params.yaml, in params.yaml's
sections; `--set KEY=VALUE` (a dotted key, a YAML value) overrides one more key after it. A key
that params.yaml lacks is an error naming it (`stages._common.merge_overrides`), so a renamed
parameter cannot leave a stale override behind. Without `--out` the result goes to stdout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
import yaml

from fader import io
from stages._common import ParamsLoader, merge_overrides, read_mapping

HEADER = "# Written by .ci/params.py: {base} with the overrides of {overrides}{sets}.\n"


def parse_set(assignment: str) -> dict[str, Any]:
    """`a.b=value` → {"a": {"b": value}}, the value read as YAML (`seed=1` gives the int 1)."""
    key, sep, text = assignment.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"--set expects KEY=VALUE with a dotted KEY, got {assignment!r}")
    try:
        value: Any = yaml.load(text, Loader=ParamsLoader)
    except yaml.YAMLError as error:
        raise ValueError(f"--set {assignment!r}: malformed YAML value: {error}") from None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def merged_params(base: Path, overrides: Path, assignments: Sequence[str] = ()) -> dict[str, Any]:
    """`base` with the overrides file, then each `KEY=VALUE` of `assignments`, put in."""
    values = merge_overrides(read_mapping(base), read_mapping(overrides), str(overrides))
    for assignment in assignments:
        values = merge_overrides(values, parse_set(assignment), f"--set {assignment}")
    return values


def dump(values: dict[str, Any]) -> str:
    """A parameters mapping as YAML, in its own key order."""
    return yaml.safe_dump(values, sort_keys=False, default_flow_style=False, allow_unicode=True)


def main(
    overrides: Path = typer.Argument(..., help="Overrides file (YAML, params.yaml's sections)."),
    base: Path = typer.Option(Path("params.yaml"), "--base", help="Full parameters file."),
    assignments: list[str] = typer.Option(
        [], "--set", help="One more override, KEY=VALUE (dotted key, YAML value)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Where to write (default: stdout)."),
) -> None:
    """Write `base` with the overrides put in; exit 2 on an unknown key."""
    try:
        values = merged_params(base, overrides, assignments)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    sets = "".join(f", {assignment}" for assignment in assignments)
    text = HEADER.format(base=base, overrides=overrides, sets=sets) + dump(values)
    if out is None:
        typer.echo(text, nl=False)
    else:
        io.write_text(out, text)


if __name__ == "__main__":
    typer.run(main)
