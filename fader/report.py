"""The render stage's report: edit grids, training curves and metrics in one offline HTML file.

`render_report()` writes, atomically, a folder with
- `interpolation_<attribute>.png`: one attribute slid over α (the paper's Figure 1), per attribute;
- `swaps.png`: each attribute flipped alone (Figure 3);
- `multi_swaps.png`: several attributes changed at once (Figure 4), when combinations are given;
- `curves.png`: the DVCLive training curves as small multiples (matplotlib, Agg);
- `index.html`: all of the above plus the metrics JSON files as tables. Images are embedded as
  base64 data URIs and there is no JavaScript, so the file opens offline and can be mailed.

The grids use a fixed, seeded list of test images (`fader.grids.fixed_indices`), so reports of
two runs show the same faces.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from fader import grids, io, runtime
from fader.data import PreparedDataset
from fader.model import AutoEncoder

log = logging.getLogger(__name__)

INDEX = "index.html"
CURVES = "curves.png"
SWAPS = "swaps.png"
MULTI_SWAPS = "multi_swaps.png"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".svg": "image/svg+xml"}  # fmt: skip
_DVCLIVE_DIRS = ("plots", "metrics")  # DVCLive 3: <live dir>/plots/metrics/<name>.tsv


def interpolation_file(attribute: str) -> str:
    """File name of one attribute's interpolation grid in the render folder."""
    return f"interpolation_{attribute}.png"


@dataclass(frozen=True)
class RenderConfig:
    """What the report shows (params.yaml, section `render`)."""

    n_images: int = 8  # grid rows: test images drawn by `fixed_indices`
    alpha_min: float = 0.0  # interpolation range; values outside [0, 1] extrapolate
    alpha_max: float = 1.0
    n_alphas: int = 10  # interpolation columns (official interpolate.py: 10 from 0 to 1)
    seed: int = 0  # picks the test images
    # Figure 4: each entry sets several attributes at once, e.g. {Male: 1, Smiling: 0}
    multi_swaps: tuple[Mapping[str, float], ...] = ()
    curves: tuple[str, ...] | None = None  # fnmatch patterns of curves to draw; None: all
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("n_images", "n_alphas"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"render.{name} must be an int >= 1, got {value!r}")
        for name in ("alpha_min", "alpha_max"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"render.{name} must be a finite number, got "
                                 f"{getattr(self, name)!r}")  # fmt: skip
        if self.n_alphas == 1 and self.alpha_min != self.alpha_max:
            raise ValueError("render.n_alphas must be >= 2 when alpha_min != alpha_max")
        for combo in self.multi_swaps:
            if (not isinstance(combo, Mapping) or not combo
                    or not all(isinstance(k, str) and _is_number(v) for k, v in combo.items())):
                raise ValueError("render.multi_swaps must be a list of non-empty mappings "
                                 "NAME: number, e.g. {Male: 1, Smiling: 0}; "
                                 f"got {combo!r}")  # fmt: skip
        if self.curves is not None and not all(isinstance(p, str) for p in self.curves):
            raise ValueError(f"render.curves must be a list of name patterns, got {self.curves}")

    @property
    def alphas(self) -> list[float]:
        """The interpolation values: n_alphas evenly spaced from alpha_min to alpha_max."""
        return np.linspace(self.alpha_min, self.alpha_max, self.n_alphas).tolist()


def _is_number(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value))  # fmt: skip


# -----------------------------------------------------------------------------------------------
# Curves


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
            raise ValueError(f"{path}: expected DVCLive columns `step` and one metric, got "
                             f"{list(table.columns)}")  # fmt: skip
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
        ax.plot(curve["step"], curve["value"], lw=1.2, marker="o" if len(curve) <= 20 else None,
                ms=2.5)  # fmt: skip
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


# -----------------------------------------------------------------------------------------------
# HTML


def read_metrics_dir(metrics_dir: str | os.PathLike[str]) -> dict[str, dict]:
    """Every `*.json` in `metrics_dir` (not recursive), keyed by file stem, sorted by name."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise FileNotFoundError(f"metrics folder not found: {metrics_dir}")
    tables = {}
    for path in sorted(metrics_dir.glob("*.json")):
        try:
            content = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        tables[path.stem] = content if isinstance(content, dict) else {"value": content}
    return tables


def flatten(metrics: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """Nested dicts → one level with `sep`-joined keys ("/" is DVC's own metric naming)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, name + sep, sep)
        else:
            flat[name] = value
    return flat


def format_value(value: Any) -> str:
    """How a metric value is shown: floats to 6 significant digits, lists as JSON."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


def data_uri(path: str | os.PathLike[str]) -> str:
    """The file as a `data:<mime>;base64,...` URI."""
    path = Path(path)
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"{path}: cannot embed a {path.suffix!r} file; use one of {sorted(_MIME)}")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.value { text-align: right; font-family: monospace; }
figure { margin: 0 0 2em 0; }
img { max-width: 100%; height: auto; }
img.grid { image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.3em; }
"""


def _table(name: str, metrics: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td class=\"value\">{html.escape(format_value(value))}"
        "</td></tr>"
        for key, value in flatten(metrics).items()
    )
    return (f"<h3>{html.escape(name)}</h3>\n<table><tr><th>metric</th><th>value</th></tr>"
            f"{rows}</table>\n")  # fmt: skip


def _figure(path: Path, caption: str | None, pixel_art: bool) -> str:
    attributes = f'src="{data_uri(path)}" alt="{html.escape(path.name)}"'
    if pixel_art and path.suffix.lower() != ".svg":
        with Image.open(path) as image:
            width = image.width
        # small model outputs (32-64 px cells) are enlarged with crisp pixels
        scale = max(1, min(4, 1024 // max(width, 1)))
        attributes += f' class="grid" width="{width * scale}"'
    text = html.escape(caption if caption is not None else path.name)
    return f"<figure><img {attributes}><figcaption>{text}</figcaption></figure>\n"


def write_html_report(
    path: str | os.PathLike[str],
    title: str,
    metrics_tables: Mapping[str, Mapping[str, Any]],
    curve_images: Sequence[str | os.PathLike[str]],
    grid_images: Sequence[str | os.PathLike[str]],
    captions: Mapping[str, str] | None = None,
) -> None:
    """Write one self-contained HTML page: metrics tables, curve images, grid images.

    Images are embedded as base64 data URIs; there is no script and no external resource, so
    the page opens offline. `metrics_tables` maps a table name to a (possibly nested) dict of
    values; `captions` maps an image's file name to the text under it (default: the name).
    """
    captions = captions or {}
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
    ]
    if metrics_tables:
        parts.append("<h2>Metrics</h2>\n")
        parts += [_table(name, table) for name, table in metrics_tables.items()]
    if curve_images:
        parts.append("<h2>Training curves</h2>\n")
        parts += [_figure(Path(p), captions.get(Path(p).name), False) for p in curve_images]
    if grid_images:
        parts.append("<h2>Edits</h2>\n")
        parts += [_figure(Path(p), captions.get(Path(p).name), True) for p in grid_images]
    parts.append("</body>\n</html>\n")
    io.write_text(path, "".join(parts))


# -----------------------------------------------------------------------------------------------
# The render stage


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
) -> list[Path]:
    """Write the render folder (module docstring) atomically; return the files it holds.

    `data` is the split to draw rows from (the test split), read with the model's attributes.
    Without `metrics_dir` or `live_dir` the report leaves out the tables or the curves.
    """
    attributes = list(attributes)
    size = autoencoder.cfg.img_size
    if data.img_size != size:
        raise ValueError(f"the model works at {size} px but the data is prepared at "
                         f"{data.img_size} px: render with the data it was trained on")  # fmt: skip
    if list(data.attributes) != attributes:
        raise ValueError(f"the model edits {attributes} but the data was read with "
                         f"{list(data.attributes)}")  # fmt: skip
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
            grids.save_png(file, grids.interpolation_grid(autoencoder, x, y, i, alphas))
            captions[file.name] = (f"{name}: original, reconstruction, then {name} = α for "
                                   f"α = {_alpha_text(alphas)}")  # fmt: skip
            grid_files.append(file)
        grids.save_png(tmp / SWAPS, grids.swap_grid(autoencoder, x, y, attributes))
        captions[SWAPS] = ("original, reconstruction, then one attribute flipped (1 - y): "
                           + ", ".join(attributes))  # fmt: skip
        grid_files.append(tmp / SWAPS)
        if config.multi_swaps:
            grid = grids.multi_swap_grid(autoencoder, x, y, attributes, config.multi_swaps)
            grids.save_png(tmp / MULTI_SWAPS, grid)
            combos = [", ".join(f"{k}={v:g}" for k, v in c.items()) for c in config.multi_swaps]
            captions[MULTI_SWAPS] = ("original, reconstruction, then several attributes set at "
                                     "once: " + " | ".join(combos))  # fmt: skip
            grid_files.append(tmp / MULTI_SWAPS)
        curve_files = []
        if live_dir is not None:
            drawn = plot_curves(live_dir, tmp / CURVES, config.curves)
            captions[CURVES] = f"{len(drawn)} curves from {live_dir}"
            curve_files.append(tmp / CURVES)
        tables: dict[str, dict] = {
            "model": {**autoencoder.cfg.to_dict(), "attributes": attributes},
            "render": {"rows (test images)": [str(f) for f in data.filenames[indices]],
                       "alphas": [round(a, 6) for a in alphas]},
        }  # fmt: skip
        if metrics_dir is not None:
            tables |= read_metrics_dir(metrics_dir)
        write_html_report(tmp / INDEX, title, tables, curve_files, grid_files, captions)
        names = sorted(p.name for p in tmp.iterdir())
    log.info("wrote %s: %s", out_dir, ", ".join(names))
    return [out_dir / name for name in names]
