"""Edit grids as in the paper: interpolation (Figure 1), swaps (Figure 3), multi-swaps (Figure 4).

Every grid has one row per input image. Its first two columns are the original x and its
reconstruction D(E(x), y); the others are edits, D(E(x), y') with y' the true attributes y
except for the edited ones (the paper's protocol: unchanged attributes keep their true values).

Layout, shared by every grid: cells are the model's S x S images; `gutter` white pixels
separate neighbouring cells, with no outer border. A grid of R rows and C columns is therefore
`R*S + (R-1)*gutter` pixels high and `C*S + (C-1)*gutter` wide, and cell (r, c) starts at pixel
row `r*(S+gutter)` and column `c*(S+gutter)` (see `cell()`).

Rows come from a fixed, seeded list of test images (`fixed_indices`), so the grids of two runs
(or of two epochs) show the same faces, as dcgan's fixed noise does (pytorch/examples). The
official code interpolates a single attribute on training images only (interpolate.py).
"""

from __future__ import annotations

import contextlib
import io as _io
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from fader import io
from fader.data import celeba
from fader.data.prepared import to_uint8

GUTTER = 2  # px of white between cells
WHITE = 255


def fixed_indices(n_images: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct positions in a split of `n_images`, the same for the same seed.

    They are a prefix of one seeded permutation, so asking for more rows keeps the earlier
    ones (and their order); `count` larger than the split gives every image.
    """
    if n_images < 1 or count < 1:
        raise ValueError(f"need n_images >= 1 and count >= 1, got {n_images} and {count}")
    return np.random.default_rng(seed).permutation(n_images)[:count]


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float (3, H, W) → (H, W, 3) uint8; also (B, 3, H, W) → (B, H, W, 3), and so on.

    `fader.data.prepared.to_uint8`, channels last, as a NumPy array for Pillow.
    """
    assert x.ndim >= 3 and x.shape[-3] == 3, f"expected (..., 3, H, W), got {tuple(x.shape)}"
    return to_uint8(x.detach().cpu()).movedim(-3, -1).numpy()  # (..., 3, H, W) → (..., H, W, 3)


def tile(cells: np.ndarray, gutter: int = GUTTER) -> np.ndarray:
    """(R, C, S, S, 3) uint8 cells → one (R*S + (R-1)*g, C*S + (C-1)*g, 3) image."""
    assert cells.ndim == 5 and cells.shape[-1] == 3, tuple(cells.shape)
    rows, cols, height, width, _ = cells.shape
    step_y, step_x = height + gutter, width + gutter
    grid = np.full((rows * step_y - gutter, cols * step_x - gutter, 3), WHITE, np.uint8)
    for r in range(rows):
        for c in range(cols):
            grid[r * step_y : r * step_y + height, c * step_x : c * step_x + width] = cells[r, c]
    return grid


def cell(grid: np.ndarray, row: int, col: int, size: int, gutter: int = GUTTER) -> np.ndarray:
    """The (size, size, 3) cell at (row, col) of a grid made by `tile` (inverse of `tile`)."""
    y, x = row * (size + gutter), col * (size + gutter)
    return grid[y : y + size, x : x + size]


def save_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as a lossless PNG, atomically."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    buffer = _io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, format="PNG")
    io.write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm running statistics) and no autograd; the mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _grid(
    autoencoder: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    edits: Sequence[torch.Tensor],
    gutter: int,
) -> np.ndarray:
    """Rows of [x, D(E(x), y), D(E(x), edit_1), ...]; each edit is a (B, n) attribute tensor."""
    assert x.ndim == 4 and y.shape == (x.shape[0], y.shape[1]), (tuple(x.shape), tuple(y.shape))
    with evaluating(autoencoder):
        feats = autoencoder.encode(x)
        columns = [x] + [autoencoder.decode(feats, alpha) for alpha in (y, *edits)]
    cells = to_uint8_image(torch.stack(columns, dim=1))  # (B, C, 3, S, S) → (B, C, S, S, 3)
    return tile(cells, gutter)


def _with(y: torch.Tensor, values: Mapping[int, float]) -> torch.Tensor:
    """y (B, n) with the given attribute columns set to constant values."""
    alpha = y.clone().float()
    for index, value in values.items():
        alpha[:, index] = value
    return alpha


def _check_index(attribute_index: int, y: torch.Tensor) -> None:
    if not 0 <= attribute_index < y.shape[1]:
        raise ValueError(f"attribute_index must be in [0, {y.shape[1]}), got {attribute_index}")


def interpolation_grid(
    autoencoder: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attribute_index: int,
    alphas: Sequence[float],
    gutter: int = GUTTER,
) -> np.ndarray:
    """Figure 1: per row, original, reconstruction, then attribute `attribute_index` set to each α.

    Columns: 0 original, 1 reconstruction, 2 + k the image decoded with α = alphas[k] for the
    attribute and the true values for the others. x (B, 3, S, S) in [-1, 1] on the model's
    device, y (B, n) 0/1. Returns uint8 (B*S + (B-1)*g, (2+K)*S + (1+K)*g, 3).
    """
    _check_index(attribute_index, y)
    edits = [_with(y, {attribute_index: float(a)}) for a in alphas]
    return _grid(autoencoder, x, y, edits, gutter)


def swap_grid(
    autoencoder: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attributes: Sequence[str],
    gutter: int = GUTTER,
) -> np.ndarray:
    """Figure 3: per row, original, reconstruction, then each attribute flipped (1 - y) alone.

    Columns: 0 original, 1 reconstruction, 2 + i attribute i (`attributes[i]`, the model's
    order, one name per column of y) flipped. Returns uint8 (B rows, 2 + n columns).
    """
    if len(attributes) != y.shape[1]:
        raise ValueError(f"got {len(attributes)} attribute names for {y.shape[1]} columns of y")
    edits = []
    for i in range(len(attributes)):
        alpha = y.clone().float()
        alpha[:, i] = 1 - alpha[:, i]
        edits.append(alpha)
    return _grid(autoencoder, x, y, edits, gutter)


def multi_swap_grid(
    autoencoder: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attributes: Sequence[str],
    combos: Sequence[Mapping[str, float]],
    gutter: int = GUTTER,
) -> np.ndarray:
    """Figure 4: per row, original, reconstruction, then several attributes changed at once.

    Column 2 + k decodes with every attribute named in `combos[k]` set to its value (e.g.
    `{"Male": 1, "Smiling": 0}`) and the others at their true values. `attributes` names the
    columns of y. Returns uint8 (B rows, 2 + len(combos) columns).
    """
    if len(attributes) != y.shape[1]:
        raise ValueError(f"got {len(attributes)} attribute names for {y.shape[1]} columns of y")
    edits = []
    for combo in combos:
        if not combo:
            raise ValueError("each multi-swap combination must set at least one attribute")
        celeba.check_attributes(list(combo), valid=list(attributes))
        edits.append(_with(y, {attributes.index(k): float(v) for k, v in combo.items()}))
    return _grid(autoencoder, x, y, edits, gutter)
