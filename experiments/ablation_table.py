"""The ablation study as one Markdown table, in the ablation report's shape.

Reads `dvc exp show --json` (the workspace is the baseline) and prints one row per experiment
whose name starts with `--prefix`: what it changed against the baseline, then naturalness (FID of
reconstructions and of each attribute's swaps against real test images) and accuracy (classifier-
judged swap accuracy per attribute), plus the reconstruction MSE.

    python experiments/ablation_table.py                  # after `dvc queue start` finished
    python experiments/ablation_table.py --prefix celeba  # any other family of experiments
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from fader.config import flatten

EVALUATE = "metrics/evaluate.json"


def experiments(show: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of the workspace, then of every experiment of every commit shown."""
    rows = [("baseline (workspace)", show[0]["data"])]
    for commit in show[1:]:
        for experiment in commit.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                rows.append((revision.get("name") or revision["rev"][:7], revision["data"]))
    return rows


def params_of(data: dict[str, Any]) -> dict[str, Any]:
    return flatten(data.get("params", {}).get("params.yaml", {}).get("data", {}), sep=".")


def evaluation_of(data: dict[str, Any]) -> dict[str, Any] | None:
    return (data.get("metrics") or {}).get(EVALUATE, {}).get("data")


def table(show: list[dict[str, Any]], finished: set[str], prefix: str) -> str:
    """The Markdown table of the finished experiments named `prefix`..., baseline first."""
    rows = experiments(show)
    baseline_params = params_of(rows[0][1])
    baseline = evaluation_of(rows[0][1])
    if baseline is None:
        raise SystemExit(f"the workspace has no {EVALUATE}: run `dvc repro` first")
    names = list(baseline["attributes"])
    header = (
        ["run", "change", "FID AE"]
        + [f"FID swap {n}" for n in names]
        + [f"swap acc. {n}" for n in names]
        + ["recon MSE"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, data in rows:
        if name != rows[0][0] and not (name.startswith(prefix) and name in finished):
            continue  # another family, or queued / running / failed (they show old metrics)
        result = evaluation_of(data)
        changed = {k: v for k, v in params_of(data).items() if baseline_params.get(k) != v}
        fid = result.get("fid", {})
        cells = [
            name,
            ", ".join(f"{k}={v}" for k, v in changed.items()) or "-",
            _number(fid.get("reconstruction")),
        ]
        cells += [_number(fid.get(f"swap/{n}")) for n in names]
        cells += [f"{100 * result['attributes'][n]['swap_accuracy']:.1f}%" for n in names]
        cells.append(f"{result['reconstruction']['mse']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="ablation-", help="experiment name prefix")
    parser.add_argument("-n", type=int, default=10, help="commits of history to search")
    args = parser.parse_args()
    show = dvc("exp", "show", "--json", "-n", str(args.n))
    finished = set(dvc("exp", "list", "--all-commits", "--name-only").split())
    print(table(json.loads(show), finished, args.prefix))


def dvc(*args: str) -> str:
    command = [sys.executable, "-m", "dvc", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    main()
