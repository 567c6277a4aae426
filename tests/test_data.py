from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from fader.data.prepared import PreparedDataset
from fader.data.preprocess import PreprocessConfig, prepare
from tests.conftest import make


@pytest.fixture
def prepared(raw_celeba: Path, tmp_path: Path) -> Path:
    config = make(PreprocessConfig, img_size=32, attributes=("Smiling", "Male", "Young"), workers=1)
    prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
    return tmp_path / "prepared"


def test_items_are_float_images_in_range(prepared: Path) -> None:
    data = PreparedDataset(prepared, "train")
    x, y = data[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (3,) and set(y.tolist()) <= {0.0, 1.0}
    assert len(data) == 7 and len(PreparedDataset(prepared, "test")) == 3


def test_attribute_subset_and_order(prepared: Path) -> None:
    full = PreparedDataset(prepared, "valid")
    sub = PreparedDataset(prepared, "valid", attributes=["Young", "Smiling"])
    assert torch.equal(sub.labels, full.labels[:, [2, 0]])
    with pytest.raises(ValueError, match="'Eyeglasses'"):
        PreparedDataset(prepared, "valid", attributes=["Eyeglasses"])


def test_batches_match_single_items_and_loader(prepared: Path) -> None:
    data = PreparedDataset(prepared, "train")
    x, y = data.batch([4, 0, 2])
    assert torch.equal(x[1], data[0][0]) and torch.equal(y[0], data[4][1])
    loaded_x, loaded_y = next(iter(DataLoader(data, batch_size=3)))
    assert torch.equal(loaded_x, data.batch([0, 1, 2])[0])


def test_flip_mirrors_about_half(prepared: Path) -> None:
    plain = PreparedDataset(prepared, "train")
    flip = PreparedDataset(prepared, "train", flip=True)
    x, _ = plain.batch(list(range(7)) * 20)
    xf, _ = flip.batch(list(range(7)) * 20, generator=torch.Generator().manual_seed(0))
    mirrored = [torch.equal(a.flip(-1), b) and not torch.equal(a, b) for a, b in zip(x, xf)]
    same = [torch.equal(a, b) for a, b in zip(x, xf)]
    assert all(m or s for m, s in zip(mirrored, same))


def test_missing_folder_says_run_preprocess(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fader preprocess"):
        PreparedDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be"):
        PreparedDataset(tmp_path, "training")
