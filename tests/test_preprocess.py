import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fader.data import formats, preprocess
from fader.data.config import PreprocessConfig
from fader.data.preprocess import BadImagesError, prepare
from fader.image import decode_square
from tests.conftest import make, make_raw_celeba


def assert_only_green(images: np.ndarray) -> None:
    """The red and blue margins were cropped away (Lanczos may blur the outermost pixel row)."""
    inner = images[:, 1:-1].astype(int)
    assert inner[..., 1].min() > 230 and inner[..., [0, 2]].max() < 25


def config(**overrides) -> PreprocessConfig:
    values = dict(img_size=32, attributes=("Smiling", "Male"), workers=1)
    return make(PreprocessConfig, **{**values, **overrides})


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_writes_cropped_array_and_table(
    raw_celeba: Path, tmp_path: Path, workers: int
) -> None:
    meta = prepare(raw_celeba, tmp_path / "out", config(workers=workers), progress=False)
    images = np.load(tmp_path / "out" / "images.npy", mmap_mode="r")
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
    # the red and blue margins were cropped away: only the green square remains
    assert_only_green(images)
    table = pd.read_csv(tmp_path / "out" / "attributes.csv")
    assert list(table.columns) == ["filename", "split", "Smiling", "Male"]
    raw = formats.read_attributes(raw_celeba / formats.ATTR_FILE)
    assert (table["Male"].to_numpy() == (raw["Male"].to_numpy() > 0)).all()
    assert meta["counts"] == {"train": 7, "valid": 2, "test": 3}
    assert json.loads((tmp_path / "out" / "meta.json").read_text()) == meta


def test_workers_do_not_change_the_output(
    raw_celeba: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The banded fixture images are all alike and 12 fit in one task: here every image is its
    # own noise and the work is split in tasks of 5, 5 and 2, so a row written to the wrong
    # place shows.
    rng = np.random.default_rng(0)
    for path in sorted((raw_celeba / formats.IMAGE_DIR).glob("*.jpg")):
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(path)
    monkeypatch.setattr(preprocess, "_CHUNK", 5)
    prepare(raw_celeba, tmp_path / "a", config(workers=1), progress=False)
    prepare(raw_celeba, tmp_path / "b", config(workers=2), progress=False)
    for name in ("images.npy", "attributes.csv", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    images = np.load(tmp_path / "a" / "images.npy")
    filenames = pd.read_csv(tmp_path / "a" / "attributes.csv")["filename"]
    assert len(filenames) == 12
    for row, name in enumerate(filenames):  # each row holds its own file
        expected = decode_square((raw_celeba / formats.IMAGE_DIR / name).read_bytes(), 32)
        assert np.array_equal(images[row], expected), (row, name)


def test_other_sizes_keep_the_proportions(tmp_path: Path) -> None:
    raw = make_raw_celeba(tmp_path / "half", n=10, size=(89, 109))
    prepare(raw, tmp_path / "out", config(split="random"), progress=False)
    images = np.load(tmp_path / "out" / "images.npy")
    assert_only_green(images)


def test_random_split_is_seeded(raw_celeba: Path, tmp_path: Path) -> None:
    a = prepare(raw_celeba, tmp_path / "a", config(split="random", seed=1), progress=False)
    prepare(raw_celeba, tmp_path / "b", config(split="random", seed=1), progress=False)
    prepare(raw_celeba, tmp_path / "c", config(split="random", seed=2), progress=False)
    split = {k: pd.read_csv(tmp_path / k / "attributes.csv")["split"].tolist() for k in "abc"}
    assert split["a"] == split["b"] != split["c"]
    assert sum(a["counts"].values()) == 12


def test_official_split_must_not_be_empty(raw_celeba: Path, tmp_path: Path) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 13)]
    formats.write_partition(raw_celeba / formats.PARTITION_FILE, pd.Series(["train"] * 12, names))
    with pytest.raises(ValueError, match="valid, test empty.*'random'"):
        prepare(raw_celeba, tmp_path / "out", config(), progress=False)
    assert not (tmp_path / "out").exists()


def test_partial_copy_uses_present_images(raw_celeba: Path, tmp_path: Path) -> None:
    (raw_celeba / formats.IMAGE_DIR / "000012.jpg").unlink()
    meta = prepare(raw_celeba, tmp_path / "out", config(), progress=False)
    assert sum(meta["counts"].values()) == 11


def test_unknown_attribute_lists_valid_ones(raw_celeba: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'Smile'.*Smiling"):
        prepare(raw_celeba, tmp_path / "out", config(attributes=("Smile",)), progress=False)


def test_corrupt_image_is_named_and_nothing_is_written(raw_celeba: Path, tmp_path: Path) -> None:
    (raw_celeba / formats.IMAGE_DIR / "000003.jpg").write_bytes(b"not a jpeg")
    jpeg = (raw_celeba / formats.IMAGE_DIR / "000005.jpg").read_bytes()
    (raw_celeba / formats.IMAGE_DIR / "000005.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(BadImagesError, match=r"2 unreadable(.|\n)*000003.jpg(.|\n)*000005.jpg"):
        prepare(raw_celeba, tmp_path / "out", config(workers=2), progress=False)
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []


def test_failure_keeps_the_previous_output(raw_celeba: Path, tmp_path: Path) -> None:
    prepare(raw_celeba, tmp_path / "out", config(), progress=False)
    before = (tmp_path / "out" / "images.npy").read_bytes()
    (raw_celeba / formats.IMAGE_DIR / "000003.jpg").write_bytes(b"broken")
    with pytest.raises(BadImagesError):
        prepare(raw_celeba, tmp_path / "out", config(), progress=False)
    assert (tmp_path / "out" / "images.npy").read_bytes() == before


def test_skip_bad_leaves_out_and_counts(raw_celeba: Path, tmp_path: Path) -> None:
    (raw_celeba / formats.IMAGE_DIR / "000003.jpg").write_bytes(b"not a jpeg")
    meta = prepare(raw_celeba, tmp_path / "out", config(skip_bad=True), progress=False)
    assert meta["skipped"] == ["000003.jpg"]
    table = pd.read_csv(tmp_path / "out" / "attributes.csv")
    images = np.load(tmp_path / "out" / "images.npy")
    assert len(table) == len(images) == 11 and "000003.jpg" not in set(table["filename"])
    assert_only_green(images)  # every kept row was written


def test_a_split_emptied_by_skip_bad_fails_naming_it(raw_celeba: Path, tmp_path: Path) -> None:
    for name in ("000010.jpg", "000011.jpg", "000012.jpg"):  # the whole test split
        (raw_celeba / formats.IMAGE_DIR / name).write_bytes(b"not a jpeg")
    with pytest.raises(
        ValueError, match="leaves test empty .* once the unreadable images are left"
    ):
        prepare(raw_celeba, tmp_path / "out", config(skip_bad=True), progress=False)
    assert not (tmp_path / "out").exists()


def test_tiny_split_fractions_fail_naming_the_split(raw_celeba: Path, tmp_path: Path) -> None:
    tiny = config(split="random", split_fractions=(0.95, 0.04, 0.01))
    with pytest.raises(
        ValueError, match=r"random split leaves valid, test empty .*split_fractions"
    ):
        prepare(raw_celeba, tmp_path / "out", tiny, progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_inputs_say_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
        prepare(tmp_path, tmp_path / "out", config(), progress=False)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"img_size": 100}, "img_size"),
        ({"split": "halves"}, r"split\s+Input should be 'official' or 'random'"),
        ({"split_fractions": (0.5, 0.5, 0.5)}, "sum"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_config(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**overrides)


@pytest.mark.celeba
def test_celeba_mini_random_split(shared_celeba: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / formats.IMAGE_DIR).symlink_to(shared_celeba / "img_align_celeba_89x109")
    for name in (formats.ATTR_FILE, formats.PARTITION_FILE):
        (raw / name).symlink_to(shared_celeba / name)
    with pytest.raises(ValueError, match="'random'"):
        prepare(raw, tmp_path / "out", config(), progress=False)
    meta = prepare(raw, tmp_path / "out", config(split="random", workers=2), progress=False)
    assert meta["counts"] == {"train": 4000, "valid": 500, "test": 500}


def test_an_oversized_image_is_a_bad_image_named_before_decoding(
    raw_celeba: Path, tmp_path: Path
) -> None:
    Image.new("RGB", (9000, 8000)).save(raw_celeba / formats.IMAGE_DIR / "000004.jpg", "PNG")
    with pytest.raises(
        BadImagesError, match=r"000004.jpg: PhotoError: 000004.jpg is 9000x8000 = 72 megapixels"
    ):
        prepare(raw_celeba, tmp_path / "out", config(), progress=False)
    meta = prepare(raw_celeba, tmp_path / "out", config(skip_bad=True), progress=False)
    assert meta["skipped"] == ["000004.jpg"]
