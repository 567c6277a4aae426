from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fader.data import formats
from fader.data.config import PreprocessConfig
from fader.data.prepared import BatchSampler, PreparedDataset, draw_batch
from fader.data.preprocess import prepare
from tests.conftest import make, make_raw_celeba


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    """The 12-image fixture with every image replaced by its own random noise.

    The banded images of `make_raw_celeba` are all alike and left-right symmetric, so they hide
    a batch served in the wrong order or a flip that does nothing; these are all different and
    none equals its mirror image.
    """
    raw = make_raw_celeba(tmp_path / "raw")
    rng = np.random.default_rng(0)
    for path in sorted((raw / formats.IMAGE_DIR).glob("*.jpg")):
        pixels = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=95)
    config = make(PreprocessConfig, img_size=32, attributes=("Smiling", "Male", "Young"), workers=1)
    prepare(raw, tmp_path / "prepared", config, progress=False)
    return tmp_path / "prepared"


def train_pixels(prepared: Path) -> torch.Tensor:
    """The train split's rows of images.npy as float (N, 3, H, W) in [-1, 1], in file order."""
    images = np.load(prepared / "images.npy")
    train = np.array(PreparedDataset(prepared, "train").rows)
    return torch.from_numpy(images[train]).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_items_are_float_images_in_range(prepared: Path) -> None:
    data = PreparedDataset(prepared, "train")
    x, y = data[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(x, train_pixels(prepared)[0])  # the first train row, pixel / 127.5 - 1
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
    pixels = train_pixels(prepared)
    assert len({tuple(image.flatten().tolist()) for image in pixels}) == 7  # all different
    x, y = data.batch([4, 0, 2])  # unsorted: read sorted, served in the order asked
    assert torch.equal(x, pixels[[4, 0, 2]])
    assert torch.equal(x[1], data[0][0]) and torch.equal(y[0], data[4][1])
    loaded_x, loaded_y = next(iter(DataLoader(data, batch_size=3)))
    assert torch.equal(loaded_x, data.batch([0, 1, 2])[0])
    assert torch.equal(loaded_y, data.labels[:3])


def test_flip_mirrors_about_half(prepared: Path) -> None:
    n = 7 * 20
    positions = list(range(7)) * 20
    x, _ = PreparedDataset(prepared, "train").batch(positions)
    assert not any(torch.equal(a, a.flip(-1)) for a in x)  # a flip is visible on every image

    def draw(flip: bool, seed: int) -> torch.Tensor:
        data = PreparedDataset(prepared, "train", flip=flip)
        return data.batch(positions, generator=torch.Generator().manual_seed(seed))[0]

    flipped = draw(True, 0)
    mirrored = [torch.equal(b, a.flip(-1)) for a, b in zip(x, flipped)]
    same = [torch.equal(b, a) for a, b in zip(x, flipped)]
    assert all(m != s for m, s in zip(mirrored, same))  # each image as it is, or exactly mirrored
    count = sum(mirrored)
    # Binomial(140, 0.5): mean 70, sd 5.9; 4 sd either side
    assert 0 < count < n and abs(count - n / 2) <= 4 * (n * 0.25) ** 0.5, count
    assert torch.equal(draw(True, 0), flipped)  # the generator decides which
    assert not torch.equal(draw(True, 1), flipped)
    assert torch.equal(draw(False, 0), x)  # flip=False mirrors none


def test_a_split_on_the_device_flips_as_the_memory_map_does(prepared: Path) -> None:
    """`DeviceSplit.batch` is `PreparedDataset.batch`: without `flips` both draw them from the
    generator (the device split used to skip flipping), with `flips` both mirror those."""
    mapped = PreparedDataset(prepared, "train", flip=True)
    on_device = mapped.on_device(torch.device("cpu"), chunk=3)
    positions = [4, 0, 2, 2, 6, 1, 3, 5]
    for seed in range(3):
        expected = mapped.batch(positions, generator=torch.Generator().manual_seed(seed))
        got = on_device.batch(torch.tensor(positions), torch.Generator().manual_seed(seed))
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    flips = torch.tensor([True, False] * 4)
    x, _ = on_device.batch(torch.tensor(positions), flips=flips)
    assert torch.equal(x, mapped.batch(positions, flips=flips)[0])
    assert not torch.equal(x, on_device.batch(torch.tensor(positions), flips=~flips)[0])


@pytest.mark.parametrize("flip", [True, False])
def test_batches_drawn_ahead_are_those_drawn_one_by_one(flip: bool) -> None:
    """A BatchSampler's draws are `draw_batch`'s in the same order, whatever its chunk size;
    its state mid-chunk is the generator's after the batches served, and restores exactly."""
    plain = torch.Generator().manual_seed(3)
    expected, states = [], []
    for _ in range(12):
        indices, flips = draw_batch(10, 8, flip, plain)
        expected.append((indices[2:6], None if flips is None else flips[2:6]))
        states.append(plain.get_state())
    cpu = torch.device("cpu")
    for chunk in (1, 5, 12, 64):
        sampler = BatchSampler(torch.Generator().manual_seed(3), 10, 8, flip, slice(2, 6), chunk)
        for k, (indices, flips) in enumerate(expected):
            got_indices, got_flips = sampler.next(cpu)
            assert torch.equal(got_indices, indices)
            assert (got_flips is None) == (flips is None)
            assert flips is None or torch.equal(got_flips, flips)
            assert torch.equal(sampler.get_state(), states[k]), (chunk, k)
        resumed = BatchSampler(torch.Generator(), 10, 8, flip, slice(2, 6), chunk)
        resumed.set_state(states[6])  # mid-chunk for 5
        assert all(torch.equal(resumed.next(cpu)[0], indices) for indices, _ in expected[7:])


def test_a_sampler_sends_each_chunk_to_the_device_in_one_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The indices and flips of `chunk` batches travel together (pinned, non-blocking, on
    CUDA): one copy per chunk, none per batch."""
    uploads = []
    upload = BatchSampler._upload
    monkeypatch.setattr(
        BatchSampler, "_upload", staticmethod(lambda h, d: uploads.append(h.shape) or upload(h, d))
    )
    sampler = BatchSampler(torch.Generator().manual_seed(0), 10, 8, True, chunk=5)
    for _ in range(12):
        sampler.next(torch.device("cpu"))
    assert uploads == [(5, 2, 8)] * 3  # batches 1-5, 6-10, 11-15
    BatchSampler(torch.Generator(), 10, 8, False, slice(0, 4), 7).next(torch.device("cpu"))
    assert uploads[-1] == (7, 1, 4)  # no flips: indices only, this rank's share


def test_missing_folder_says_run_preprocess(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fader preprocess"):
        PreparedDataset(tmp_path, "train")
    with pytest.raises(ValueError, match="split must be"):
        PreparedDataset(tmp_path, "training")
