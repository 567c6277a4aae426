"""The render stage's report: edit grids, training curves and metrics in one offline HTML file.

`render_report()` writes, atomically, a folder with
- `interpolation/<attribute>.png`: one attribute slid over α (the paper's Figure 1), per attribute;
- `swaps.png`: each attribute flipped alone (Figure 3);
- `multi_swaps.png`: several attributes changed at once (Figure 4), when combinations are given;
- `swap_curve.png`: swap accuracy against α per attribute (metrics/swap_curve.json);
- `tradeoff.png`: reconstruction MSE against flip accuracy, one point per λ_E, from a folder of
  sweep results (metrics/tradeoff/<family>.json, written by experiments/tradeoff.py);
- `curves.png`: the DVCLive training curves as small multiples (matplotlib, Agg);
- `index.html`: a results page: summary tables (per attribute: the judge's accuracy, flips at
  α = 1 and at the intensity evaluate used, preservation, swap FID/KID; reconstruction
  MSE/PSNR/SSIM/FID/KID), the curves, the grids, and every metric last, collapsed. Images are
  embedded as base64 data URIs and there is no JavaScript, so the file opens offline and can be
  mailed.

The grids use a fixed, seeded list of test images (`fader.report.grids.fixed_indices`), so reports
of two runs show the same faces.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fader import io, runtime
from fader.config import AtLeastOne, NonNegativeInt, config, to_dict
from fader.data.prepared import PreparedDataset
from fader.image import save_png
from fader.model.networks import AutoEncoder
from fader.report import grids
from fader.report.curves import plot_curves, plot_swap_curve, plot_tradeoff
from fader.report.page import Table, read_metrics_dir, write_html_report

log = logging.getLogger(__name__)

INDEX = "index.html"
CURVES = "curves.png"
SWAP_CURVE = "swap_curve.png"
TRADEOFF = "tradeoff.png"
SWAPS = "swaps.png"
MULTI_SWAPS = "multi_swaps.png"


INTERPOLATION_DIR = "interpolation"  # one grid per attribute: a folder, so that dvc.yaml's
# plots name it without naming the attributes


def interpolation_file(attribute: str) -> str:
    """Path of one attribute's interpolation grid in the render folder."""
    return f"{INTERPOLATION_DIR}/{attribute}.png"


@config
class RenderConfig:
    """What the report shows (params.yaml, section `render`)."""

    n_images: AtLeastOne  # grid rows: test images drawn by `fixed_indices`
    alpha_min: float  # interpolation range; values outside [0, 1] extrapolate
    alpha_max: float
    n_alphas: AtLeastOne  # interpolation columns (official interpolate.py: 10 from 0 to 1)
    seed: NonNegativeInt  # picks the test images
    # Figure 4: each entry sets several attributes at once, e.g. {Male: 1, Smiling: 0}
    multi_swaps: tuple[dict[str, float], ...]
    curves: tuple[str, ...] | None  # fnmatch patterns of curves to draw; None: all
    device: str  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.n_alphas == 1 and self.alpha_min != self.alpha_max:
            raise ValueError("n_alphas must be >= 2 when alpha_min != alpha_max")
        if not all(self.multi_swaps):
            raise ValueError(
                "each multi_swaps entry must set at least one attribute, e.g. {Male: 1, Smiling: 0}"
            )

    @property
    def alphas(self) -> list[float]:
        """The interpolation values: n_alphas evenly spaced from alpha_min to alpha_max."""
        return np.linspace(self.alpha_min, self.alpha_max, self.n_alphas).tolist()


def _alpha_text(values: Sequence[float]) -> str:
    return ", ".join(f"{a:.3g}" for a in values)


def render_report(
    autoencoder: AutoEncoder,
    attributes: Sequence[str],
    data: PreparedDataset,
    config: RenderConfig,
    out_dir: str | os.PathLike[str],
    metrics_dir: str | os.PathLike[str] | None = None,
    live_dir: str | os.PathLike[str] | None = None,
    title: str = "Fader Networks",
    tradeoff_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the render folder (module docstring) atomically; return the files it holds.

    `data` is the split to draw rows from (the test split), read with the model's attributes.
    Without `metrics_dir`, `live_dir` or `tradeoff_dir` the report leaves out the tables, the
    training curves or the trade-off.
    """
    attributes = list(attributes)
    size = autoencoder.cfg.img_size
    if data.img_size != size:
        raise ValueError(
            f"the model works at {size} px but the data is prepared at "
            f"{data.img_size} px: render with the data it was trained on"
        )
    if list(data.attributes) != attributes:
        raise ValueError(
            f"the model edits {attributes} but the data was read with {list(data.attributes)}"
        )
    device = runtime.resolve_device(config.device)
    autoencoder = autoencoder.to(device)
    indices = grids.fixed_indices(len(data), config.n_images, config.seed)
    x, y = data.batch(indices)
    x, y = x.to(device), y.to(device)
    alphas = config.alphas
    captions = {}
    out_dir = Path(out_dir)
    with io.atomic_dir(out_dir) as tmp:
        grid_files = []
        for i, name in enumerate(attributes):
            file = tmp / interpolation_file(name)
            file.parent.mkdir(exist_ok=True)
            save_png(file, grids.interpolation_grid(autoencoder, x, y, i, alphas))
            captions[file.name] = (
                f"{name}: original, reconstruction, then {name} = α for α = {_alpha_text(alphas)}"
            )
            grid_files.append(file)
        save_png(tmp / SWAPS, grids.swap_grid(autoencoder, x, y, attributes))
        captions[SWAPS] = (
            "original, reconstruction, then one attribute flipped (1 - y): " + ", ".join(attributes)
        )
        grid_files.append(tmp / SWAPS)
        if config.multi_swaps:
            grid = grids.multi_swap_grid(autoencoder, x, y, attributes, config.multi_swaps)
            save_png(tmp / MULTI_SWAPS, grid)
            combos = [", ".join(f"{k}={v:g}" for k, v in c.items()) for c in config.multi_swaps]
            captions[MULTI_SWAPS] = (
                "original, reconstruction, then several attributes set at "
                "once: " + " | ".join(combos)
            )
            grid_files.append(tmp / MULTI_SWAPS)
        metrics = read_metrics_dir(metrics_dir) if metrics_dir is not None else {}
        curve_files = []
        if isinstance(metrics.get("swap_curve", {}).get("value"), list):
            plot_swap_curve(metrics["swap_curve"]["value"], tmp / SWAP_CURVE)
            captions[SWAP_CURVE] = (
                "swap accuracy against α on the test split (classifier-judged); dashed: 90 %"
            )
            curve_files.append(tmp / SWAP_CURVE)
        sweeps = tradeoff_points(tradeoff_dir) if tradeoff_dir is not None else {}
        if sweeps:
            plot_tradeoff(sweeps, tmp / TRADEOFF)
            runs = sorted({point["data"] for points in sweeps.values() for point in points})
            captions[TRADEOFF] = (
                "the trade-off of λ_E (Sec. 3): reconstruction against flips at α = 1, one point "
                f"per λ_E, test split of {' | '.join(runs)}; dashed: 90 % "
                f"({tradeoff_dir}: experiments/celeba_tradeoff.sh, then experiments/tradeoff.py)"
            )
            curve_files.append(tmp / TRADEOFF)
        if live_dir is not None:
            drawn = plot_curves(live_dir, tmp / CURVES, config.curves)
            captions[CURVES] = f"{len(drawn)} curves from {live_dir}"
            curve_files.append(tmp / CURVES)
        tables: dict[str, dict] = {
            "model": {**to_dict(autoencoder.cfg), "attributes": attributes},
            "render": {
                "rows (test images)": [str(f) for f in data.filenames[indices]],
                "alphas": [round(a, 6) for a in alphas],
            },
        }
        tables |= metrics
        summary = summary_tables(metrics)
        write_html_report(tmp / INDEX, title, summary, curve_files, grid_files, tables, captions)
        names = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    log.info("wrote %s: %s", out_dir, ", ".join(names))
    return [out_dir / name for name in names]


TRADEOFF_KEYS = ("experiment", "data", "lambda_e", "recon_mse", "flip_accuracy")


def tradeoff_points(tradeoff_dir: str | os.PathLike[str]) -> dict[str, list[dict]]:
    """The sweep families of `tradeoff_dir` (<family>.json: a list of points, each with
    TRADEOFF_KEYS), by family; a malformed file is an error that names it."""
    families = {}
    for family, content in read_metrics_dir(tradeoff_dir).items():
        points = content.get("value")
        good = isinstance(points, list) and all(
            isinstance(p, dict) and all(k in p for k in TRADEOFF_KEYS) for p in points
        )
        if not good:
            raise ValueError(
                f"{Path(tradeoff_dir) / family}.json: expected a list of points with "
                f"{', '.join(TRADEOFF_KEYS)} (experiments/tradeoff.py writes them)"
            )
        families[family] = points
    return families


INTENSITY_PREFIX = "swap_accuracy_x"  # evaluate's key of the swap at `evaluate.intensity`


def intensity_key(evaluate: dict) -> str | None:
    """The key of the flip at the intensity `evaluate` used (`swap_accuracy_x2` at 2x).

    evaluate.json records the intensity under `settings`; without it the key is the one that
    the attributes hold (`swap_accuracy_x<intensity>`), and None when they hold none or several.
    """
    intensity = evaluate.get("settings", {}).get("intensity")
    if intensity is not None:
        return f"{INTENSITY_PREFIX}{intensity:g}"  # as fader.eval.evaluate writes it
    keys = {
        key
        for scores in evaluate.get("attributes", {}).values()
        for key in scores
        if key.startswith(INTENSITY_PREFIX)
    }
    return keys.pop() if len(keys) == 1 else None


def summary_tables(metrics: dict[str, dict]) -> list[Table]:
    """The page's lead: per-attribute edits and the reconstruction, from evaluate.json (none
    without it)."""
    evaluate = metrics.get("evaluate")
    if not evaluate:
        return []
    fid, kid = evaluate.get("fid", {}), evaluate.get("kid", {})
    intensity = intensity_key(evaluate)

    def percent(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f} %"

    def distance(key: str) -> str:
        if key not in fid:
            return "–"
        kid_text = f"{kid[key]['mean']:.3f} ± {kid[key]['std']:.3f}" if key in kid else "–"
        return f"{fid[key]:.1f} / {kid_text}"

    rows = [
        [
            name,
            percent(scores.get("real_accuracy")),
            percent(scores.get("swap_accuracy")),
            percent(scores.get(intensity) if intensity else None),
            percent(scores.get("preservation_error")),
            distance(f"swap/{name}"),
        ]
        for name, scores in evaluate["attributes"].items()
    ]
    per_attribute = Table(
        "Per attribute, test split (flips judged by the classifier)",
        [
            "attribute",
            "judge accuracy (real)",
            "flip, α = 1",
            f"flip, {intensity.removeprefix(INTENSITY_PREFIX)}x intensity"
            if intensity
            else "flip, other intensity",
            "preservation error",
            "swap FID / KID",
        ],
        rows,
    )
    recon = evaluate.get("reconstruction", {})
    images = fid.get("images")
    reconstruction = Table(
        "Reconstruction, test split",
        ["MSE ([-1, 1])", "PSNR", "SSIM", f"FID / KID ({images} images)", "real vs real FID / KID"],
        [
            [
                f"{recon['mse']:.4f}" if "mse" in recon else "–",
                f"{recon['psnr']:.2f} dB" if "psnr" in recon else "–",
                f"{recon['ssim']:.3f}" if "ssim" in recon else "–",
                distance("reconstruction"),
                distance("real_vs_real"),
            ]
        ],
    )
    return [per_attribute, reconstruction]
