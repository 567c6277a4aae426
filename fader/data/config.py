"""params.yaml's `data` section: where the raw images come from, and how they are prepared.

Two stages read it, each its own keys: `download` (`SourceConfig`) and `preprocess`
(`PreprocessConfig`). Both classes live here, so that each stage can tell an unknown key from the
other stage's keys without importing the other stage's code.
"""

from __future__ import annotations

from typing import Literal, get_args

from fader.config import AtLeastOne, NonNegativeInt, Positive, config
from fader.data.formats import check_attributes

ImgSize = Literal[32, 64, 128, 256]
IMG_SIZES: tuple[int, ...] = get_args(ImgSize)


@config
class SourceConfig:
    """The download stage's part of params.yaml's `data` section (plus the top-level seed)."""

    source: Literal["synthetic", "celeba", "flowers"]
    synthetic_size: AtLeastOne  # images the synthetic generator draws
    celeba_dir: str | None  # a local CelebA copy; None downloads
    flowers_dir: str | None  # a local Oxford-102 + captions copy; None downloads
    workers: AtLeastOne  # processes that draw the synthetic faces
    seed: NonNegativeInt


@config
class PreprocessConfig:
    """What `prepare()` selects and how it resizes (params.yaml, section `data`)."""

    img_size: ImgSize  # the paper: 256
    attributes: tuple[str, ...]  # CelebA names
    split: Literal["official", "random"]  # list_eval_partition.txt, or seeded fractions
    split_fractions: tuple[Positive, Positive, Positive]  # train, valid, test for `random`
    seed: NonNegativeInt
    skip_bad: bool  # leave unreadable images out (counted) instead of failing
    workers: AtLeastOne

    def __post_init__(self) -> None:
        check_attributes(self.attributes, valid=None)  # the raw folder's names: at preprocess
        if abs(sum(self.split_fractions) - 1) > 1e-6:
            raise ValueError(
                f"split_fractions must sum to 1 (train, valid, test), got "
                f"{list(self.split_fractions)}"
            )
