"""Mixed precision for the training steps (params.yaml `train_fader.precision`).

Not in the paper (2017, fp32). `bf16` runs the forward passes under autocast in bfloat16, where
convolutions and matrix products take half the memory traffic and, on CPUs with AVX512_BF16 or
AMX and on recent GPUs, the hardware's bf16 instructions; the weights, the optimizer state and
the losses stay fp32. `fp16` (CUDA only) adds loss scaling, because fp16 gradients underflow.
`auto` is bf16 where the hardware has native bf16 (`runtime.native_bf16`) and fp32 elsewhere:
emulated bf16 is slower than fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from fader import runtime

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """The resolved precision of one training run and, for fp16, its loss scaler."""

    name: str  # fp32 | bf16 | fp16
    device: torch.device
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        """`name` as params.yaml gives it (fp32 | bf16 | fp16 | auto), for `device`."""
        if name == "auto":
            name = "bf16" if runtime.native_bf16(device) else "fp32"
        if name not in DTYPES:
            raise ValueError(f"precision must be one of fp32, bf16, fp16, auto; got {name!r}")
        if name == "fp16" and device.type != "cuda":
            raise ValueError(
                f"precision fp16 needs a CUDA device (it is running on {device}): "
                "use bf16 (or auto) on the CPU"
            )
        scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
        return cls(name, device, scaler)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """The forward passes of a step run inside this (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.name])

    def minimize(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[nn.Parameter],
        clip: float,
    ) -> None:
        """One update: backward, gradient-norm clipping at `clip` (the official code's 5), step.

        With fp16 the loss is scaled for the backward and the gradients unscaled before clipping;
        a step whose gradients overflowed is skipped and the scale lowered (GradScaler).
        """
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, clip)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(parameters, clip)
        self.scaler.step(optimizer)
        self.scaler.update()
