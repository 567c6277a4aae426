"""`fader download`: materialise the data source in CelebA's on-disk format."""

from pathlib import Path

import typer

from stages import _common


def main(
    out: Path = typer.Option(..., help="Folder to write (CelebA layout)."),
    params: Path = _common.ParamsOption,
) -> None:
    """Generate the synthetic faces, or fetch CelebA or Oxford-102 flowers."""
    from fader.data.config import PreprocessConfig, SourceConfig
    from fader.data.sources import fetch

    all_params = _common.Params(params)
    config = all_params.build(SourceConfig, "data", {"seed": all_params.seed}, [PreprocessConfig])
    _common.setup()
    fetch(config, out)
