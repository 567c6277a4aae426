"""`fader render`: the report folder (edit grids, training curves, metrics tables, index.html)."""

from pathlib import Path

import typer

from fader import checkpoint
from fader.data import PreparedDataset
from fader.report import RenderConfig, render_report
from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder (rows come from its test split)."),
    model: Path = typer.Option(..., help="Fader checkpoint (from `fader train`)."),
    out: Path = typer.Option(..., help="Report folder to write (replaced atomically)."),
    metrics_dir: Path | None = typer.Option(None, help="Folder of metrics JSON files to tabulate."),
    live: Path | None = typer.Option(None, help="DVCLive folder whose curves to draw."),
    params: Path = _common.ParamsOption,
) -> None:
    """Interpolation, swap and multi-swap grids on fixed test images, curves, one HTML page."""
    config = _common.build(RenderConfig, _common.section(_common.load_params(params), "render"),
                           "render")  # fmt: skip
    _common.setup(config.seed)
    autoencoder, attributes = checkpoint.load_fader(model)
    test = PreparedDataset(data, "test", attributes=attributes)
    render_report(autoencoder, attributes, test, config, out, metrics_dir, live,
                  title=f"Fader Networks: {model}")  # fmt: skip
