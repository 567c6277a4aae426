"""The evaluate stage: reconstruction, swaps and naturalness (FID) on the test split.

The paper's results (reconstruction error, swaps) and the evaluation protocol of later editors
(AttGAN, STGAN: flip accuracy, PSNR and SSIM, FID). FID needs pytorch-fid, imported only when
FID is asked for (`fader.eval.fid`), so that importing this module for the rest does not pull it
in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fader.config import AtLeastOne, NonNegativeInt, config
from fader.data.prepared import PreparedDataset
from fader.eval import image_metrics, swaps
from fader.image import to_uint8

#: Images (B, 3, H, W) in [-1, 1] and their attributes (B, n).
Batch = tuple[torch.Tensor, torch.Tensor]
#: What an image becomes for a FID set: x, y → an image of x's shape.
Edit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@config
class EvaluateConfig:
    """Settings of `evaluate()` (params.yaml, section `evaluate`)."""

    n_images: NonNegativeInt  # test images for reconstruction and accuracy; 0 = the whole split
    fid_images: NonNegativeInt  # test images in each FID set (real, reconstructions, swaps)
    alphas: tuple[float, ...]  # the swap-accuracy curve; must hold 1 and `intensity`
    intensity: float  # the "2x intensity" swap of the editing protocol
    batch_size: AtLeastOne
    device: str  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        if self.fid_images == 1 or self.fid_images % 2:
            raise ValueError(
                f"fid_images must be 0 (no FID) or an even number >= 2 (the real-vs-real floor "
                f"compares two halves), got {self.fid_images}"
            )
        if not self.alphas:
            raise ValueError("alphas must list at least one value")
        # The scores at α = 1 and at `intensity` are read off the curve: check now, not after
        # the whole test split has been judged.
        missing = [a for a in dict.fromkeys((1.0, self.intensity)) if a not in self.alphas]
        if missing:
            raise ValueError(
                f"alphas {list(self.alphas)} must hold 1 (the plain swap) and intensity "
                f"{self.intensity:g}; missing: {', '.join(f'{a:g}' for a in missing)}"
            )


@torch.no_grad()
def evaluate(
    autoencoder: nn.Module,
    classifier: nn.Module,
    test: PreparedDataset,
    config: EvaluateConfig,
    inception: nn.Module | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Every number of the evaluate stage, with the settings that produced it.

    - reconstruction: MSE and RMSE in [-1, 1] units (the scale of the paper's 0.0009 RMSE),
      PSNR and SSIM on uint8 images;
    - swaps (one attribute flipped at a time, on every image): classifier accuracy at α = 1 and
      at `intensity`, accuracy over `alphas` (the "swap_curve"), and the preservation error
      (share of the other attributes whose prediction changed);
    - the official code's "set every value" accuracy (each attribute set to 0 and to 1 on every
      image, images that already had the value included), labelled as such;
    - FID (pytorch-fid InceptionV3 pool3) of reconstructions and swaps against the real images,
      and of two halves of the real images (the floor), when `inception` is given; and KID on
      the same features (`kid`: mean and spread over subsets), unbiased at small samples.

    `progress` shows a bar (with an ETA) for each phase: judging the images, then Inception
    features of every FID set.
    """
    autoencoder.eval().to(device)
    classifier.eval().to(device)
    names = list(test.attributes)
    count = len(test) if config.n_images == 0 else min(config.n_images, len(test))
    totals: dict[str, torch.Tensor] = {}
    bar = tqdm(
        desc="evaluate: reconstructions and swaps", total=count, unit="img", disable=not progress
    )
    with bar:
        for x, y in _batches(test, count, config.batch_size, device):
            for key, value in _judge_batch(autoencoder, classifier, x, y, config.alphas).items():
                totals[key] = totals.get(key, 0) + value
            bar.update(len(x))
    means = {key: value / count for key, value in totals.items()}
    curve = means["swap_hits"]  # (alphas, attributes)
    per_attribute = {
        name: {
            "real_accuracy": means["real_hits"][i].item(),
            "reconstruction_accuracy": means["reconstruction_hits"][i].item(),
            "swap_accuracy": curve[config.alphas.index(1.0), i].item(),
            f"swap_accuracy_x{config.intensity:g}": curve[
                config.alphas.index(config.intensity), i
            ].item(),
            "preservation_error": means["preservation_error"][i].item(),
            "official_set_accuracy": means["set_hits"][i].item(),
        }
        for i, name in enumerate(names)
    }
    mse = means["mse"].item()
    result: dict[str, Any] = {
        "settings": {
            "images": count,
            "alphas": list(config.alphas),
            "intensity": config.intensity,
            "fid_images": config.fid_images,
        },
        "reconstruction": {
            "mse": mse,
            "rmse": mse**0.5,
            "psnr": means["psnr"].item(),
            "ssim": means["ssim"].item(),
            "note": "MSE/RMSE on images in [-1, 1]; PSNR/SSIM on uint8; "
            f"PSNR capped at {image_metrics.PSNR_CAP:g} dB",
        },
        "attributes": per_attribute,
        "mean": {
            key: float(np.mean([scores[key] for scores in per_attribute.values()]))
            for key in per_attribute[names[0]]
        },
        "swap_curve": [
            {"alpha": alpha, **dict(zip(names, row.tolist()))}
            for alpha, row in zip(config.alphas, curve)
        ],
    }
    if inception is not None and config.fid_images:
        result |= _fid(autoencoder, inception, test, names, config, device, progress)
    return result


def _batches(
    data: PreparedDataset, count: int, batch_size: int, device: torch.device | str
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first `count` images of `data` in order, batch by batch, on `device`."""
    for start in range(0, count, batch_size):
        x, y = data.batch(np.arange(start, min(start + batch_size, count)))
        yield x.to(device), y.to(device)


def _judge_batch(
    autoencoder: nn.Module,
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    alphas: Sequence[float],
) -> dict[str, torch.Tensor]:
    """Sums over one batch of every per-image score `evaluate` averages, on the batch's device.

    mse / psnr / ssim: reconstruction scores; real_hits, reconstruction_hits (n,): classifier
    right on the real images and on their reconstructions; swap_hits (len(alphas), n): flipped
    attribute recognised; preservation_error (n,): share of the other attributes whose verdict
    moved with the α = 1 flip; set_hits (n,): the official protocol, half for each target value.
    """
    n_attr = y.shape[1]
    truth = y > 0.5
    features = autoencoder.encode(x)
    x_hat = autoencoder.decode(features, y)
    recon_uint8, real_uint8 = to_uint8(x_hat), to_uint8(x)
    recon_verdict = classifier(x_hat) > 0
    sums = {
        "mse": ((x_hat - x) ** 2).flatten(1).mean(1).sum(),
        "psnr": image_metrics.psnr_per_image(recon_uint8, real_uint8).sum(),
        "ssim": image_metrics.ssim_per_image(recon_uint8, real_uint8).sum(),
        "real_hits": ((classifier(x) > 0) == truth).float().sum(0),
        "reconstruction_hits": (recon_verdict == truth).float().sum(0),
        # on the batch's device: CUDA values cannot be added into CPU tensors
        "swap_hits": torch.zeros(len(alphas), n_attr, device=x.device),
        "preservation_error": torch.zeros(n_attr, device=x.device),
        "set_hits": torch.zeros(n_attr, device=x.device),
    }
    for i in range(n_attr):
        others = [j for j in range(n_attr) if j != i]
        for k, alpha in enumerate(alphas):
            verdict, hits = swaps.judge_swap(autoencoder, classifier, features, y, i, alpha)
            sums["swap_hits"][k, i] = hits.float().sum()
            if alpha == 1.0 and others:
                moved = verdict[:, others] != recon_verdict[:, others]
                sums["preservation_error"][i] = moved.float().mean(1).sum()
        for value in (0.0, 1.0):
            target = y.clone()
            target[:, i] = value
            verdict = classifier(autoencoder.decode(features, target))[:, i] > 0
            sums["set_hits"][i] += (verdict == bool(value)).float().sum() / 2
    return sums


def _fid(
    autoencoder: nn.Module,
    inception: nn.Module,
    test: PreparedDataset,
    names: list[str],
    config: EvaluateConfig,
    device: torch.device | str,
    progress: bool = True,
) -> dict[str, Any]:
    """FID of real halves (the floor), reconstructions and each attribute's swaps vs real."""
    from fader.eval import fid as fid_metrics  # pytorch-fid, only when FID is asked for

    count = min(config.fid_images, len(test))
    count -= count % 2
    bar = tqdm(  # every set: real, reconstructions, then each attribute's swaps
        desc="evaluate: FID features",
        total=count * (2 + len(names)),
        unit="img",
        disable=not progress,
    )

    def activations(edit: Edit) -> np.ndarray:
        images = (
            edit(x, y).cpu() for x, y in counted(_batches(test, count, config.batch_size, device))
        )
        return fid_metrics.inception_activations(images, inception, config.batch_size, device)

    def counted(batches: Iterator[Batch]) -> Iterator[Batch]:
        for x, y in batches:
            yield x, y
            bar.update(len(x))  # once the next batch is asked for: Inception has taken these

    def recode(y_new: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
        return lambda x, y: autoencoder.decode(autoencoder.encode(x), y_new(y))

    with bar:
        real = activations(lambda x, y: x)
        generated = {"reconstruction": activations(recode(lambda y: y))}
        for i, name in enumerate(names):
            flip = recode(lambda y, i=i: swaps.flip_attribute(y, i))
            generated[f"swap/{name}"] = activations(flip)
    halves = real[: count // 2], real[count // 2 :]
    fid: dict[str, Any] = {
        "images": count,
        "real_vs_real_images": count // 2,
        "real_vs_real": fid_metrics.fid_from_activations(*halves),
        **{key: fid_metrics.fid_from_activations(acts, real) for key, acts in generated.items()},
    }
    kid: dict[str, Any] = {
        "real_vs_real": fid_metrics.kid_from_activations(*halves),
        **{key: fid_metrics.kid_from_activations(acts, real) for key, acts in generated.items()},
    }
    return {"fid": fid, "kid": kid}


def ablation_table(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """The ablation report's table: rows Real / AE / Swap, per attribute FID, KID and accuracy."""
    fid, kid = result.get("fid", {}), result.get("kid", {})

    def cell(key: str, accuracy: float) -> dict[str, float | None]:
        return {"fid": fid.get(key), "kid": kid.get(key, {}).get("mean"), "accuracy": accuracy}

    table: dict[str, dict[str, dict[str, float | None]]] = {"Real": {}, "AE": {}, "Swap": {}}
    for name, scores in result["attributes"].items():
        table["Real"][name] = cell("real_vs_real", scores["real_accuracy"])
        table["AE"][name] = cell("reconstruction", scores["reconstruction_accuracy"])
        table["Swap"][name] = cell(f"swap/{name}", scores["swap_accuracy"])
    return table
