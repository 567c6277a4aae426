"""Reconstruction metrics (MSE, PSNR, SSIM) and the FID plumbing, on small known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fader.eval import fid, image_metrics
from fader.image import to_uint8


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(image_metrics.psnr_per_image(a, b).mean())


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(image_metrics.ssim_per_image(a, b).mean())


def _pattern(b: int = 2, size: int = 32) -> torch.Tensor:
    """A deterministic uint8 batch (B, 3, size, size) with texture (no RNG involved)."""
    n, c, i, j = torch.meshgrid(
        torch.arange(b), torch.arange(3), torch.arange(size), torch.arange(size), indexing="ij"
    )
    return ((i * 7 + j * 13 + c * 29 + n * 41 + (i * j) % 17) % 256).to(torch.uint8)


def _noisy(a: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(a.shape, generator=g) * sigma
    return (a.float() + noise).round().clamp(0, 255).to(torch.uint8)


# --- MSE / RMSE -----------------------------------------------------------------------------------


def test_to_uint8_round_trip_and_clamp() -> None:
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    x = u.float() / 127.5 - 1.0  # fader.data.to_float
    assert torch.equal(to_uint8(x), u)
    edges = torch.tensor([-1.5, -1.0, 0.0, 1.0, 1.5])
    assert to_uint8(edges).tolist() == [0, 0, 128, 255, 255]  # 127.5 rounds to even
    with pytest.raises(TypeError, match="expects a float tensor"):
        to_uint8(u)


# --- PSNR -----------------------------------------------------------------------------------------


def test_psnr_identical_is_cap() -> None:
    a = _pattern()
    assert psnr(a, a) == image_metrics.PSNR_CAP
    assert math.isfinite(psnr(a, a))


def test_psnr_one_gray_level() -> None:
    a = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    expected = 10 * math.log10(255**2)  # MSE 1
    assert expected == pytest.approx(48.1308, abs=1e-4)
    assert psnr(a, a + 1) == pytest.approx(expected, abs=1e-9)


def test_psnr_rejects_float() -> None:
    with pytest.raises(TypeError, match="uint8"):
        psnr(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


# --- SSIM -----------------------------------------------------------------------------------------


def test_ssim_identical_is_one() -> None:
    a = _pattern()
    assert ssim(a, a) == 1.0


def test_ssim_constant_images_closed_form() -> None:
    # Flat images: variances and covariance vanish, so SSIM = (2 μx μy + C1) / (μx² + μy² + C1).
    a = torch.full((1, 3, 16, 16), 100, dtype=torch.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 101 + c1) / (100**2 + 101**2 + c1)
    assert ssim(a, a + 1) == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_skimage_reference() -> None:
    # scikit-image 0.26.0 (installed aside, not a dependency): mean over the two images of
    # structural_similarity(x, y, channel_axis=0, gaussian_weights=True, sigma=1.5,
    # use_sample_covariance=False, data_range=255) gave 0.8320903892978231.
    a = _pattern()
    b = _noisy(a, 20.0)
    assert ssim(a, b) == pytest.approx(0.8320903892978231, abs=1e-9)


def test_ssim_decreases_with_noise() -> None:
    a = _pattern(size=48)
    values = [ssim(a, _noisy(a, s)) for s in (2.0, 10.0, 30.0, 80.0)]
    assert all(x > y for x, y in zip(values, values[1:], strict=False))
    assert 0.0 < values[-1] < values[0] < 1.0


def test_ssim_too_small() -> None:
    a = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="11"):
        ssim(a, a)


# --- FID ------------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero() -> None:
    acts = np.random.default_rng(0).normal(size=(500, 8))
    assert fid.fid_from_activations(acts, acts) == pytest.approx(0.0, abs=1e-6)


def test_fid_closed_forms() -> None:
    acts = np.random.default_rng(1).normal(loc=0.5, size=(500, 8))
    mu, sigma = fid.frechet_stats(acts)
    # Shift by 1 in every dimension: same covariance, FID = ||shift||² = 8.
    assert fid.fid_from_activations(acts, acts + 1.0) == pytest.approx(8.0, abs=1e-6)
    # Scale by 2: FID = ||μ||² + Tr(Σ + 4Σ - 2·2Σ) = ||μ||² + Tr(Σ).
    expected = float(mu @ mu + np.trace(sigma))
    assert fid.fid_from_activations(acts, 2 * acts) == pytest.approx(expected, rel=1e-6)


def test_fid_of_different_distributions_is_positive() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16)) * 1.5
    same = fid.fid_from_activations(a, rng.normal(size=(400, 16)))
    assert fid.fid_from_activations(a, b) > same > 0.0


class _TinyNet(nn.Module):
    """A fixed random conv net standing in for Inception; returns [maps] like pytorch-fid."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.seen.append(x)
        return [torch.relu(self.conv(x))]  # (B, 8, h, w): pooled by inception_activations


def test_inception_activations_inputs_and_batching() -> None:
    u = _pattern(b=7, size=16)
    net = _TinyNet()
    from_uint8 = fid.inception_activations(u, net, batch_size=3)
    assert from_uint8.shape == (7, 8)
    assert [len(x) for x in net.seen] == [3, 3, 1]
    seen = torch.cat(net.seen)
    assert seen.dtype == torch.float32 and torch.equal(seen, u.float() / 255)
    # Float images in [-1, 1], given as uneven batches: same features.
    x = u.float() / 127.5 - 1.0
    from_float = fid.inception_activations([x[:2], x[2:7]], net, batch_size=4)
    np.testing.assert_allclose(from_float, from_uint8, rtol=0, atol=1e-6)
    # A sub-gray-level change vanishes in the uint8 rounding (as in a saved PNG) unless
    # quantize=False, which feeds the float values through.
    jitter = (x + 1e-3).clamp(-1, 1)
    quantized = fid.inception_activations(jitter, net, batch_size=7)
    raw = fid.inception_activations(jitter, net, batch_size=7, quantize=False)
    np.testing.assert_allclose(quantized, from_uint8, rtol=0, atol=1e-6)  # batch 7 vs 3+3+1
    assert not np.allclose(raw, from_uint8, rtol=0, atol=1e-7)


def test_inception_activations_empty() -> None:
    with pytest.raises(ValueError, match="no images"):
        fid.inception_activations([], _TinyNet(), batch_size=4)


@pytest.mark.parametrize("n_a, n_b", [(40, 40), (30, 50)])
def test_fid_with_fewer_images_than_dimensions_matches_pytorch_fid(n_a: int, n_b: int) -> None:
    """The low-rank trace (fewer images than features) equals pytorch-fid's sqrtm formula."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(3)
    a = rng.normal(size=(n_a, 64))
    b = rng.normal(loc=0.2, size=(n_b, 64)) * 1.3
    reference = calculate_frechet_distance(*fid.frechet_stats(a), *fid.frechet_stats(b))
    assert fid.fid_from_activations(a, b) == pytest.approx(reference, rel=1e-6)
    assert fid.fid_from_activations(a, a) == pytest.approx(0.0, abs=1e-8)


def _mmd2_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² written out pair by pair (Bińkowski et al., eq. 2)."""
    m, dim = x.shape

    def k(u: np.ndarray, v: np.ndarray) -> float:
        return (float(u @ v) / dim + 1) ** 3

    same = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return same / (m * (m - 1)) - 2 * cross / m**2


def test_kid_is_the_unbiased_mmd_of_its_definition() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 5)), rng.normal(0.5, 1.0, size=(8, 5))
    kid = fid.kid_from_activations(a, b, subsets=1, subset_size=4, seed=3)
    pick = np.random.default_rng(3)
    x, y = a[pick.choice(8, 4, replace=False)], b[pick.choice(8, 4, replace=False)]
    assert kid["subset_size"] == 4 and kid["std"] == 0.0
    assert kid["mean"] == pytest.approx(_mmd2_by_definition(x, y), rel=1e-10)


def test_kid_is_unbiased_where_fid_is_not() -> None:
    """Two samples of one distribution: KID about 0 at any size; FID large when N is small."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(400, 64))
    same = fid.kid_from_activations(features[:200], features[200:])
    shifted = fid.kid_from_activations(features[:200], features[200:] + 0.5)
    assert abs(same["mean"]) < 2 * same["std"]  # zero, within its noise
    assert shifted["mean"] > 10 * shifted["std"] > 0
    assert fid.fid_from_activations(features[:50], features[50:100]) > 10
    with pytest.raises(ValueError, match="N >= 4"):
        fid.kid_from_activations(features[:3], features[3:6])
