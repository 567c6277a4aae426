"""`fader preprocess`: crop, resize and pack the raw images into one memory-mapped array."""

from pathlib import Path

import typer

from fader.preprocess import PreprocessConfig, prepare
from stages import _common

KEYS = ["img_size", "attributes", "split", "split_fractions", "skip_bad", "workers"]


def main(
    raw: Path = typer.Option(..., help="Raw CelebA-format folder (from `fader download`)."),
    out: Path = typer.Option(..., help="Folder to write the prepared dataset to."),
    params: Path = _common.ParamsOption,
) -> None:
    """Crop the centred square, resize to data.img_size, write images.npy + attributes.csv."""
    all_params = _common.load_params(params)
    values = _common.pick(_common.section(all_params, "data"), KEYS, "data")
    config = _common.build(PreprocessConfig, {**values, "seed": all_params["seed"]}, "data")
    _common.setup()
    prepare(raw, out, config)
