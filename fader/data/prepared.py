"""Reading the prepared dataset for training and evaluation.

The images stay on disk in `images.npy` and are memory-mapped: nothing is loaded whole. A batch
is gathered with one fancy-indexing read, converted to float in [-1, 1] (Section 5: images are
normalised to [-1, 1]) and optionally flipped horizontally with probability 0.5 (Section 5.1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from fader.data import formats
from fader.data.formats import IMAGES_FILE, META_FILE, TABLE_FILE
from fader.image import to_float


def draw_flips(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which of `n` images to mirror: each with p = 0.5 (Section 5.1), (n,) bool on the CPU,
    drawn from `generator` (torch's global one when None)."""
    return torch.rand(n, generator=generator) < 0.5


def draw_batch(
    n: int, batch_size: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A random batch of `batch_size` positions among `n` (with replacement across batches, as
    the official sampler) and, when `flip`, which of them to mirror: (B,) int64 and (B,) bool on
    the CPU, drawn from `generator` in that order."""
    indices = torch.randint(n, (batch_size,), generator=generator)
    return indices, draw_flips(batch_size, generator) if flip else None


class BatchSampler:
    """`draw_batch`'s batches, drawn `chunk` batches ahead on the CPU and sent to the device in
    one copy per chunk (pinned, non-blocking on CUDA), so that a step never waits for the host.

    The draws are those of drawing each batch when needed (the same calls in the same order),
    so the run does not depend on the chunk size. `get_state()` is the generator's state after
    the batches served so far (replayed from the chunk's start), so a checkpoint taken mid-chunk
    resumes exactly; `set_state()` drops the chunk. In a distributed run every rank draws whole
    batches and keeps its `share` of each.
    """

    CHUNK = 256  # batches: 128 KiB of indices and flips at the paper's batch of 32

    def __init__(
        self,
        generator: torch.Generator,
        n: int,
        batch_size: int,
        flip: bool,
        share: slice = slice(None),
        chunk: int | None = None,
    ) -> None:
        self.generator, self.n, self.batch_size, self.flip = generator, n, batch_size, flip
        self.share, self.chunk = share, chunk or self.CHUNK
        self._start: torch.Tensor | None = None  # the generator's state at the chunk's start
        self._host: torch.Tensor | None = None  # (chunk, 1 or 2, share) int64: indices, flips
        self._device: torch.Tensor | None = None  # the same, on the device
        # the device asked for: `cuda` is not equal to the `cuda:0` a tensor reports
        self._uploaded_to: torch.device | None = None
        self._served = 0

    def next(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's share of the next batch, on `device`: indices (b,), flips (b,) or None."""
        if self._host is None or self._served == len(self._host):
            self._draw_chunk()
        assert self._host is not None
        if self._device is None or self._uploaded_to != device:
            self._device, self._uploaded_to = self._upload(self._host, device), device
        row = self._device[self._served]
        self._served += 1
        return row[0], row[1] != 0 if self.flip else None

    def get_state(self) -> torch.Tensor:
        """The generator's state after the batches served so far."""
        if self._host is None or self._served == len(self._host):
            return self.generator.get_state()
        replay = torch.Generator().set_state(self._start)
        for _ in range(self._served):
            draw_batch(self.n, self.batch_size, self.flip, replay)
        return replay.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
        self._start = self._host = self._device = None
        self._served = 0

    def _draw_chunk(self) -> None:
        self._start = self.generator.get_state()
        size = len(range(self.batch_size)[self.share])
        host = torch.empty((self.chunk, 2 if self.flip else 1, size), dtype=torch.int64)
        for row in host:
            indices, flips = draw_batch(self.n, self.batch_size, self.flip, self.generator)
            row[0] = indices[self.share]
            if flips is not None:
                row[1] = flips[self.share]
        self._host, self._device, self._served = host, None, 0

    @staticmethod
    def _upload(host: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The chunk on `device`: the one copy per chunk (none on the CPU)."""
        if device.type == "cuda":
            return host.pin_memory().to(device, non_blocking=True)
        return host.to(device)


class PreparedDataset(Dataset):
    """One split of a prepared folder: items are (image (3, H, W) in [-1, 1], attributes (n,)).

    Attributes are float 0/1 in the order of `attributes` (default: all prepared ones).
    `batch()` serves a whole batch of positions with a single read.
    """

    def __init__(
        self,
        prepared_dir: str | Path,
        split: str,
        attributes: Sequence[str] | None = None,
        flip: bool = False,
    ) -> None:
        prepared_dir = Path(prepared_dir)
        if split not in formats.SPLITS:
            raise ValueError(f"split must be one of {formats.SPLITS}, got {split!r}")
        for name in (IMAGES_FILE, TABLE_FILE, META_FILE):
            if not (prepared_dir / name).is_file():
                raise FileNotFoundError(
                    f"{prepared_dir / name} is missing: run `fader preprocess` first"
                )
        meta_bytes = (prepared_dir / META_FILE).read_bytes()
        self.meta = json.loads(meta_bytes)
        #: identifies the prepared data (its table and settings), e.g. to match a checkpoint
        self.digest = hashlib.sha256(
            meta_bytes + (prepared_dir / TABLE_FILE).read_bytes()
        ).hexdigest()
        table = pd.read_csv(prepared_dir / TABLE_FILE)
        self.attributes = formats.check_attributes(
            attributes if attributes is not None else self.meta["attributes"],
            valid=self.meta["attributes"],
        )
        self.images = np.load(prepared_dir / IMAGES_FILE, mmap_mode="r")
        if len(self.images) != len(table):
            raise ValueError(f"{prepared_dir}: {IMAGES_FILE} and {TABLE_FILE} disagree in length")
        rows = np.flatnonzero((table["split"] == split).to_numpy())
        if len(rows) == 0:
            raise ValueError(f"{prepared_dir}: the {split!r} split is empty")
        self.rows = rows
        self.filenames = table["filename"].to_numpy()[rows]
        self.labels = torch.from_numpy(table[self.attributes].to_numpy(np.float32)[rows])
        self.flip = flip
        self.img_size = int(self.images.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batch([index])
        return x[0], y[0]

    def batch(
        self,
        indices: Sequence[int] | np.ndarray,
        generator: torch.Generator | None = None,
        flips: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] and attributes (B, n) for positions in this split.

        A dataset made with `flip` mirrors each image with p = 0.5, drawn from `generator`, or
        the images that `flips` (B,) marks when given.
        """
        indices = np.asarray(indices, dtype=np.int64)  # a CPU tensor converts too
        rows = self.rows[indices]
        order = np.argsort(rows, kind="stable")  # sorted reads are sequential on disk
        pixels = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        pixels[order] = self.images[rows[order]]
        x = to_float(pixels)
        if self.flip:
            if flips is None:
                flips = draw_flips(len(x), generator)
            x[flips] = x[flips].flip(-1)
        return x, self.labels[torch.from_numpy(indices)]

    def on_device(self, device: torch.device, chunk: int = 1024) -> DeviceSplit:
        """This split's images and labels copied to `device` (see `DeviceSplit`)."""
        return DeviceSplit(self, device, chunk)


class DeviceSplit:
    """A split held on a device as uint8, whose batches are gathered, flipped and normalised
    there: `PreparedDataset.batch`'s batches without host work per batch.

    For a GPU that holds the whole split (all of CelebA at 256 px is 40 GB of uint8), where the
    per-batch reads and conversions on the host would bound the step rate. Copied in chunks of
    `chunk` images, so the host never holds more than one chunk beyond the memory map.
    """

    def __init__(self, data: PreparedDataset, device: torch.device, chunk: int = 1024) -> None:
        self.attributes, self.flip, self.img_size = data.attributes, data.flip, data.img_size
        self.device = device
        self.images = torch.empty(
            (len(data), *data.images.shape[1:]), dtype=torch.uint8, device=device
        )
        for start in range(0, len(data), chunk):
            rows = data.rows[start : start + chunk]
            self.images[start : start + len(rows)] = torch.from_numpy(np.asarray(data.images[rows]))
        self.labels = data.labels.to(device)

    def __len__(self) -> int:
        return len(self.images)

    def batch(
        self,
        indices: torch.Tensor,
        generator: torch.Generator | None = None,
        flips: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] and attributes (B, n), on the device: those of
        `PreparedDataset.batch`, with the same flips (drawn from `generator`, or as `flips`
        marks them)."""
        indices = indices.to(self.device)
        x = to_float(self.images[indices])
        if self.flip:
            if flips is None:
                flips = draw_flips(len(x), generator)
            flips = flips.to(self.device)
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        return x, self.labels[indices]
