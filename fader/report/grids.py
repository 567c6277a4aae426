"""Edit grids as in the paper: interpolation (Figure 1), swaps (Figure 3), multi-swaps (Figure 4).

Every grid has one row per input image. Its first two columns are the original x and its
reconstruction D(E(x), y); the others are edits, D(E(x), y') with y' the true attributes y
except for the edited ones (the paper's protocol: unchanged attributes keep their true values).

Layout, shared by every grid: cells are the model's S x S images; `gutter` white pixels
separate neighbouring cells, with no outer border. A grid of R rows and C columns is therefore
`R*S + (R-1)*gutter` pixels high and `C*S + (C-1)*gutter` wide, and cell (r, c) starts at pixel
row `r*(S+gutter)` and column `c*(S+gutter)` (`fader.image.tile`).

Rows come from a fixed, seeded list of test images (`fixed_indices`), so the grids of two runs
(or of two epochs) show the same faces, as dcgan's fixed noise does (pytorch/examples). The
official code interpolates a single attribute on training images only (interpolate.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fader.data import formats
from fader.image import GUTTER, tile, to_uint8_image


def fixed_indices(n_images: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct positions in a split of `n_images`, the same for the same seed.

    They are a prefix of one seeded permutation, so asking for more rows keeps the earlier
    ones (and their order); `count` larger than the split gives every image.
    """
    if n_images < 1 or count < 1:
        raise ValueError(f"need n_images >= 1 and count >= 1, got {n_images} and {count}")
    return np.random.default_rng(seed).permutation(n_images)[:count]


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


def _set_attributes(y: torch.Tensor, values: Mapping[int, float]) -> torch.Tensor:
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
    edits = [_set_attributes(y, {attribute_index: float(a)}) for a in alphas]
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
        formats.check_attributes(list(combo), valid=list(attributes))
        edits.append(_set_attributes(y, {attributes.index(k): float(v) for k, v in combo.items()}))
    return _grid(autoencoder, x, y, edits, gutter)
