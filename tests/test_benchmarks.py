"""benchmarks/run.py: its naive baseline does the same work as `fader preprocess`."""

from pathlib import Path

import numpy as np

from benchmarks.run import naive_load
from fader.data import celeba
from fader.data.config import PreprocessConfig
from fader.data.preprocess import prepare
from fader.data.sources import synthetic
from tests.conftest import make


def test_naive_baseline_matches_prepare(tmp_path: Path) -> None:
    synthetic.generate(tmp_path / "raw", n_images=10, seed=0, workers=1, progress=False)
    config = make(PreprocessConfig, img_size=64, attributes=("Smiling",), workers=1)
    prepare(tmp_path / "raw", tmp_path / "prepared", config, progress=False)
    ours = np.load(tmp_path / "prepared" / "images.npy")
    naive = naive_load(sorted((tmp_path / "raw" / celeba.IMAGE_DIR).glob("*.jpg")), 64)
    assert naive.shape == ours.shape == (10, 64, 64, 3)
    assert naive.dtype == ours.dtype == np.uint8
    # the same crop and resize; ours decodes at half the JPEG scale first (Image.draft), so
    # pixels differ a little (a mean of ~1 level out of 255 here)
    difference = np.abs(naive.astype(int) - ours.astype(int))
    assert difference.mean() < 3, difference.mean()
