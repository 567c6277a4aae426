"""Judging attribute swaps with the attribute classifier (Section 4; later editors' protocol).

A swap flips one attribute of an image, `y_i -> 1 - y_i`, decodes E(x) with the new code and
asks the classifier trained on real images whether it sees the new value. Training's model
selection (`fader.train.trainer.validate`, through `swap_accuracy`) and the evaluate stage both
judge swaps with `judge_swap`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def flip_attribute(y: torch.Tensor, index: int, alpha: float = 1.0) -> torch.Tensor:
    """y with attribute `index` swapped: 0 -> alpha, 1 -> 1 - alpha (alpha 1: the plain flip).

    With alpha > 1 the swap is pushed past the other value (e.g. 2: 0 -> 2, 1 -> -1), the
    "2x intensity" of the editing protocol.
    """
    swapped = y.clone()
    swapped[:, index] = torch.where(y[:, index] > 0.5, 1.0 - alpha, alpha)
    return swapped


def judge_swap(
    autoencoder: nn.Module,
    classifier: nn.Module,
    features: torch.Tensor | Sequence[torch.Tensor],
    y: torch.Tensor,
    index: int,
    alpha: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip attribute `index` of every image, decode and ask the classifier: the one judge.

    Args:
        features: `autoencoder.encode(x)` of the images, with labels y (B, n).

    Returns:
        verdicts (B, n) bool: what the classifier sees on the swapped images (logit > 0);
        hits (B,) bool: whether it sees the flipped attribute's new value, i.e. present where
        the image lacked it (y <= 0.5, as `flip_attribute` reads y) and absent where it had it.
    """
    verdicts = classifier(autoencoder.decode(features, flip_attribute(y, index, alpha))) > 0
    return verdicts, verdicts[:, index] == (y[:, index] <= 0.5)


@torch.no_grad()
def swap_accuracy(
    autoencoder: nn.Module,
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attributes: Sequence[str],
    alpha: float = 1.0,
) -> dict[str, float]:
    """Per attribute: the share of images whose flipped attribute the classifier recognises."""
    features = autoencoder.encode(x)
    return {
        name: judge_swap(autoencoder, classifier, features, y, i, alpha)[1].float().mean().item()
        for i, name in enumerate(attributes)
    }
