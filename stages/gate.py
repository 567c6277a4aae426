"""`fader gate`: fail when a run's metrics got worse than the committed baseline allows.

    fader gate --run metrics --baseline baselines --rules gate.yaml
    fader gate --run metrics --baseline baselines --rules gate.yaml --update

Exit status 0: every covered metric passes; 1: one failed or went missing; 2: bad options, rules
or metrics files. `--update` is how new numbers are accepted on purpose: it copies the run's
metrics files that the rules cover into the baseline folder (commit them), provided the run
passes its own absolute bounds. The rules format is described in `fader.gate`.
"""

import logging
from pathlib import Path

import typer
import yaml

from fader import gate
from stages import _common

log = logging.getLogger(__name__)


def main(
    run: Path = typer.Option(..., exists=True, file_okay=False, help="Run's metrics folder."),
    baseline: Path = typer.Option(..., file_okay=False, help="Baseline metrics folder."),
    rules: Path = typer.Option(..., help="Rules file (YAML)."),
    update: bool = typer.Option(False, "--update",
                                help="Accept the run: copy its covered files to the baseline."),
) -> None:
    """Compare the run's metrics with the baseline; exit 1 if one got worse or went missing."""
    _common.setup()
    try:
        checks = read_rules(rules)
        current = gate.read_metrics_dir(run)
        if update:
            _update(run, baseline, checks, current)
        rows = gate.compare(current, gate.read_metrics_dir(baseline), checks)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    _report(rows)


def read_rules(path: Path) -> list[gate.Rule]:
    """The rules of a YAML rules file, with a clear error when absent, malformed or invalid."""
    if not path.is_file():
        raise FileNotFoundError(f"rules file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML: {error}") from None
    return gate.parse_rules(data, str(path))


def _update(run: Path, baseline: Path, rules: list[gate.Rule], current: dict[str, float]) -> None:
    # Judged as its own baseline, the run can only fail its absolute bounds.
    rows = gate.compare(current, current, rules)
    if not gate.passed(rows):
        typer.echo("baseline not updated: the run fails the rules even as its own baseline")
        _report(rows)
    for path in gate.update_baseline(run, baseline, rules):
        log.info("baseline updated: %s", path)


def _report(rows: list[gate.Row]) -> None:
    typer.echo(gate.format_table(rows))
    typer.echo(gate.summary(rows))
    if not gate.passed(rows):
        raise typer.Exit(1)
