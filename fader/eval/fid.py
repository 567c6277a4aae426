"""FID and KID: pytorch-fid's InceptionV3 pool3 features, their Fréchet and kernel distances.

The evaluation protocol of later editors (AttGAN, STGAN): FID from pytorch-fid's InceptionV3 pool3
features (see `fader.eval.inception` for the network), with pytorch-fid's
`calculate_frechet_distance` (pytorch_fid/fid_score.py). This module imports pytorch-fid (and
torchvision): import it only where FID is computed.

Images are (B, 3, H, W) tensors: float in [-1, 1], or uint8 in [0, 255].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fader.eval.compat import import_torchvision
from fader.image import to_uint8

import_torchvision()  # pytorch_fid.fid_score imports torchvision itself (see fader.eval.compat)
from pytorch_fid.fid_score import calculate_frechet_distance  # noqa: E402


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
    out = model(batch.contiguous(memory_format=torch.channels_last))  # as build_inception's
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


#: KID's subsets: Bińkowski et al. (and torch-fidelity) average 100 subsets of 1,000 images.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def kid_from_activations(
    a: np.ndarray,
    b: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> dict[str, float]:
    """Kernel Inception Distance (Bińkowski et al., ICLR 2018) of activations (N_a, D), (N_b, D).

    The unbiased estimate of the squared MMD between the two feature distributions with the
    kernel k(x, y) = (xᵀy / D + 1)³, averaged over `subsets` random subsets of m images from
    each set. Unlike FID it has no bias that depends on N, so small samples (a few hundred
    images on a CPU) give comparable numbers: two halves of one real set score about 0, where
    their FID is 60-80. m is `subset_size`, at most half of the smaller set, so that the subsets
    differ and `std`, their spread, is an error bar on one subset's estimate (the mean's is
    smaller). Returns mean, std, subsets and subset_size.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or min(len(a), len(b)) < 4 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need activations (N >= 4, D) of the same D, got {a.shape}, {b.shape}")
    m = min(subset_size, len(a) // 2, len(b) // 2)
    rng = np.random.default_rng(seed)
    estimates = [
        _mmd2_unbiased(
            a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        )
        for _ in range(subsets)
    ]
    return {
        "mean": float(np.mean(estimates)),
        "std": float(np.std(estimates)),
        "subsets": subsets,
        "subset_size": m,
    }


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² U-statistic of two equal-size samples, polynomial kernel of degree 3."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())
