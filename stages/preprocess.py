"""`fader preprocess`: crop, resize and pack the raw images into one memory-mapped array."""

from pathlib import Path

import typer

from fader.preprocess import PreprocessConfig, prepare
from stages import _common


def main(
    raw: Path = typer.Option(..., help="Raw CelebA-format folder (from `fader download`)."),
    out: Path = typer.Option(..., help="Folder to write the prepared dataset to."),
    params: Path = _common.ParamsOption,
) -> None:
    """Crop the centred square, resize to data.img_size, write images.npy + attributes.csv."""
    all_params = _common.load_params(params)
    values = _common.data_params(all_params, "preprocess")
    config = _common.build(PreprocessConfig, {**values, "seed": _common.seed(all_params)}, "data")
    _common.setup()
    prepare(raw, out, config)
