"""Image-quality and distribution metrics for the evaluate stage.

PAPER.md, "Results to compare against" and "Evaluation protocol used by later editors":
- reconstruction error as MSE / RMSE on float images in [-1, 1] (the paper's scale);
- PSNR and SSIM on uint8 images exactly as they are saved losslessly (`to_uint8`);
- FID from pytorch-fid's InceptionV3 pool3 features (see `fader.inception` for the network),
  with pytorch-fid's `calculate_frechet_distance` (pytorch_fid/fid_score.py).

Images are (B, 3, H, W) tensors throughout: float in [-1, 1], or uint8 in [0, 255].
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fader.compat import import_torchvision

import_torchvision()  # pytorch_fid.fid_score imports torchvision itself (see fader.compat)
from pytorch_fid.fid_score import calculate_frechet_distance  # noqa: E402

log = logging.getLogger(__name__)

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


# --- reconstruction error on the float scale ---------------------------------------------------


def mse(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error over all elements of two float image batches in [-1, 1].

    This is the training loss's scale (images normalised to [-1, 1], PAPER.md Section 5). The
    paper's test reconstruction RMSE of 0.0009 (IcGAN 0.028) is quoted on this scale.
    """
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    return float((x.double() - y.double()).square().mean())


def rmse(x: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error on [-1, 1] images: `sqrt(mse(x, y))` (see `mse` for the scale)."""
    return math.sqrt(mse(x, y))


# --- uint8 images -------------------------------------------------------------------------------


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] → uint8 in [0, 255]: `round((x + 1) * 127.5)`, clamped.

    The inverse of `fader.data.to_float` (x / 127.5 - 1), so uint8 → float → uint8 is exact;
    this is what a lossless PNG of `x` holds. `torch.round` rounds halves to even.
    """
    if not x.is_floating_point():
        raise TypeError(f"to_uint8 expects a float tensor in [-1, 1], got {x.dtype}")
    return ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


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


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of `psnr_per_image` (dB); identical images give `PSNR_CAP`."""
    return float(psnr_per_image(a, b).mean())


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


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of `ssim_per_image`."""
    return float(ssim_per_image(a, b).mean())


# --- FID -----------------------------------------------------------------------------------------


def _to_unit_range(batch: torch.Tensor, quantize: bool) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] → float32 [0, 1], pytorch-fid's input range."""
    if batch.dtype == torch.uint8:
        return batch.float() / 255.0
    if not batch.is_floating_point():
        raise TypeError(f"images must be uint8 or float in [-1, 1], got {batch.dtype}")
    if quantize:  # what pytorch-fid would read back from our saved PNGs
        return to_uint8(batch).float() / 255.0
    return ((batch.float() + 1.0) / 2.0).clamp_(0.0, 1.0)


def _features(model: nn.Module, batch: torch.Tensor) -> np.ndarray:
    out = model(batch)
    if isinstance(out, (list, tuple)):  # pytorch-fid's InceptionV3 returns one map per block
        out = out[0]
    if out.ndim == 4 and out.shape[2:] != (1, 1):  # as pytorch_fid.fid_score.get_activations
        out = F.adaptive_avg_pool2d(out, (1, 1))
    return out.flatten(1).cpu().numpy()


def inception_activations(
    images: Iterable[torch.Tensor],
    model: nn.Module,
    batch_size: int = 50,
    device: torch.device | str = "cpu",
    quantize: bool = True,
) -> np.ndarray:
    """Features (N, D) of `model` (e.g. `fader.inception.build_inception`, D = 2048) for images.

    Args:
        images: images (3, H, W) or batches (B, 3, H, W), uint8 in [0, 255] or float in [-1, 1];
            a single (N, 3, H, W) tensor works too. They are regrouped into `batch_size`.
        model: takes float (B, 3, H, W) in [0, 1] on `device`, as pytorch-fid's InceptionV3
            does, and returns (B, D), (B, D, h, w) or a list whose first item is either
            (spatial maps are average-pooled, as pytorch-fid does). It is put in eval mode.
        batch_size: images per forward pass (pytorch-fid's default is 50).
        device: where the batches go; the model must already be there.
        quantize: round float images to uint8 first (`to_uint8`), so the features equal those
            of the saved PNGs, which is how pytorch-fid sees images on disk.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    feats: list[np.ndarray] = []
    pending: list[torch.Tensor] = []
    n_pending = 0

    def run(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            feats.append(_features(model, _to_unit_range(batch.to(device), quantize)))

    for item in images:
        item = item.unsqueeze(0) if item.ndim == 3 else item  # one image → (1, 3, H, W)
        pending.append(item)
        n_pending += len(item)
        while n_pending >= batch_size:
            stacked = torch.cat(pending)
            run(stacked[:batch_size])
            rest = stacked[batch_size:]
            pending, n_pending = ([rest] if len(rest) else []), len(rest)
    if n_pending:
        run(torch.cat(pending))
    if not feats:
        raise ValueError("no images given")
    return np.concatenate(feats)


def frechet_stats(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of activations (N, D), float64 (pytorch-fid's statistics)."""
    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 2 or len(acts) < 2:
        raise ValueError(f"need activations (N >= 2, D), got shape {acts.shape}")
    return acts.mean(axis=0), np.cov(acts, rowvar=False)


def fid_from_stats(
    stats_a: tuple[np.ndarray, np.ndarray], stats_b: tuple[np.ndarray, np.ndarray]
) -> float:
    """Fréchet distance between two Gaussians (mu, sigma), by pytorch-fid's formula.

    Heusel et al., NIPS 2017: ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½).
    """
    with warnings.catch_warnings():
        # pytorch-fid 0.3.0 passes `disp=False` to scipy.linalg.sqrtm, deprecated in SciPy 1.17
        # (removed in 1.18; requirements/constraints.txt pins 1.17.1).
        warnings.filterwarnings("ignore", "The `disp` argument", DeprecationWarning)
        return float(calculate_frechet_distance(*stats_a, *stats_b))


def fid_from_activations(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two sets of activations (N_a, D) and (N_b, D).

    With as many images as feature dimensions or more, this is pytorch-fid's computation
    (`fid_from_stats`). With fewer (the usual case on a CPU: a few hundred images, D = 2048)
    both covariances are singular and the D x D matrix square root is both slow (~10 s) and
    ill-conditioned, so the trace term is computed exactly from the centred activations instead:
    with S_a = AᵀA / (N_a - 1) and S_b = BᵀB / (N_b - 1), the non-zero eigenvalues of S_a S_b
    are the squared singular values of A Bᵀ / √((N_a - 1)(N_b - 1)), hence
    Tr (S_a S_b)^½ = Σ σ_i(A Bᵀ) / √((N_a - 1)(N_b - 1)).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or min(len(a), len(b)) < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need activations (N >= 2, D) of the same D, got {a.shape}, {b.shape}")
    if min(len(a), len(b)) >= a.shape[1]:
        return fid_from_stats(frechet_stats(a), frechet_stats(b))
    centred_a, centred_b = a - a.mean(axis=0), b - b.mean(axis=0)
    scale_a, scale_b = len(a) - 1, len(b) - 1
    trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
    return float(
        np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2)
        + np.sum(centred_a**2) / scale_a
        + np.sum(centred_b**2) / scale_b
        - 2 * trace_sqrt / math.sqrt(scale_a * scale_b)
    )
