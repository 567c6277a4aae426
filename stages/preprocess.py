"""`fader preprocess`: crop, resize and pack the raw images into one memory-mapped array."""

from pathlib import Path

import typer

from stages import _common


def main(
    raw: Path = typer.Option(..., help="Raw CelebA-format folder (from `fader download`)."),
    out: Path = typer.Option(..., help="Folder to write the prepared dataset to."),
    params: Path = _common.ParamsOption,
) -> None:
    """Crop the centred square, resize to data.img_size, write images.npy + attributes.csv."""
    from fader.data.config import PreprocessConfig, SourceConfig
    from fader.data.preprocess import prepare

    all_params = _common.Params(params)
    config = all_params.build(PreprocessConfig, "data", {"seed": all_params.seed}, [SourceConfig])
    _common.setup()
    prepare(raw, out, config)
