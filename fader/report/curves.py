"""Curves as pictures (matplotlib): DVCLive's training curves as small multiples, and the swap
accuracy against α."""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from fader import io

_DVCLIVE_DIRS = ("plots", "metrics")  # DVCLive 3: <live dir>/plots/metrics/<name>.tsv


def read_curves(dvclive_dir: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Every DVCLive metric TSV under `dvclive_dir`, keyed by its name, as (step, value) frames.

    DVCLive 3 writes `<live dir>/plots/metrics/<metric>.tsv` with a `step` column and one named
    after the metric's last path component (`train/recon_loss` → `train/recon_loss.tsv`,
    column `recon_loss`). Names are the file's path below `dvclive_dir` without `.tsv` and
    without the `plots/metrics` folders: from `dvclive/` the name is
    `train_fader/train/recon_loss`, from `dvclive/train_fader/plots/metrics` it is
    `train/recon_loss`.
    """
    root = Path(dvclive_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"DVCLive folder not found: {root}")
    curves = {}
    for path in sorted(root.rglob("*.tsv")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        for i in range(len(parts) - 2, -1, -1):
            if tuple(parts[i : i + 2]) == _DVCLIVE_DIRS:
                del parts[i : i + 2]
        table = pd.read_csv(path, sep="\t")
        values = [c for c in table.columns if c not in ("step", "timestamp")]
        if "step" not in table.columns or len(values) != 1:
            raise ValueError(
                f"{path}: expected DVCLive columns `step` and one metric, got {list(table.columns)}"
            )
        curves["/".join(parts)] = pd.DataFrame({"step": table["step"], "value": table[values[0]]})
    return curves


def plot_curves(
    dvclive_plots_dir: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
    columns: int = 4,
) -> list[str]:
    """Draw DVCLive curves as small multiples (one panel per metric) into a PNG; return the names.

    `dvclive_plots_dir` is any folder above DVCLive's TSV files (see `read_curves` for the
    names). `metrics` are fnmatch patterns (`train_fader/valid/*`); each must match at least
    one curve. Panels follow the pattern order, names sorted within a pattern.
    """
    curves = read_curves(dvclive_plots_dir)
    if not curves:
        raise FileNotFoundError(f"no DVCLive .tsv files under {dvclive_plots_dir}")
    if metrics is None:
        names = sorted(curves)
    else:
        names = []
        for pattern in metrics:
            matched = [n for n in sorted(curves) if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                raise ValueError(
                    f"no curve matches {pattern!r}; curves: {', '.join(sorted(curves))}"
                )
            names += [n for n in matched if n not in names]
    cols = min(columns, len(names))
    rows = math.ceil(len(names) / cols)
    figure = Figure(figsize=(3.2 * cols, 2.3 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        curve = curves[name]
        ax.plot(
            curve["step"], curve["value"], lw=1.2, marker="o" if len(curve) <= 20 else None, ms=2.5
        )
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    with io.atomic_path(out_png) as tmp:
        # no Software/date metadata: the same curves give the same bytes
        figure.savefig(tmp, format="png", metadata={"Software": None})
    return names


def plot_swap_curve(
    points: Sequence[Mapping[str, float]], out_png: str | os.PathLike[str], target: float = 0.9
) -> None:
    """Swap accuracy against α, one line per attribute (metrics/swap_curve.json), into a PNG.

    `points` are evaluate's rows, {"alpha": α, <attribute>: accuracy, ...}; a dashed line marks
    `target` (the 90 % the real-face recipe aims at, at α = 1).
    """
    if not points:
        raise ValueError("the swap curve has no points")
    alphas = [point["alpha"] for point in points]
    names = [key for key in points[0] if key != "alpha"]
    figure = Figure(figsize=(5.5, 3.4), dpi=100, layout="constrained")
    ax = figure.subplots()
    for name in names:
        ax.plot(alphas, [point[name] for point in points], marker="o", ms=3, lw=1.4, label=name)
    ax.axhline(target, color="#888", lw=0.8, ls="--")
    ax.set_xlabel("α (the attribute's value given to the decoder; 1 = flipped)", fontsize=8)
    ax.set_ylabel("swap accuracy (classifier)", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    with io.atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", metadata={"Software": None})


def plot_tradeoff(
    families: Mapping[str, Sequence[Mapping[str, float]]],
    out_png: str | os.PathLike[str],
    target: float = 0.9,
) -> None:
    """The paper's trade-off (Sec. 3) as reconstruction MSE against flip accuracy at α = 1, one
    line per family of runs (metrics/tradeoff/<family>.json), one labelled point per λ_E.

    Points are experiments/tradeoff.py's rows: {"lambda_e", "recon_mse", "flip_accuracy", ...};
    a dashed line marks `target` (the 90 % the real-face recipe aims at).
    """
    if not any(families.values()):
        raise ValueError("the trade-off has no points")
    figure = Figure(figsize=(5.5, 3.8), dpi=100, layout="constrained")
    ax = figure.subplots()
    for family, points in families.items():
        ordered = sorted(points, key=lambda point: point["lambda_e"])
        mse = [point["recon_mse"] for point in ordered]
        flips = [point["flip_accuracy"] for point in ordered]
        ax.plot(mse, flips, marker="o", ms=4, lw=1.2, label=family)
        for point, x, y in zip(ordered, mse, flips):
            ax.annotate(
                f"{point['lambda_e']:g}",
                (x, y),
                xytext=(4, -9),
                textcoords="offset points",
                fontsize=6,
            )
    ax.axhline(target, color="#888", lw=0.8, ls="--")
    ax.set_xlabel("reconstruction MSE, test split (images in [-1, 1]; lower is better)", fontsize=8)
    ax.set_ylabel("flip accuracy at α = 1 (mean, classifier)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="λ_E beside each point", title_fontsize=7)
    with io.atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", metadata={"Software": None})
