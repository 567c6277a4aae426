"""One optimisation step each: the latent discriminator, the autoencoder, the optional PatchGAN.

The official src/training.py (`lat_dis_step`, `autoencoder_step`): the discriminator learns to
predict the attributes y from the latent E(x); the autoencoder learns to reconstruct x from
(E(x), y) while making that prediction fail (losses in `fader.train.losses`). Adam with β1 = 0.5
and gradient-norm clipping on each network.

Each step returns its metrics as 0-dim tensors on the device, so that a step never waits for the
device: the trainer reads them (one host sync) only every `log_every` steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fader.model.networks import (
    AttributeClassifier,
    AutoEncoder,
    ClassifierConfig,
    LatentDiscriminator,
    ModelConfig,
    PatchDiscriminator,
)
from fader.train.config import TrainConfig
from fader.train.distributed import SINGLE, Group
from fader.train.losses import attribute_cross_entropy, reconstruction_loss
from fader.train.precision import Precision

#: A step's metrics: 0-dim tensors, on the device, detached.
StepMetrics = dict[str, torch.Tensor]


class Reconstruction(nn.Module):
    """The autoencoder step's forward pass in one call, x, y → (encoder maps, x̂): the module
    that DistributedDataParallel wraps, since it syncs gradients of what its forward ran."""

    def __init__(self, autoencoder: AutoEncoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = self.autoencoder.encode(x)
        return features, self.autoencoder.decode(features, y)


@dataclass
class FaderNetworks:
    """The networks of one Fader model, their optimizers, and how they compute.

    `reconstruct` and `classify_latent` are what the steps train through: the autoencoder's
    forward pass and the latent discriminator, under DistributedDataParallel when the group is
    distributed. The bare networks (for checkpoints, eval-mode passes and frozen uses) are
    `autoencoder` and `discriminator`.
    """

    autoencoder: AutoEncoder
    discriminator: LatentDiscriminator
    ae_optimizer: torch.optim.Adam
    dis_optimizer: torch.optim.Adam
    precision: Precision
    reconstruct: nn.Module
    classify_latent: nn.Module
    memory_format: torch.memory_format = torch.contiguous_format
    patch: PatchDiscriminator | None = None
    patch_optimizer: torch.optim.Adam | None = None
    swap_classifier: AttributeClassifier | None = None
    swap_classifier_optimizer: torch.optim.Adam | None = None
    ema: AveragedModel | None = None

    @classmethod
    def build(
        cls, model: ModelConfig, config: TrainConfig, device: torch.device, group: Group = SINGLE
    ) -> FaderNetworks:
        memory_format = _memory_format(config.memory_format, model.img_size, device)
        group.share(config.batch_size)  # an uneven split fails here, before any step
        if group.distributed and config.patch_weight > 0:
            raise ValueError(
                "the PatchGAN ablation (patch_weight > 0) trains in one process: set nproc 1"
            )
        if group.distributed and config.swap_clf_weight > 0:
            raise ValueError(
                "the swap classifier (swap_clf_weight > 0) trains in one process: set nproc 1"
            )
        if config.sync_batchnorm and device.type != "cuda":
            raise ValueError(f"sync_batchnorm needs CUDA (SyncBatchNorm), not {device}")

        def adam(net: nn.Module) -> torch.optim.Adam:
            # fused: one kernel over all tensors; ~1.7x faster steps at 64 px on the CPU, where
            # the per-tensor loop of the default implementation rivals the convolutions.
            return torch.optim.Adam(
                net.parameters(), lr=config.learning_rate, betas=(config.beta1, 0.999), fused=True
            )

        autoencoder: AutoEncoder = AutoEncoder(model)
        discriminator: LatentDiscriminator = LatentDiscriminator(model)
        if config.sync_batchnorm and group.distributed:
            autoencoder = nn.SyncBatchNorm.convert_sync_batchnorm(autoencoder)
            discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)
        autoencoder.to(device, memory_format=memory_format)
        discriminator.to(device, memory_format=memory_format)
        patch = None
        if config.patch_weight > 0:
            patch = PatchDiscriminator(model).to(device, memory_format=memory_format)
        swap_classifier = None
        if config.swap_clf_weight > 0:
            shape = ClassifierConfig(
                img_size=model.img_size,
                n_attr=model.n_attr,
                init_fm=config.swap_clf_init_fm,
                max_fm=config.swap_clf_max_fm,
                dropout=0.0,
            )
            swap_classifier = AttributeClassifier(shape).to(device, memory_format=memory_format)
        ema = None
        if config.ema_decay > 0:
            average = get_ema_multi_avg_fn(config.ema_decay)
            ema = AveragedModel(autoencoder, multi_avg_fn=average, use_buffers=True)
        return cls(
            autoencoder,
            discriminator,
            adam(autoencoder),
            adam(discriminator),
            Precision.resolve(config.precision, device),
            group.wrap(Reconstruction(autoencoder), device),
            group.wrap(discriminator, device),
            memory_format,
            patch,
            adam(patch) if patch is not None else None,
            swap_classifier,
            adam(swap_classifier) if swap_classifier is not None else None,
            ema,
        )

    @property
    def evaluated(self) -> AutoEncoder:
        """The autoencoder that validation, checkpoints and edits use: the moving average of
        its weights when `ema_decay` > 0, else the trained weights themselves."""
        return self.autoencoder if self.ema is None else self.ema.module

    def modules(self) -> dict[str, Any]:
        """Every stateful part, by name (for checkpoints)."""
        parts = {
            "autoencoder": self.autoencoder,
            "discriminator": self.discriminator,
            "ae_optimizer": self.ae_optimizer,
            "dis_optimizer": self.dis_optimizer,
            "patch": self.patch,
            "patch_optimizer": self.patch_optimizer,
            "swap_classifier": self.swap_classifier,
            "swap_classifier_optimizer": self.swap_classifier_optimizer,
            "loss_scaler": self.precision.scaler,
            "ema": self.ema,
        }
        return {name: part for name, part in parts.items() if part is not None}

    def set_learning_rate(self, rate: float) -> None:
        """Every optimizer's step size (the autoencoder's, the discriminators')."""
        optimizers = (
            self.ae_optimizer,
            self.dis_optimizer,
            self.patch_optimizer,
            self.swap_classifier_optimizer,
        )
        for optimizer in filter(None, optimizers):
            for group in optimizer.param_groups:
                group["lr"] = rate

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the networks' memory format (a no-op when it already is)."""
        return x.contiguous(memory_format=self.memory_format)


def _memory_format(name: str, img_size: int, device: torch.device) -> torch.memory_format:
    """`train_fader.memory_format`, resolved: `auto` is channels_last where it measured faster."""
    if name == "auto":
        name = "channels_last" if device.type == "cuda" or img_size >= 256 else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


@contextlib.contextmanager
def _frozen(*modules: nn.Module | None) -> Iterator[None]:
    """No parameter gradients for `modules` in what runs inside (gradients still flow through).

    The autograd graph is built in the forward pass, so the backward after the block obeys it.
    """
    present = [module for module in modules if module is not None]
    for module in present:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module in present:
            module.requires_grad_(True)


# ---------------------------------------------------------------------------------------------
# One optimisation step each
# ---------------------------------------------------------------------------------------------


def discriminator_step(
    nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, clip: float
) -> StepMetrics:
    """Train the latent discriminator to predict y from E(x): L_dis = -log P_dis(y | E(x))."""
    x = nets.layout(x)
    # encode, with the autoencoder in eval mode and the latent detached (official code)
    nets.autoencoder.eval()
    nets.discriminator.train()
    with nets.precision.autocast():
        with torch.no_grad():
            z = nets.autoencoder.encode(x)[-1]
        # loss
        logits = nets.classify_latent(z).float()
        loss = attribute_cross_entropy(logits, y)
    # optimize
    nets.precision.minimize(loss, nets.dis_optimizer, nets.discriminator.parameters(), clip)
    accuracy = (LatentDiscriminator.per_attribute(logits).argmax(-1) == y.long()).float().mean()
    return {"dis_loss": loss.detach(), "dis_accuracy": accuracy.detach()}


def patch_step(nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, clip: float) -> StepMetrics:
    """Train the optional PatchGAN to tell real images from reconstructions (ablation)."""
    assert nets.patch is not None and nets.patch_optimizer is not None
    x = nets.layout(x)
    nets.autoencoder.eval()
    nets.patch.train()
    with nets.precision.autocast():
        with torch.no_grad():
            x_hat = nets.autoencoder(x, y)
        real, fake = nets.patch(x).float(), nets.patch(x_hat).float()
        loss = F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    nets.precision.minimize(loss, nets.patch_optimizer, nets.patch.parameters(), clip)
    return {"patch_loss": loss.detach()}


def swap_classifier_step(
    nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, clip: float
) -> StepMetrics:
    """Train the optional swap classifier to predict y from real images (the official code's
    clf_dis_step; not in the paper): binary cross-entropy per attribute."""
    assert nets.swap_classifier is not None and nets.swap_classifier_optimizer is not None
    x = nets.layout(x)
    nets.swap_classifier.train()
    with nets.precision.autocast():
        loss = F.binary_cross_entropy_with_logits(nets.swap_classifier(x).float(), y)
    nets.precision.minimize(
        loss, nets.swap_classifier_optimizer, nets.swap_classifier.parameters(), clip
    )
    return {"swap_clf_loss": loss.detach()}


def autoencoder_step(
    nets: FaderNetworks, x: torch.Tensor, y: torch.Tensor, lambda_e: float, config: TrainConfig
) -> StepMetrics:
    """Train E and D: reconstruction + λ_E · -log P_dis(1 - y | E(x)) (Section 3.3), plus the
    optional PatchGAN and swap-classifier terms (not in the paper).

    The discriminators only pass gradients back to the autoencoder: their own parameter
    gradients, which the official code computes and the next discriminator step discards, are
    not computed.
    """
    x = nets.layout(x)
    nets.autoencoder.train()
    nets.discriminator.eval()
    with _frozen(nets.discriminator, nets.patch, nets.swap_classifier), nets.precision.autocast():
        # encode / decode
        features, x_hat = nets.reconstruct(x, y)
        x_hat = x_hat.float()
        # loss: reconstruct, and make the discriminator predict the flipped attributes
        recon = reconstruction_loss(x_hat, x, config.recon_loss)
        adversarial = attribute_cross_entropy(nets.discriminator(features[-1]).float(), 1 - y)
        loss = recon + lambda_e * adversarial
        metrics = {"recon_loss": recon.detach(), "adv_loss": adversarial.detach()}
        if nets.patch is not None:
            nets.patch.eval()
            fake = nets.patch(x_hat).float()
            patch_loss = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
            loss = loss + config.patch_weight * patch_loss
            metrics["patch_adv_loss"] = patch_loss.detach()
        if nets.swap_classifier is not None:
            # decode with every attribute swapped; the classifier should see the swapped values
            nets.swap_classifier.eval()
            swapped = nets.autoencoder.decode(features, 1 - y)
            swap_loss = F.binary_cross_entropy_with_logits(
                nets.swap_classifier(swapped).float(), 1 - y
            )
            loss = loss + config.swap_clf_weight * swap_loss
            metrics["swap_adv_loss"] = swap_loss.detach()
    # optimize
    nets.precision.minimize(
        loss, nets.ae_optimizer, nets.autoencoder.parameters(), config.clip_grad_norm
    )
    if nets.ema is not None:
        nets.ema.update_parameters(nets.autoencoder)
    return metrics
