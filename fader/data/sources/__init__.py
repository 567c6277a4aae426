"""Where the raw images come from, behind one interface: `fetch(config, out)`.

Every source writes the same layout, CelebA's on disk (`fader.data.formats`), which the
preprocess stage reads: `img_align_celeba/` (or its zip), `list_attr_celeba.txt` and
`list_eval_partition.txt`. A new dataset is a new module here that writes that layout, and one
more name in `fader.data.config.SourceConfig.source`.
"""

from __future__ import annotations

from pathlib import Path

from fader.data.config import SourceConfig


def fetch(config: SourceConfig, out: Path) -> None:
    """Write `config.source` to `out` in CelebA's layout (atomically: all or nothing)."""
    if config.source == "synthetic":
        from fader.data.sources import synthetic

        synthetic.generate(out, config.synthetic_size, config.seed, config.workers)
    elif config.source == "celeba":
        from fader.data.sources import celeba

        celeba.fetch_celeba(out, _optional_path(config.celeba_dir))
    else:
        from fader.data.sources import flowers

        flowers.fetch_flowers(out, _optional_path(config.flowers_dir))


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
