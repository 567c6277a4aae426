"""Judging attribute swaps with the attribute classifier (Section 4; later editors' protocol).

A swap flips one attribute of an image, `y_i -> 1 - y_i`, decodes E(x) with the new code and
asks the classifier trained on real images whether it sees the new value. Training's model
selection (`fader.train.trainer.validate`) and the evaluate stage both judge swaps this way.
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
    accuracy = {}
    for i, name in enumerate(attributes):
        x_swap = autoencoder.decode(features, flip_attribute(y, i, alpha))
        predicted = classifier(x_swap)[:, i] > 0
        accuracy[name] = (predicted == (y[:, i] < 0.5)).float().mean().item()
    return accuracy
