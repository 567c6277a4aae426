"""Reconstruction quality of uint8 images: PSNR and SSIM.

The evaluation protocol of later editors (AttGAN, STGAN): PSNR and SSIM on uint8 images exactly
as they are saved losslessly (`fader.image.to_uint8`). The reconstruction MSE / RMSE on float
images in [-1, 1] (the paper's scale) is computed where the images are (`fader.eval.evaluate`).

Images are (B, 3, H, W) tensors, uint8 in [0, 255].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: PSNR reported for identical images (infinite in theory), so that metrics JSON stays valid.
#: Every per-image value is clamped to it. At 256x256 the smallest non-zero error (one channel of
#: one pixel off by one gray level) gives 101.1 dB, so only (near-)identical images reach it.
PSNR_CAP = 100.0

#: SSIM constants of Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error
#: visibility to structural similarity", IEEE TIP 2004 (Section III-C): 11x11 circular-symmetric
#: Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255 for 8-bit images.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0


def _check_uint8_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dtype != torch.uint8 or b.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {a.dtype} and {b.dtype}; see to_uint8()")
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"expected two (B, C, H, W) batches, same shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each uint8 image pair (B,), data range 255, capped at `PSNR_CAP`.

    `10 log10(255² / MSE)`, with the MSE over all channels and pixels of one image, as
    skimage.metrics.peak_signal_noise_ratio computes it.
    """
    _check_uint8_pair(a, b)
    err = (a.double() - b.double()).square().mean(dim=(1, 2, 3))
    # MSE 0 gives +inf here, and the clamp turns it into the cap.
    return (10.0 * torch.log10(DATA_RANGE**2 / err)).clamp(max=PSNR_CAP)


def _gaussian_kernel(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian (size,), float64; the 2-D window is its outer product."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_chunk(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM (B,) of float64 batches (B, C, H, W) with values in [0, 255]."""
    b, c, h, w = x.shape
    g = _gaussian_kernel(SSIM_WINDOW, SSIM_SIGMA, x.device)
    # The five local moments in one pass: (5, B, C, H, W) → (5BC, 1, H, W), blurred with the
    # separable window (rows, then columns), 'valid' positions only.
    maps = torch.stack([x, y, x * x, y * y, x * y]).reshape(-1, 1, h, w)
    maps = F.conv2d(maps, g.view(1, 1, 1, SSIM_WINDOW))
    maps = F.conv2d(maps, g.view(1, 1, SSIM_WINDOW, 1))
    mu_x, mu_y, xx, yy, xy = maps.reshape(5, b, c, h - SSIM_WINDOW + 1, w - SSIM_WINDOW + 1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )  # Wang et al. 2004, eq. 13
    return ssim_map.mean(dim=(1, 2, 3))


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """SSIM of each uint8 image pair (B,): Wang et al. 2004, per channel, then averaged.

    Local statistics use the 11x11 Gaussian window (σ = 1.5) at 'valid' positions only, as
    the authors' ssim_index.m does (and skimage's `structural_similarity` with
    `gaussian_weights=True, use_sample_covariance=False, data_range=255`, which crops the same
    borders); the SSIM map is averaged over positions and channels. Identical images give 1.
    Computed in float64 (the variances subtract nearly equal numbers), `chunk` images at a time
    to bound memory (about 15 float64 copies of a chunk).
    """
    _check_uint8_pair(a, b)
    if min(a.shape[2:]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW} px, got {tuple(a.shape[2:])}")
    pairs = zip(a.split(chunk), b.split(chunk), strict=True)
    return torch.cat([_ssim_chunk(x.double(), y.double()) for x, y in pairs])
