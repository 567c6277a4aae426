"""Metric regression gate: a run's metrics JSON files against a committed baseline.

    python .ci/gate.py --run metrics --baseline baselines --rules gate.yaml
    python .ci/gate.py --run metrics --baseline baselines --rules gate.yaml --update

Exit status 0: every covered metric passes; 1: one failed or went missing; 2: bad options, rules
or metrics files. `--update` is how new numbers are accepted on purpose: it copies the run's
metrics files that the rules cover into the baseline folder (commit them), provided the run
passes its own absolute bounds.

`dvc metrics diff` shows what changed but exits 0 whatever the numbers do, even when a metric
disappears. The gate turns a few rules into a verdict: each metric the rules cover must exist in
the run, must not have got worse by more than its tolerance, and must stay inside its absolute
bounds.

Metric names. Every `*.json` in a metrics folder (not recursive) is flattened: nested keys join
with ".", and the file name comes first, after a ":", e.g.
`evaluate.json:attributes.Smiling.swap_accuracy`. Only numeric leaves are metrics; strings,
lists, null and bools are skipped, and so is a file whose top level is not an object (such as a
list of plot rows).

Rules file (YAML; `read_rules()`):

    rules:                        # checked in order; the first rule matching a metric wins
      - metric: "evaluate.json:attributes.*.swap_accuracy"   # fnmatch pattern over names
        direction: higher         # required: higher | lower, which way is better
        max_worsening: 0.05       # relative worsening allowed vs the baseline (0.05 = 5 %)
        abs_tolerance: 0.01       # worsening allowed in the metric's own units
        min: 0.9                  # absolute bound the run must satisfy
      - metric: "evaluate.json:reconstruction.mse"
        direction: lower
        max_worsening: 0.25
        max: 0.02

`max_worsening`, `abs_tolerance`, `min` and `max` are optional. The tolerances default to 0 (no
worsening at all); a metric passes when its worsening is within either of them, so
`abs_tolerance` is what lets a metric whose baseline is about 0 move at all. A rule must apply to
at least one baseline metric, so a typo in a pattern is an error rather than a silent pass.
Baseline metrics that no rule matches are ignored.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer
import yaml

from fader import io
from fader.config import ConfigError, NonNegative, build, config, flatten
from fader.report.page import read_metrics_dir

log = logging.getLogger("gate")

PASS, FAIL, MISSING = "PASS", "FAIL", "MISSING"
# Relative slack for float rounding, so that a change of exactly the limit passes
# (0.9 * 0.95 is 0.855 on paper, but 0.9 - 0.855 > 0.05 * 0.9 in binary).
_SLACK = 1e-9


@config
class Rule:
    """What one rules-file entry allows the metrics it matches."""

    metric: str  # fnmatch pattern over "<file>:<dotted.key>"
    direction: Literal["higher", "lower"]  # which way is better
    max_worsening: NonNegative = 0.0  # relative to the baseline's magnitude
    abs_tolerance: NonNegative = 0.0  # in the metric's units
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("metric must be a non-empty pattern")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")

    def matches(self, name: str) -> bool:
        """Whether this rule's pattern covers the metric `name` (case-sensitive)."""
        return fnmatch.fnmatchcase(name, self.metric)

    def allowed(self, baseline: float) -> float:
        """How much worse than `baseline` a run may be, in the metric's units."""
        return max(self.max_worsening * abs(baseline), self.abs_tolerance)

    def limit(self) -> str:
        """The rule in a few characters: "-5% or -0.01, min 0.9" reads "may drop 5 % or 0.01"."""
        sign = "-" if self.direction == "higher" else "+"
        tolerances = []
        if self.max_worsening:
            tolerances.append(f"{sign}{100 * self.max_worsening:g}%")
        if self.abs_tolerance:
            tolerances.append(f"{sign}{self.abs_tolerance:g}")
        parts = [" or ".join(tolerances) or "no worsening"]
        if self.min is not None:
            parts.append(f"min {self.min:g}")
        if self.max is not None:
            parts.append(f"max {self.max:g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    """The verdict on one baseline metric."""

    metric: str
    baseline: float
    current: float | None  # None: absent from the run
    change: float | None  # (current - baseline) / |baseline| in %; None when undefined
    limit: str
    status: str  # PASS, FAIL or MISSING
    reason: str  # empty when the metric passes


def parse_rules(data: Any, source: str) -> list[Rule]:
    """Rules from a loaded rules file; `source` (its path) prefixes every error message."""
    if not isinstance(data, Mapping) or set(data) != {"rules"}:
        found = sorted(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{source}: expected a mapping with the single key 'rules', got {found}")
    entries = data["rules"]
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{source}: 'rules' must be a non-empty list, got {entries!r}")
    return [_parse_rule(entry, f"{source}: rules[{i}]") for i, entry in enumerate(entries)]


def _parse_rule(entry: Any, where: str) -> Rule:
    try:
        return build(Rule, entry, where)
    except ConfigError as error:
        raise ValueError(str(error)) from None


def numeric_leaves(tree: Mapping[str, Any]) -> dict[str, float]:
    """The numeric leaves of nested dicts, keyed by their "."-joined path."""
    return {key: float(value) for key, value in flatten(tree, sep=".").items() if _is_number(value)}


def read_metrics(folder: str | os.PathLike[str]) -> dict[str, float]:
    """All metrics of a folder's `*.json` files in one flat dict, named "<file name>:<dotted.key>".

    The files are read by the report's reader (`fader.report.page.read_metrics_dir`), leaving out
    those whose top level is not an object.
    """
    return {
        f"{stem}.json:{key}": value
        for stem, tree in read_metrics_dir(folder, objects_only=True).items()
        for key, value in numeric_leaves(tree).items()
    }


def compare(
    current: Mapping[str, float], baseline: Mapping[str, float], rules: Sequence[Rule]
) -> list[Row]:
    """One row per baseline metric that a rule covers, in name order.

    Raises ValueError when a rule applies to no baseline metric.
    """
    assigned = {name: _first_match(name, rules) for name in sorted(baseline)}
    for i, rule in enumerate(rules):
        if i not in assigned.values():
            raise ValueError(_unused_rule_message(i, rule, baseline))
    run_files = {_file_of(name) for name in current}
    return [
        _judge(name, baseline[name], current.get(name), rules[i], run_files)
        for name, i in assigned.items()
        if i is not None
    ]


def _first_match(name: str, rules: Sequence[Rule]) -> int | None:
    """The index of the first rule matching `name` (indices, since equal rules may repeat)."""
    return next((i for i, rule in enumerate(rules) if rule.matches(name)), None)


def _unused_rule_message(index: int, rule: Rule, baseline: Mapping[str, float]) -> str:
    where = f"rules[{index}] ({rule.metric!r})"
    if any(rule.matches(name) for name in baseline):
        return f"{where}: every metric it matches is taken by an earlier rule (first match wins)"
    names = sorted(baseline)
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    return f"{where} matches no baseline metric; baseline metrics: {shown or 'none'}"


def _judge(
    name: str, baseline: float, current: float | None, rule: Rule, run_files: set[str]
) -> Row:
    if current is None:
        file = _file_of(name)
        reason = "not in run" if file in run_files else f"{file} missing from run"
        return Row(name, baseline, None, None, rule.limit(), MISSING, reason)
    change = None
    if baseline and math.isfinite(baseline) and math.isfinite(current):
        change = 100 * (current - baseline) / abs(baseline)
    reasons = _failures(baseline, current, rule)
    return Row(
        name, baseline, current, change, rule.limit(), FAIL if reasons else PASS, "; ".join(reasons)
    )


def _failures(baseline: float, current: float, rule: Rule) -> list[str]:
    """Why `current` fails `rule` against `baseline`; empty when it passes."""
    if not math.isfinite(current):
        return [f"run value is {current}"]
    if not math.isfinite(baseline):
        return [f"baseline value is {baseline}"]
    reasons = []
    worsening = baseline - current if rule.direction == "higher" else current - baseline
    allowed = rule.allowed(baseline)
    if worsening > allowed + _SLACK * max(abs(baseline), abs(current)):
        reasons.append(f"worse by {worsening:.4g} (allowed {allowed:.4g})")
    if rule.min is not None and current < rule.min:
        reasons.append(f"below min {rule.min:g}")
    if rule.max is not None and current > rule.max:
        reasons.append(f"above max {rule.max:g}")
    return reasons


def passed(rows: Sequence[Row]) -> bool:
    """Whether every row passes."""
    return all(row.status == PASS for row in rows)


def summary(rows: Sequence[Row]) -> str:
    """One verdict line, e.g. "gate FAILED: 2 of 9 metrics failed, 1 missing"."""
    failed = sum(row.status == FAIL for row in rows)
    missing = sum(row.status == MISSING for row in rows)
    if not failed and not missing:
        return f"gate passed: {len(rows)} metrics within their rules"
    return f"gate FAILED: {failed} of {len(rows)} metrics failed, {missing} missing"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table: names and words left-aligned, numbers right."""
    header = ("metric", "baseline", "current", "change", "limit", "status", "reason")
    cells = [header] + [
        (
            row.metric,
            _number(row.baseline),
            _number(row.current),
            "-" if row.change is None else f"{row.change:+.2f}%",
            row.limit,
            row.status,
            row.reason,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    numeric = {1, 2, 3}
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()
        for line in cells
    )


def covered_files(folder: str | os.PathLike[str], rules: Sequence[Rule]) -> list[Path]:
    """The metrics files in `folder` holding at least one metric that a rule matches."""
    metrics = read_metrics(folder)
    names = {_file_of(name) for name in metrics if any(rule.matches(name) for rule in rules)}
    return [Path(folder) / name for name in sorted(names)]


def update_baseline(
    run: str | os.PathLike[str], baseline: str | os.PathLike[str], rules: Sequence[Rule]
) -> list[Path]:
    """Copy the run's metrics files that the rules cover into `baseline`, each atomically.

    Returns the files written. Other baseline files are left alone.
    """
    written = []
    for path in covered_files(run, rules):
        target = Path(baseline) / path.name
        io.copy_file(path, target)
        written.append(target)
    return written


def _file_of(name: str) -> str:
    return name.partition(":")[0]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


# -----------------------------------------------------------------------------------------------
# Command line


def read_rules(path: Path) -> list[Rule]:
    """The rules of a YAML rules file, with a clear error when absent, malformed or invalid."""
    if not path.is_file():
        raise FileNotFoundError(f"rules file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML: {error}") from None
    return parse_rules(data, str(path))


def main(
    run: Path = typer.Option(..., exists=True, file_okay=False, help="Run's metrics folder."),
    baseline: Path = typer.Option(..., file_okay=False, help="Baseline metrics folder."),
    rules: Path = typer.Option(..., help="Rules file (YAML)."),
    update: bool = typer.Option(
        False, "--update", help="Accept the run: copy its covered files to the baseline."
    ),
) -> None:
    """Compare the run's metrics with the baseline; exit 1 if one got worse or went missing."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        checks = read_rules(rules)
        current = read_metrics(run)
        if update:
            _update(run, baseline, checks, current)
        rows = compare(current, read_metrics(baseline), checks)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error)) from None
    _report(rows)


def _update(run: Path, baseline: Path, rules: list[Rule], current: dict[str, float]) -> None:
    # Judged as its own baseline, the run can only fail its absolute bounds.
    rows = compare(current, current, rules)
    if not passed(rows):
        typer.echo("baseline not updated: the run fails the rules even as its own baseline")
        _report(rows)
    for path in update_baseline(run, baseline, rules):
        log.info("baseline updated: %s", path)


def _report(rows: list[Row]) -> None:
    typer.echo(format_table(rows))
    typer.echo(summary(rows))
    if not passed(rows):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
