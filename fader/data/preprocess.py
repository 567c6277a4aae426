"""Crop, resize and pack a CelebA-format dataset into one memory-mappable uint8 array.

Section 5 of the paper: crop the aligned 178x218 images to the centred 178x178 square (the
official code keeps rows 20..198), resize to 256x256 (here `img_size`), normalise to [-1, 1]
(done at load time, see `fader.data.prepared`). Unlike the official code, which holds the whole
resized dataset in RAM (~40 GB at 256 px), workers decode images independently and write their rows
straight into the output file with `pwrite`, so peak memory does not grow with the dataset.

Output folder (written atomically):
- `images.npy`: uint8 array (N, img_size, img_size, 3), RGB, readable with `np.load(mmap_mode="r")`;
- `attributes.csv`: one row per image in the same order: `filename, split, <attr>...` with 0/1;
- `meta.json`: the settings, the counts per split and the skipped files.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from fader import io, parallel
from fader.data import formats
from fader.data.config import PreprocessConfig
from fader.data.formats import IMAGES_FILE, META_FILE, TABLE_FILE
from fader.image import DECODE_ERRORS, decode_square

log = logging.getLogger(__name__)

_CHUNK = 64  # images per worker task: large enough to amortise IPC, small enough for a smooth bar


class BadImagesError(RuntimeError):
    """Some images could not be decoded; the message names them."""


class ImageSource:
    """The images of a raw CelebA-format folder: `img_align_celeba/` or `img_align_celeba.zip`."""

    def __init__(self, raw_dir: Path) -> None:
        self.folder = raw_dir / formats.IMAGE_DIR
        self.zip_path = raw_dir / f"{formats.IMAGE_DIR}.zip"
        if not self.folder.is_dir() and not self.zip_path.is_file():
            raise FileNotFoundError(
                f"no images in {raw_dir}: expected a folder {self.folder} or a zip {self.zip_path}"
            )
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}

    def names(self) -> set[str]:
        """File names (e.g. `000001.jpg`) of the images that are present."""
        if self.folder.is_dir():
            return {entry.name for entry in os.scandir(self.folder) if entry.is_file()}
        return set(self._zip_members())

    def read(self, name: str) -> bytes:
        """The encoded bytes of one image."""
        if self.folder.is_dir():
            return (self.folder / name).read_bytes()
        if self._zip is None:  # opened lazily: each worker process needs its own handle
            self._zip = zipfile.ZipFile(self.zip_path)
        return self._zip.read(self._zip_members()[name])

    def _zip_members(self) -> dict[str, str]:
        if not self._members:
            with zipfile.ZipFile(self.zip_path) as archive:
                self._members = {Path(m).name: m for m in archive.namelist() if not m.endswith("/")}
        return self._members


def select_images(raw_dir: Path, config: PreprocessConfig) -> pd.DataFrame:
    """The images to prepare, in file order: a table `filename, split, <attr>...` (0/1).

    Only images present in the raw folder are kept (a partial copy such as celeba-mini is
    fine). The split comes from `list_eval_partition.txt` (`official`) or from a seeded
    permutation with `split_fractions` (`random`).
    """
    table = formats.read_attributes(raw_dir / formats.ATTR_FILE)
    attributes = formats.check_attributes(config.attributes, valid=list(table.columns))
    present = ImageSource(raw_dir).names()
    missing = int((~table.index.isin(present)).sum())
    table = table[table.index.isin(present)]
    if table.empty:
        raise FileNotFoundError(
            f"none of the {missing} images listed in {raw_dir / formats.ATTR_FILE} are present "
            f"in {raw_dir}"
        )
    if missing:
        log.info(
            "%d listed images are absent from %s; using the %d present",
            missing,
            raw_dir,
            len(table),
        )
    selected = pd.DataFrame(index=table.index)
    selected["split"] = _split(table.index, raw_dir, config)
    _check_splits(selected["split"].to_numpy(), config, "")
    for name in attributes:
        selected[name] = (table[name] > 0).astype(np.uint8)
    return selected.reset_index()


def _split(filenames: pd.Index, raw_dir: Path, config: PreprocessConfig) -> np.ndarray:
    if config.split == "random":
        rng = np.random.default_rng(config.seed)
        bounds = np.cumsum(config.split_fractions)[:2] * len(filenames)
        part = np.searchsorted(bounds, np.arange(len(filenames)), side="right")
        split = np.asarray(formats.SPLITS)[part]
        return split[rng.permutation(len(filenames))]
    partition = formats.read_partition(raw_dir / formats.PARTITION_FILE)
    unlisted = filenames.difference(partition.index)
    if len(unlisted):
        raise ValueError(
            f"{len(unlisted)} images (e.g. {unlisted[0]}) are not in "
            f"{raw_dir / formats.PARTITION_FILE}"
        )
    split = partition.loc[filenames].to_numpy()
    return split


def _check_splits(split: np.ndarray, config: PreprocessConfig, when: str) -> None:
    """Every part of the split must hold an image: training, model selection and the test
    need one each."""
    counts = {name: int((split == name).sum()) for name in formats.SPLITS}
    empty = [name for name, count in counts.items() if count == 0]
    if not empty:
        return
    if config.split == "official":
        hint = (
            "a partial copy such as celeba-mini lies entirely in the official train split: set "
            "data.split to 'random'"
        )
    else:
        fractions = list(config.split_fractions)
        hint = f"raise its data.split_fractions (now {fractions}) or use more images"
    raise ValueError(
        f"the {config.split} split leaves {', '.join(empty)} empty for these {len(split)} "
        f"images{when} (counts {counts}); {hint}"
    )


def prepare(raw_dir: Path, out_dir: Path, config: PreprocessConfig, progress: bool = True) -> dict:
    """Write the prepared dataset (see module docstring) to `out_dir`, atomically.

    Returns the metadata also written to `meta.json`. Raises `BadImagesError` naming the
    unreadable images unless `config.skip_bad`, in which case they are left out and counted.
    """
    selected = select_images(raw_dir, config)
    shape = (len(selected), config.img_size, config.img_size, 3)
    with io.atomic_dir(out_dir) as tmp:
        images_path = tmp / IMAGES_FILE
        np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=shape).flush()
        bad = _decode_all(raw_dir, images_path, list(selected["filename"]), config, progress)
        if bad and not config.skip_bad:
            shown = "\n".join(f"  {name}: {error}" for name, error in bad[:20])
            more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
            raise BadImagesError(
                f"{len(bad)} unreadable image(s) in {raw_dir} (set data.skip_bad to true to "
                f"leave them out):\n{shown}{more}"
            )
        if bad:
            log.warning(
                "skipped %d unreadable image(s): %s",
                len(bad),
                ", ".join(name for name, _ in bad[:20]),
            )
            keep = ~selected["filename"].isin({name for name, _ in bad}).to_numpy()
            _compact(images_path, keep)
            selected = selected[keep].reset_index(drop=True)
            _check_splits(
                selected["split"].to_numpy(), config, " once the unreadable images are left out"
            )
        selected.to_csv(tmp / TABLE_FILE, index=False)
        meta = {
            "img_size": config.img_size,
            "attributes": list(config.attributes),
            "split": config.split,
            "counts": {s: int((selected["split"] == s).sum()) for s in formats.SPLITS},
            "skipped": [name for name, _ in bad],
        }
        io.write_json(tmp / META_FILE, meta)
    log.info("prepared %d images at %d px: %s", len(selected), config.img_size, meta["counts"])
    return meta


def _decode_all(
    raw_dir: Path, images_path: Path, names: list[str], config: PreprocessConfig, progress: bool
) -> list[tuple[str, str]]:
    """Decode every image into its row of `images_path`; return the (name, error) failures."""
    offset = np.load(images_path, mmap_mode="r").offset
    tasks = [
        (raw_dir, images_path, offset, start, names[start : start + _CHUNK], config.img_size)
        for start in range(0, len(names), _CHUNK)
    ]
    chunks = parallel.imap_with_progress(
        _decode_chunk, tasks, config.workers, len(names), "preprocess", progress
    )
    return [failure for chunk in chunks for failure in chunk]


_SOURCES: dict[Path, ImageSource] = {}  # per worker process: one open zip per raw folder


def _decode_chunk(
    task: tuple[Path, Path, int, int, list[str], int],
) -> tuple[list[tuple[str, str]], int]:
    raw_dir, images_path, offset, start, names, img_size = task
    source = _SOURCES.setdefault(raw_dir, ImageSource(raw_dir))
    row_bytes = img_size * img_size * 3
    bad = []
    fd = os.open(images_path, os.O_WRONLY)
    try:
        for i, name in enumerate(names):
            try:
                pixels = decode_square(source.read(name), img_size, source=name)
            except DECODE_ERRORS as error:
                bad.append((name, f"{type(error).__name__}: {error}"))
                continue
            os.pwrite(fd, pixels.tobytes(), offset + (start + i) * row_bytes)
    finally:
        os.close(fd)
    return bad, len(names)


def _compact(images_path: Path, keep: np.ndarray) -> None:
    """Rewrite `images_path` with only the rows in `keep`, streaming in chunks."""
    old = np.load(images_path, mmap_mode="r")
    compact_path = images_path.with_suffix(".compact.npy")
    new = np.lib.format.open_memmap(
        compact_path, mode="w+", dtype=np.uint8, shape=(int(keep.sum()), *old.shape[1:])
    )
    rows = np.flatnonzero(keep)
    for start in range(0, len(rows), 1024):
        chunk = rows[start : start + 1024]
        new[start : start + len(chunk)] = old[chunk]
    new.flush()
    del old, new
    os.replace(compact_path, images_path)
