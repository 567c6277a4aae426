"""The training hyperparameters: params.yaml's `train_fader` and `train_classifier` sections."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pydantic

from fader.config import AtLeastOne, NonNegative, NonNegativeInt, Positive, Probability, config

#: A learning rate, in (0, 1]: larger Adam steps ruin any network (paper 2e-3, its code 2e-4).
LearningRate = Annotated[float, pydantic.Field(gt=0, le=1)]
#: λ_E: beyond 1 the adversarial term swamps the reconstruction (the paper 1e-4, here 2e-3).
LambdaE = Annotated[float, pydantic.Field(ge=0, le=1)]


@config
class TrainConfig:
    """The Fader training loop's hyperparameters (params.yaml, section `train_fader`).

    The paper's schedule (Sections 3 and 5.1; `experiments/paper.sh`): batch 32, Adam 2e-4 (the
    official code's rate; the paper's text says 0.002), β1 0.5, λ_E to 1e-4 over 500,000 steps,
    clipping at 5, epochs of 50,000 images, 1,000 epochs.
    """

    batch_size: AtLeastOne
    # what batch_size counts under several processes (fader.train.distributed): global = the
    # whole batch, split among them (the paper's 32 whatever nproc); per_process = each one's
    # images (the batch grows with nproc; an epoch keeps epoch_size images, so fewer steps)
    batch_scope: Literal["global", "per_process"]
    learning_rate: LearningRate
    beta1: Probability
    lambda_max: LambdaE  # λ_E after the schedule
    lambda_schedule: NonNegativeInt  # autoencoder steps over which λ_E rises from 0
    clip_grad_norm: Positive
    # latent discriminator steps per autoencoder step, each on its own batch: the official
    # code's n_lat_dis (1, as in the paper); more gives the adversary the upper hand
    dis_steps: AtLeastOne
    epoch_size: AtLeastOne  # images per epoch, as in the official code
    n_epochs: AtLeastOne
    recon_loss: Literal["mse", "mae", "huber"]  # the paper's MSE, or the ablation report's
    patch_weight: NonNegative  # weight of the optional PatchGAN term on reconstructions
    # Not in the paper (the official code's optional clf_dis, AttGAN's attribute loss): weight of
    # a classifier's cross-entropy on decodings with the attributes swapped (1 - y), toward the
    # swapped values. That classifier trains alongside on the real batches, from scratch; it is
    # never the judge. 0 = the paper. Its width: swap_clf_init_fm, swap_clf_max_fm.
    swap_clf_weight: NonNegative
    swap_clf_init_fm: AtLeastOne
    swap_clf_max_fm: AtLeastOne
    flip: bool  # horizontal flips with p = 0.5 (Section 5.1)
    # Not in the paper: validate, select and save an exponential moving average of the
    # autoencoder's weights (and BatchNorm statistics), decay per step; 0 = the paper's weights
    ema_decay: Annotated[float, pydantic.Field(ge=0, lt=1)]
    # Not in the paper: the final fraction of the run's steps over which both learning rates
    # fall linearly to 0 (fader.train.losses.learning_rate); 0 = the paper's constant rate
    lr_decay: Annotated[float, pydantic.Field(ge=0, lt=1)]
    # the model the stage keeps: best_swap (the highest mean validation swap accuracy, ties
    # broken by the lower MSE) or last (the final epoch: with a decaying rate, the most settled)
    selection: Literal["best_swap", "last"]
    valid_size: NonNegativeInt  # validation images per epoch; 0 = the whole split
    log_every: AtLeastOne  # steps between logged training metrics (and host syncs)
    # fp32 (the paper), bf16 autocast, fp16 autocast with loss scaling (CUDA), or auto: bf16
    # where the hardware has native bf16, else fp32 (fader.train.precision)
    precision: Literal["fp32", "bf16", "fp16", "auto"]
    # Activations' layout: channels_last (NHWC) feeds oneDNN and cuDNN their fastest kernels at
    # large images; auto = channels_last on CUDA and for images of 256 px or more (benchmarks)
    memory_format: Literal["auto", "contiguous", "channels_last"]
    # the training split copied to the device, batches gathered there (no host work per step);
    # auto = on a GPU with room for it (fader.data.prepared.DeviceSplit)
    data_on_device: bool | Literal["auto"]
    # processes of one run (torchrun; fader.train.distributed); batch_size is split among them
    nproc: AtLeastOne
    sync_batchnorm: bool  # BatchNorm statistics over the whole batch across processes (CUDA)
    # deterministic algorithms only (cuDNN's deterministic kernels, no autotuning, cuBLAS's
    # deterministic workspace): the same weights from the same seed on a GPU, slower; false =
    # cuDNN autotuning. TF32 stays off either way (fader.runtime.set_backends)
    deterministic: bool
    device: str  # auto | cpu | cuda | cuda:N

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.epoch_size / self.batch_size)

    @property
    def total_steps(self) -> int:
        return self.n_epochs * self.steps_per_epoch


@config
class ClassifierTrainConfig:
    """Hyperparameters of classifier training (params.yaml, section `train_classifier`)."""

    batch_size: AtLeastOne
    learning_rate: LearningRate
    max_epochs: AtLeastOne
    patience: AtLeastOne  # epochs without a better validation accuracy before stopping
    flip: bool
    device: str  # auto | cpu | cuda | cuda:N
