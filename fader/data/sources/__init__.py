"""Where the raw images come from, behind one interface: `fetch(config, out)`.

Every source writes the same layout, CelebA's on disk (`fader.data.celeba`), which the
preprocess stage reads: `img_align_celeba/` (or its zip), `list_attr_celeba.txt` and
`list_eval_partition.txt`. A new dataset is a new module here that writes that layout, and one
more name in `SourceConfig.source`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fader.config import AtLeastOne, NonNegativeInt, config


@config
class SourceConfig:
    """The download stage's part of params.yaml's `data` section (plus the top-level seed)."""

    source: Literal["synthetic", "celeba", "flowers"]
    synthetic_size: AtLeastOne  # images the synthetic generator draws
    celeba_dir: str | None  # a local CelebA copy; None downloads
    flowers_dir: str | None  # a local Oxford-102 + captions copy; None downloads
    workers: AtLeastOne  # processes that draw the synthetic faces
    seed: NonNegativeInt


def fetch(config: SourceConfig, out: Path) -> None:
    """Write `config.source` to `out` in CelebA's layout (atomically: all or nothing)."""
    if config.source == "synthetic":
        from fader.data.sources import synthetic

        synthetic.generate(out, config.synthetic_size, config.seed, config.workers)
    elif config.source == "celeba":
        from fader.data.sources import download

        download.fetch_celeba(out, _optional_path(config.celeba_dir))
    else:
        from fader.data.sources import download

        download.fetch_flowers(out, _optional_path(config.flowers_dir))


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
