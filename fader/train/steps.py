"""One optimisation step each: the latent discriminator, the autoencoder, the optional PatchGAN.

The official src/training.py (`lat_dis_step`, `autoencoder_step`): the discriminator learns to
predict the attributes y from the latent E(x); the autoencoder learns to reconstruct x from
(E(x), y) while making that prediction fail (losses in `fader.train.losses`). Adam with β1 = 0.5
and gradient-norm clipping on each network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fader.model.networks import AutoEncoder, LatentDiscriminator, ModelConfig, PatchDiscriminator
from fader.train.config import TrainConfig
from fader.train.losses import attribute_cross_entropy, reconstruction_loss


@dataclass
class FaderNetworks:
    """The networks of one Fader model and their optimizers."""

    autoencoder: AutoEncoder
    discriminator: LatentDiscriminator
    ae_optimizer: torch.optim.Adam
    dis_optimizer: torch.optim.Adam
    patch: PatchDiscriminator | None = None
    patch_optimizer: torch.optim.Adam | None = None

    @classmethod
    def build(cls, model: ModelConfig, config: TrainConfig, device: torch.device) -> FaderNetworks:
        def adam(net: nn.Module) -> torch.optim.Adam:
            # fused: one kernel over all tensors; ~1.7x faster steps at 64 px on the CPU, where
            # the per-tensor loop of the default implementation rivals the convolutions.
            return torch.optim.Adam(
                net.parameters(), lr=config.learning_rate, betas=(config.beta1, 0.999), fused=True
            )

        autoencoder = AutoEncoder(model).to(device)
        discriminator = LatentDiscriminator(model).to(device)
        patch = PatchDiscriminator(model).to(device) if config.patch_weight > 0 else None
        return cls(
            autoencoder,
            discriminator,
            adam(autoencoder),
            adam(discriminator),
            patch,
            adam(patch) if patch is not None else None,
        )

    def modules(self) -> dict[str, Any]:
        """Every stateful part, by name (for checkpoints)."""
        parts = {
            "autoencoder": self.autoencoder,
            "discriminator": self.discriminator,
            "ae_optimizer": self.ae_optimizer,
            "dis_optimizer": self.dis_optimizer,
            "patch": self.patch,
            "patch_optimizer": self.patch_optimizer,
        }
        return {name: part for name, part in parts.items() if part is not None}


# ---------------------------------------------------------------------------------------------
# One optimisation step each
# ---------------------------------------------------------------------------------------------


def discriminator_step(
    nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, clip: float
) -> dict[str, float]:
    """Train the latent discriminator to predict y from E(x): L_dis = -log P_dis(y | E(x))."""
    # encode, with the autoencoder in eval mode and the latent detached (official code)
    nets.autoencoder.eval()
    nets.discriminator.train()
    with torch.no_grad():
        z = nets.autoencoder.encode(x)[-1]
    # loss
    logits = nets.discriminator(z)
    loss = attribute_cross_entropy(logits, y)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"latent discriminator loss became {loss.item()}")
    # optimize
    nets.dis_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(nets.discriminator.parameters(), clip)
    nets.dis_optimizer.step()
    accuracy = (LatentDiscriminator.per_attribute(logits).argmax(-1) == y.long()).float().mean()
    return {"dis_loss": loss.item(), "dis_accuracy": accuracy.item()}


def patch_step(
    nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, clip: float
) -> dict[str, float]:
    """Train the optional PatchGAN to tell real images from reconstructions (ablation)."""
    assert nets.patch is not None and nets.patch_optimizer is not None
    nets.autoencoder.eval()
    nets.patch.train()
    with torch.no_grad():
        x_hat = nets.autoencoder(x, y)
    real, fake = nets.patch(x), nets.patch(x_hat)
    loss = F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    nets.patch_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(nets.patch.parameters(), clip)
    nets.patch_optimizer.step()
    return {"patch_loss": loss.item()}


def autoencoder_step(
    nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, lambda_e: float, config: TrainConfig
) -> dict[str, float]:
    """Train E and D: reconstruction + λ_E · -log P_dis(1 - y | E(x)) (Section 3.3)."""
    nets.autoencoder.train()
    nets.discriminator.eval()
    # encode / decode
    features = nets.autoencoder.encode(x)
    x_hat = nets.autoencoder.decode(features, y)
    # loss: reconstruct, and make the discriminator predict the flipped attributes
    recon = reconstruction_loss(x_hat, x, config.recon_loss)
    adversarial = attribute_cross_entropy(nets.discriminator(features[-1]), 1 - y)
    loss = recon + lambda_e * adversarial
    metrics = {"recon_loss": recon.item(), "adv_loss": adversarial.item()}
    if nets.patch is not None:
        nets.patch.eval()
        fake = nets.patch(x_hat)
        patch_loss = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
        loss = loss + config.patch_weight * patch_loss
        metrics["patch_adv_loss"] = patch_loss.item()
    if not torch.isfinite(loss):
        raise FloatingPointError(f"autoencoder loss became {loss.item()}; lower learning_rate")
    # optimize
    nets.ae_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(nets.autoencoder.parameters(), config.clip_grad_norm)
    nets.ae_optimizer.step()
    return metrics
