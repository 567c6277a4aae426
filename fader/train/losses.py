"""The objectives of Section 3, the λ_E schedule of Section 5.1 and an optional rate decay.

    discriminator:  L_dis = -log P_dis(y | E(x))                        (summed over attributes)
    autoencoder:    L_ae  = ||D(E(x), y) - x||² - λ_E · log P_dis(1 - y | E(x))

λ_E rises linearly from 0 to `lambda_max` over `lambda_schedule` autoencoder steps, then stays
("critical" in Section 5.1). The learning rate is the paper's constant unless `lr_decay` > 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fader.model.networks import LatentDiscriminator


def lambda_e(step: int, lambda_max: float, schedule: int) -> float:
    """λ_E(t) = λ_max · min(t, schedule) / schedule, t in autoencoder steps (Section 5.1)."""
    if schedule == 0:
        return lambda_max
    return lambda_max * min(step, schedule) / schedule


def learning_rate(step: int, base: float, total_steps: int, decay: float) -> float:
    """The rate of step `step` (from 0): `base`, then over the last `decay` fraction of
    `total_steps` a linear fall to 0 (not in the paper, whose rate is constant: decay 0)."""
    decay_steps = decay * total_steps
    if decay_steps == 0:
        return base
    return base * min(1.0, max(0.0, (total_steps - step) / decay_steps))


#: `train_fader.recon_loss`: ||D(E(x), y) - x||² per pixel (the paper), or the ablation report's
#: MAE or Huber (smooth L1, δ = 1).
RECONSTRUCTION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "huber": F.smooth_l1_loss,
}


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The reconstruction loss `kind` (one of RECONSTRUCTION_LOSSES), averaged over pixels."""
    if kind not in RECONSTRUCTION_LOSSES:
        raise ValueError(
            f"recon_loss must be one of {', '.join(RECONSTRUCTION_LOSSES)}, got {kind!r}"
        )
    return RECONSTRUCTION_LOSSES[kind](x_hat, x)


def attribute_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log P(target | ·) summed over attributes, averaged over the batch.

    logits (B, 2n) hold one pair of class logits per binary attribute; target (B, n) is 0/1.
    """
    pairs = LatentDiscriminator.per_attribute(logits)  # (B, n, 2)
    per_attribute = F.cross_entropy(pairs.transpose(1, 2), target.long(), reduction="none")
    return per_attribute.sum(1).mean()
