from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fader.image import to_uint8_image
from fader.model.networks import AutoEncoder, ModelConfig
from fader.report import grids
from tests.conftest import cell, make

S, G = 8, 2  # cell side and gutter of the stub grids
NAMES = ["A", "B", "C"]


class Stub(nn.Module):
    """encode(x) = [x]; decode paints every pixel of channel j with α_j (uint8 round(255 α_j))."""

    def __init__(self) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(img_size=S)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]

    def decode(self, feats: list[torch.Tensor], alpha: torch.Tensor) -> torch.Tensor:
        assert not self.training and not torch.is_grad_enabled()
        return (alpha * 2 - 1)[:, :, None, None].expand(-1, 3, S, S).clone()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    x = torch.stack([torch.full((3, S, S), -1.0), torch.full((3, S, S), 1.0)])  # black, white
    return x, y


def colour(alpha: list[float]) -> np.ndarray:
    return np.round(np.asarray(alpha) * 255).astype(np.uint8)


def assert_cell(grid: np.ndarray, row: int, col: int, rgb: np.ndarray) -> None:
    got = cell(grid, row, col, S, G)
    assert got.shape == (S, S, 3)
    assert (got == rgb).all(), (row, col, got[0, 0], rgb)


def assert_white_gutters(grid: np.ndarray, rows: int, cols: int) -> None:
    for r in range(1, rows):
        assert (grid[r * (S + G) - G : r * (S + G)] == 255).all()
    for c in range(1, cols):
        assert (grid[:, c * (S + G) - G : c * (S + G)] == 255).all()


def test_interpolation_grid_layout_and_cell_order() -> None:
    x, y = batch()
    alphas = [0.0, 0.5, 1.0, 2.0]  # 2.0 extrapolates; the stub's pixels clip at 255
    stub = Stub().train()
    grid = grids.interpolation_grid(stub, x, y, 1, alphas, gutter=G)
    rows, cols = 2, 2 + len(alphas)
    assert grid.dtype == np.uint8
    assert grid.shape == (rows * S + (rows - 1) * G, cols * S + (cols - 1) * G, 3)
    assert stub.training  # the mode is restored
    for r in range(rows):
        assert_cell(grid, r, 0, np.full(3, 255 * r))  # original: black then white
        assert_cell(grid, r, 1, colour(y[r].tolist()))  # reconstruction: true attributes
        for k, a in enumerate(alphas):
            expected = y[r].tolist()
            expected[1] = min(a, 1.0)
            assert_cell(grid, r, 2 + k, colour(expected))
    assert_white_gutters(grid, rows, cols)


def test_swap_grid_flips_one_attribute_per_column() -> None:
    x, y = batch()
    grid = grids.swap_grid(Stub(), x, y, NAMES, gutter=G)
    assert grid.shape == (2 * S + G, 5 * S + 4 * G, 3)
    for r in range(2):
        assert_cell(grid, r, 1, colour(y[r].tolist()))
        for i in range(3):
            expected = y[r].tolist()
            expected[i] = 1 - expected[i]
            assert_cell(grid, r, 2 + i, colour(expected))
    assert_white_gutters(grid, 2, 5)


def test_multi_swap_grid_sets_several_attributes_per_column() -> None:
    x, y = batch()
    combos = [{"A": 1, "C": 1}, {"B": 0.2}]
    grid = grids.multi_swap_grid(Stub(), x, y, NAMES, combos, gutter=G)
    assert grid.shape == (2 * S + G, 4 * S + 3 * G, 3)
    for r in range(2):
        assert_cell(grid, r, 2, colour([1, y[r, 1].item(), 1]))
        assert_cell(grid, r, 3, colour([y[r, 0].item(), 0.2, y[r, 2].item()]))


def test_bad_grid_requests_name_the_problem() -> None:
    x, y = batch()
    with pytest.raises(ValueError, match=r"unknown attribute\(s\) 'Smile'.*A, B, C"):
        grids.multi_swap_grid(Stub(), x, y, NAMES, [{"Smile": 1}])
    with pytest.raises(ValueError, match="at least one attribute"):
        grids.multi_swap_grid(Stub(), x, y, NAMES, [{}])
    with pytest.raises(ValueError, match="attribute_index"):
        grids.interpolation_grid(Stub(), x, y, 3, [0.0])
    with pytest.raises(ValueError, match="2 attribute names for 3 columns"):
        grids.swap_grid(Stub(), x, y, NAMES[:2])


def test_grids_of_a_real_model() -> None:
    torch.manual_seed(0)
    model = AutoEncoder(make(ModelConfig, img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16))
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    grid = grids.interpolation_grid(model, x, y, 0, [0.0, 1.0])
    assert grid.shape == (3 * 32 + 2 * 2, 4 * 32 + 3 * 2, 3)
    assert (cell(grid, 1, 0, 32) == to_uint8_image(x[1])).all()
    assert not (cell(grid, 0, 2, 32) == cell(grid, 0, 3, 32)).all()  # α matters
    assert model.training


def test_fixed_indices_are_seeded_distinct_and_prefix_stable() -> None:
    a = grids.fixed_indices(100, 8, seed=3)
    assert a.tolist() == grids.fixed_indices(100, 8, seed=3).tolist()
    assert len(set(a.tolist())) == 8 and a.max() < 100
    assert grids.fixed_indices(100, 12, seed=3)[:8].tolist() == a.tolist()
    assert grids.fixed_indices(100, 8, seed=4).tolist() != a.tolist()
    assert sorted(grids.fixed_indices(5, 8, seed=0).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="need n_images >= 1"):
        grids.fixed_indices(0, 8, seed=0)
