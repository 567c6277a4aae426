"""`fader download`: materialise the data source in CelebA's on-disk format."""

from pathlib import Path

import typer

from fader import download, synthetic
from stages import _common


def main(
    out: Path = typer.Option(..., help="Folder to write (CelebA layout)."),
    params: Path = _common.ParamsOption,
) -> None:
    """Generate the synthetic faces, or fetch CelebA or Oxford-102 flowers."""
    all_params = _common.load_params(params)
    data = _common.data_params(all_params, "download")
    _common.setup()
    source = data["source"]
    if source == "synthetic":
        synthetic.generate(out, n_images=data["synthetic_size"], seed=_common.seed(all_params),
                           workers=data["workers"])  # fmt: skip
    elif source == "celeba":
        download.fetch_celeba(out, _optional_path(data["celeba_dir"]))
    elif source == "flowers":
        download.fetch_flowers(out, _optional_path(data["flowers_dir"]))
    else:
        raise ValueError(f"data.source must be synthetic, celeba or flowers, got {source!r}")


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
