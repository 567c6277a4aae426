"""One optimisation step each: the latent discriminator, the autoencoder, the optional critics.

The official src/training.py (`lat_dis_step`, `autoencoder_step`): the discriminator learns to
predict the attributes y from the latent E(x); the autoencoder learns to reconstruct x from
(E(x), y) while making that prediction fail (losses in `fader.train.losses`). Adam with β1 = 0.5
and gradient-norm clipping on each network.

The optional critics (not in the paper) are the official code's `ptc_dis_step` (a PatchGAN on
reconstructions) and `clf_dis_step` (a classifier of the swapped attributes): each learns on the
discriminator's batch, then adds a weighted term that the autoencoder minimises. Every network
travels with its optimizer (`Trained`), and each critic is one entry of `CRITICS`.

Each step returns its metrics as 0-dim tensors on the device, so that a step never waits for the
device: the trainer reads them (one host sync) only every `log_every` steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

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

Net = TypeVar("Net", bound=nn.Module)


@dataclass
class Trained(Generic[Net]):
    """A network and the Adam optimizer that trains it."""

    net: Net
    optimizer: torch.optim.Adam


class Reconstruction(nn.Module):
    """The autoencoder step's forward pass in one call, x, y → (encoder maps, x̂): the module
    that DistributedDataParallel wraps, since it syncs gradients of what its forward ran."""

    def __init__(self, autoencoder: AutoEncoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = self.autoencoder.encode(x)
        return features, self.autoencoder.decode(features, y)


@dataclass(frozen=True)
class CriticKind:
    """An optional adversary of the autoencoder (not in the paper): what builds it, the loss it
    learns by on the discriminator's batch, and its term in the autoencoder's loss."""

    name: str  # its checkpoint entry; its optimizer's is `<name>_optimizer`
    weight: str  # the TrainConfig field that weighs its term (0: no such critic)
    title: str  # what it is, in words
    build: Callable[[ModelConfig, TrainConfig], nn.Module]
    #: its own loss: (networks, critic, x, y) → loss
    loss: Callable[[FaderNetworks, nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    #: its term in the autoencoder's loss: (networks, critic, encoder maps, x̂, y) → term
    term: Callable[
        [FaderNetworks, nn.Module, list[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor
    ]
    loss_metric: str
    term_metric: str


@dataclass
class Critic(Trained[nn.Module]):
    """One critic of a run: its network and optimizer, its kind and the weight of its term."""

    kind: CriticKind
    weight: float


class MovingAverage(AveragedModel):
    """An exponential moving average of a network's parameters and buffers (not in the paper):
    `AveragedModel` with `get_ema_multi_avg_fn(decay)` and `use_buffers`, the same arithmetic and
    checkpoint entry (`module.*`, `n_averaged`), without its host syncs.

    AveragedModel asks the device whether `n_averaged` is 0 twice per update; here the host
    knows it, reading the counter once after it was loaded. The first update copies the
    weights; later ones are one `_foreach_lerp_` over the float tensors (w ← w + (1 - decay) ·
    (w_model - w)), and the integer buffers (BatchNorm's batch count) get AveragedModel's
    `w · decay + w_model · (1 - decay)`, truncated.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        super().__init__(model, use_buffers=True)
        self.decay = decay
        self._started: bool | None = False  # n_averaged > 0; None: to be read from the device

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._started = None
        return result

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        averaged = [*self.module.parameters(), *self.module.buffers()]
        current = [*model.parameters(), *model.buffers()]
        assert len(averaged) == len(current), "the averaged network has another structure"
        if self._started is None:
            self._started = bool(self.n_averaged > 0)  # one host sync, after a load
        if not self._started:
            torch._foreach_copy_(averaged, [t.detach() for t in current])
        else:
            floats = [(a, c.detach()) for a, c in zip(averaged, current) if a.is_floating_point()]
            if floats:
                ours, theirs = zip(*floats)
                torch._foreach_lerp_(list(ours), list(theirs), 1 - self.decay)
            for a, c in zip(averaged, current):
                if not a.is_floating_point():
                    a.copy_(a * self.decay + c * (1 - self.decay))
        self.n_averaged += 1  # on the device, no sync
        self._started = True


@dataclass
class FaderNetworks:
    """The networks of one Fader model, each with its optimizer, and how they compute.

    `reconstruct` and `classify_latent` are what the steps train through: the autoencoder's
    forward pass and the latent discriminator, under DistributedDataParallel when the group is
    distributed. The bare networks (for checkpoints, eval-mode passes and frozen uses) are
    `autoencoder.net` and `discriminator.net`.
    """

    autoencoder: Trained[AutoEncoder]
    discriminator: Trained[LatentDiscriminator]
    critics: list[Critic]  # in CRITICS order: the order they train and enter the loss
    precision: Precision
    reconstruct: nn.Module
    classify_latent: nn.Module
    memory_format: torch.memory_format = torch.contiguous_format
    ema: MovingAverage | None = None

    @classmethod
    def build(
        cls, model: ModelConfig, config: TrainConfig, device: torch.device, group: Group = SINGLE
    ) -> FaderNetworks:
        memory_format = _memory_format(config.memory_format, model.img_size, device)
        group.share(config.batch_size)  # an uneven split fails here, before any step
        kinds = [kind for kind in CRITICS if getattr(config, kind.weight) > 0]
        if group.distributed and kinds:
            raise ValueError(
                f"{kinds[0].title} ({kinds[0].weight} > 0) trains in one process: set nproc 1"
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
        critics = []
        for kind in kinds:
            net = kind.build(model, config).to(device, memory_format=memory_format)
            critics.append(Critic(net, adam(net), kind, getattr(config, kind.weight)))
        ema = MovingAverage(autoencoder, config.ema_decay) if config.ema_decay > 0 else None
        return cls(
            Trained(autoencoder, adam(autoencoder)),
            Trained(discriminator, adam(discriminator)),
            critics,
            Precision.resolve(config.precision, device),
            group.wrap(Reconstruction(autoencoder), device),
            group.wrap(discriminator, device),
            memory_format,
            ema,
        )

    @property
    def evaluated(self) -> AutoEncoder:
        """The autoencoder that validation, checkpoints and edits use: the moving average of
        its weights when `ema_decay` > 0, else the trained weights themselves."""
        return self.autoencoder.net if self.ema is None else self.ema.module

    def modules(self) -> dict[str, Any]:
        """Every stateful part, by name (for checkpoints)."""
        parts: dict[str, Any] = {
            "autoencoder": self.autoencoder.net,
            "discriminator": self.discriminator.net,
            "ae_optimizer": self.autoencoder.optimizer,
            "dis_optimizer": self.discriminator.optimizer,
        }
        for critic in self.critics:
            parts[critic.kind.name] = critic.net
            parts[f"{critic.kind.name}_optimizer"] = critic.optimizer
        if self.precision.scaler is not None:
            parts["loss_scaler"] = self.precision.scaler
        if self.ema is not None:
            parts["ema"] = self.ema
        return parts

    def set_learning_rate(self, rate: float) -> None:
        """Every optimizer's step size: the autoencoder's, the discriminator's, the critics'."""
        for part in (self.autoencoder, self.discriminator, *self.critics):
            for group in part.optimizer.param_groups:
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
def _frozen(*modules: nn.Module) -> Iterator[None]:
    """No parameter gradients for `modules` in what runs inside (gradients still flow through).

    The autograd graph is built in the forward pass, so the backward after the block obeys it.
    """
    for module in modules:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module in modules:
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
    nets.autoencoder.net.eval()
    nets.discriminator.net.train()
    with nets.precision.autocast():
        with torch.no_grad():
            z = nets.autoencoder.net.encode(x)[-1]
        # loss
        logits = nets.classify_latent(z).float()
        loss = attribute_cross_entropy(logits, y)
    # optimize
    nets.precision.minimize(
        loss, nets.discriminator.optimizer, nets.discriminator.net.parameters(), clip
    )
    accuracy = (LatentDiscriminator.per_attribute(logits).argmax(-1) == y.long()).float().mean()
    return {"dis_loss": loss.detach(), "dis_accuracy": accuracy.detach()}


def critic_step(
    nets: FaderNetworks, critic: Critic, x: torch.Tensor, y: torch.Tensor, clip: float
) -> StepMetrics:
    """Train an optional critic on the discriminator's batch by its own loss."""
    x = nets.layout(x)
    critic.net.train()
    with nets.precision.autocast():
        loss = critic.kind.loss(nets, critic.net, x, y)
    nets.precision.minimize(loss, critic.optimizer, critic.net.parameters(), clip)
    return {critic.kind.loss_metric: loss.detach()}


def autoencoder_step(
    nets: FaderNetworks,
    x: torch.Tensor,
    y: torch.Tensor,
    lambda_e: float | torch.Tensor,
    config: TrainConfig,
) -> StepMetrics:
    """Train E and D: reconstruction + λ_E · -log P_dis(1 - y | E(x)) (Section 3.3), plus each
    optional critic's weighted term (not in the paper).

    λ_E may be a 0-dim float32 tensor on the device (what a captured step would read), with the
    same result to the bit as the Python float (a test).

    The discriminator and the critics only pass gradients back to the autoencoder: their own
    parameter gradients, which the official code computes and the next discriminator step
    discards, are not computed.
    """
    x = nets.layout(x)
    autoencoder, discriminator = nets.autoencoder.net, nets.discriminator.net
    autoencoder.train()
    discriminator.eval()
    critics = [critic.net for critic in nets.critics]
    with _frozen(discriminator, *critics), nets.precision.autocast():
        # encode / decode
        features, x_hat = nets.reconstruct(x, y)
        x_hat = x_hat.float()
        # loss: reconstruct, and make the discriminator predict the flipped attributes
        recon = reconstruction_loss(x_hat, x, config.recon_loss)
        adversarial = attribute_cross_entropy(discriminator(features[-1]).float(), 1 - y)
        loss = recon + lambda_e * adversarial
        metrics = {"recon_loss": recon.detach(), "adv_loss": adversarial.detach()}
        for critic in nets.critics:
            critic.net.eval()
            term = critic.kind.term(nets, critic.net, features, x_hat, y)
            loss = loss + critic.weight * term
            metrics[critic.kind.term_metric] = term.detach()
    # optimize
    nets.precision.minimize(
        loss, nets.autoencoder.optimizer, autoencoder.parameters(), config.clip_grad_norm
    )
    if nets.ema is not None:
        nets.ema.update_parameters(autoencoder)
    return metrics


# ---------------------------------------------------------------------------------------------
# The optional critics
# ---------------------------------------------------------------------------------------------


def _patch_loss(
    nets: FaderNetworks, patch: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Tell real images (1) from reconstructions (0), patch by patch (the ablation report)."""
    nets.autoencoder.net.eval()
    with torch.no_grad():
        x_hat = nets.autoencoder.net(x, y)
    real, fake = patch(x).float(), patch(x_hat).float()
    return F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def _patch_term(
    nets: FaderNetworks,
    patch: nn.Module,
    features: list[torch.Tensor],
    x_hat: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """Make the PatchGAN take the reconstructions for real images."""
    fake = patch(x_hat).float()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def _swap_classifier(model: ModelConfig, config: TrainConfig) -> AttributeClassifier:
    shape = ClassifierConfig(
        img_size=model.img_size,
        n_attr=model.n_attr,
        init_fm=config.swap_clf_init_fm,
        max_fm=config.swap_clf_max_fm,
        dropout=0.0,
    )
    return AttributeClassifier(shape)


def _swap_classifier_loss(
    nets: FaderNetworks, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Predict y from real images: binary cross-entropy per attribute."""
    return F.binary_cross_entropy_with_logits(classifier(x).float(), y)


def _swap_classifier_term(
    nets: FaderNetworks,
    classifier: nn.Module,
    features: list[torch.Tensor],
    x_hat: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """Decode with every attribute swapped; the classifier should see the swapped values."""
    swapped = nets.autoencoder.net.decode(features, 1 - y)
    return F.binary_cross_entropy_with_logits(classifier(swapped).float(), 1 - y)


#: The optional critics, in the order they train and add their terms. A new critic is one entry
#: here, plus its weight in TrainConfig.
CRITICS = (
    CriticKind(
        name="patch",
        weight="patch_weight",
        title="the PatchGAN ablation",
        build=lambda model, config: PatchDiscriminator(model),
        loss=_patch_loss,
        term=_patch_term,
        loss_metric="patch_loss",
        term_metric="patch_adv_loss",
    ),
    # the official code's clf_dis, AttGAN's attribute loss; never the judge
    CriticKind(
        name="swap_classifier",
        weight="swap_clf_weight",
        title="the swap classifier",
        build=_swap_classifier,
        loss=_swap_classifier_loss,
        term=_swap_classifier_term,
        loss_metric="swap_clf_loss",
        term_metric="swap_adv_loss",
    ),
)
