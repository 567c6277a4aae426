"""Shared fixtures: small CelebA-format folders built by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fader import celeba

# Test tensors are tiny: one thread avoids OpenMP's barrier costs, which grow badly when the
# two cores are shared with another process.
torch.set_num_threads(1)

SHARED_CELEBA = Path(__file__).resolve().parents[2] / "shared" / "celeba-mini"


def make_raw_celeba(
    root: Path, n: int = 12, size: tuple[int, int] = (178, 218), seed: int = 0
) -> Path:
    """A tiny CelebA-format folder: banded JPEGs (red top, green middle, blue bottom margin).

    The bands sit exactly where the official crop cuts (rows 20..198 at 178x218), so a prepared
    image that is pure green proves the crop. Splits: the first 60% train, then valid, test.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    _, top, _, bottom = celeba.crop_box(width, height)
    (root / celeba.IMAGE_DIR).mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[:top] = (255, 0, 0)
        pixels[top:bottom] = (0, 255, 0)
        pixels[bottom:] = (0, 0, 255)
        Image.fromarray(pixels).save(root / celeba.IMAGE_DIR / name, quality=95)
    values = rng.choice(np.array([-1, 1], np.int8), size=(n, len(celeba.CELEBA_ATTRIBUTES)))
    celeba.write_attributes(
        root / celeba.ATTR_FILE,
        pd.DataFrame(values, index=names, columns=list(celeba.CELEBA_ATTRIBUTES)),
    )
    split = np.array(["train"] * int(0.6 * n) + ["valid"] * int(0.2 * n))
    split = np.concatenate([split, ["test"] * (n - len(split))])
    celeba.write_partition(root / celeba.PARTITION_FILE, pd.Series(split, index=names))
    return root


@pytest.fixture
def raw_celeba(tmp_path: Path) -> Path:
    return make_raw_celeba(tmp_path / "raw")


@pytest.fixture
def shared_celeba() -> Path:
    if not SHARED_CELEBA.is_dir():
        pytest.skip(f"{SHARED_CELEBA} is absent")
    return SHARED_CELEBA
