"""The λ_E sweep's points (experiments/celeba_tradeoff.sh) as metrics/tradeoff/<family>.json.

Reads `dvc exp show --json` and keeps every finished experiment named
`<prefix><family>-<λ_E>` (`celeba-tradeoff-recipe-0.005`, ...): one point per run with its λ_E,
its test reconstruction (MSE, PSNR) and its flip accuracy at α = 1 (the mean over attributes and
each attribute's), and the data it ran on. The render stage and `dvc plots show` draw them.

    python experiments/tradeoff.py                   # after the queue of celeba_tradeoff.sh ran
    python experiments/tradeoff.py --prefix mysweep-  # another family of experiments
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ablation_table import dvc, evaluation_of, experiments, params_of

from fader import io

OUT = Path("metrics/tradeoff")


def points(
    show: list[dict[str, Any]], finished: set[str], prefix: str
) -> dict[str, list[dict[str, Any]]]:
    """The sweep's points by family (the name's part between `prefix` and the last '-')."""
    families: dict[str, list[dict[str, Any]]] = {}
    for name, data in experiments(show):
        if not name.startswith(prefix) or name not in finished:
            continue
        family = name.removeprefix(prefix).rpartition("-")[0]
        result, params = evaluation_of(data), params_of(data)
        if not family or result is None:
            raise SystemExit(f"{name}: not named {prefix}<family>-<λ_E>, or it has no results")
        attributes = result["attributes"]
        families.setdefault(family, []).append(
            {
                "experiment": name,
                "data": _data_label(params),
                "lambda_e": params["train_fader.lambda_max"],
                "recon_mse": result["reconstruction"]["mse"],
                "psnr": result["reconstruction"]["psnr"],
                "flip_accuracy": result["mean"]["swap_accuracy"],
                **{f"flip_{n}": scores["swap_accuracy"] for n, scores in attributes.items()},
            }
        )
    return {family: sorted(rows, key=lambda r: r["lambda_e"]) for family, rows in families.items()}


def _data_label(params: dict[str, Any]) -> str:
    """Which data a run used, without local paths: `celeba-mini, random split, 64 px`."""
    folder = params.get("data.celeba_dir")
    source = (
        Path(folder).name if params["data.source"] == "celeba" and folder else params["data.source"]
    )
    return f"{source}, {params['data.split']} split, {params['data.img_size']} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="celeba-tradeoff-", help="experiment name prefix")
    parser.add_argument("-n", type=int, default=10, help="commits of history to search")
    args = parser.parse_args()
    show = json.loads(dvc("exp", "show", "--json", "-n", str(args.n)))
    finished = set(dvc("exp", "list", "--all-commits", "--name-only").split())
    families = points(show, finished, args.prefix)
    if not families:
        raise SystemExit(f"no finished experiment is named {args.prefix}<family>-<λ_E>")
    for family, rows in families.items():
        io.write_text(OUT / f"{family}.json", json.dumps(rows, indent=1) + "\n")
        print(f"{OUT / family}.json: {len(rows)} points")


if __name__ == "__main__":
    main()
