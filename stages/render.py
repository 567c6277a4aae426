"""`fader render`: the report folder (edit grids, training curves, metrics tables, index.html)."""

from pathlib import Path

import typer

from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder (rows come from its test split)."),
    model: Path = typer.Option(..., help="Fader checkpoint (from `fader train`)."),
    out: Path = typer.Option(..., help="Report folder to write (replaced atomically)."),
    metrics_dir: Path | None = typer.Option(None, help="Folder of metrics JSON files to tabulate."),
    live: Path | None = typer.Option(None, help="DVCLive folder whose curves to draw."),
    tradeoff: Path | None = typer.Option(
        None, help="Folder of λ_E sweep results to draw (experiments/tradeoff.py writes it)."
    ),
    params: Path = _common.ParamsOption,
) -> None:
    """Interpolation, swap and multi-swap grids on fixed test images, curves, one HTML page."""
    from fader.data.prepared import PreparedDataset
    from fader.model import checkpoint
    from fader.report.render import RenderConfig, render_report

    config = _common.Params(params).build(RenderConfig, "render")
    _common.setup(config.seed)
    autoencoder, attributes = checkpoint.load_network(model, "fader")
    test = PreparedDataset(data, "test", attributes=attributes)
    render_report(
        autoencoder,
        attributes,
        test,
        config,
        out,
        metrics_dir,
        live,
        title=f"Fader Networks: {model}",
        tradeoff_dir=tradeoff,
    )
