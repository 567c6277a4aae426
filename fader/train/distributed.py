"""Data-parallel training over processes: torch.distributed, launched by torchrun.

Not in the paper (one GPU). `fader train --nproc N` starts N processes on this machine through
`torch.distributed.run` (torchrun); a multi-node run is torchrun's own command line around
`python -m stages.cli train ...` (`--nnodes`, `--rdzv-*`). Every process runs the same loop on
its share of each batch, and DistributedDataParallel averages the gradients, so that N processes
take the steps one process would take on the whole batch (`train_fader.batch_size` is the global
batch, unless `batch_scope: per_process`). Only BatchNorm differs: each process normalises with
its own share's statistics, unless `sync_batchnorm` (CUDA only) shares them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fader import runtime


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    joined: bool = False  # in a torch.distributed process group (torchrun), of any size

    @property
    def is_main(self) -> bool:
        """Rank 0 validates, logs, shows progress and writes checkpoints for all."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Training through the process group: DDP and collectives, also in a group of one
        (torchrun with one process: the path of several, e.g. NCCL's, checked on one GPU)."""
        return self.world_size > 1 or self.joined

    def share(self, batch_size: int) -> slice:
        """This rank's part of a global batch of `batch_size` (equal parts)."""
        if batch_size % self.world_size:
            raise ValueError(
                f"batch_size {batch_size} does not split evenly over {self.world_size} processes"
            )
        part = batch_size // self.world_size
        return slice(self.rank * part, (self.rank + 1) * part)

    def global_batch(self, batch_size: int, scope: str) -> int:
        """The batch that all ranks draw together and split: `batch_size` itself (`global`, the
        paper's meaning whatever the number of processes) or `batch_size` images per process
        (`per_process`: the global batch grows with the processes)."""
        if scope not in BATCH_SCOPES:
            raise ValueError(f"batch_scope must be one of {BATCH_SCOPES}, got {scope!r}")
        return batch_size if scope == "global" else batch_size * self.world_size

    def check_share(self, batch_size: int, sync_batchnorm: bool) -> None:
        """Refuse a global batch of `batch_size` that does not split evenly, or whose per-process
        share is too small for BatchNorm's per-process statistics (MIN_SHARE) when
        `sync_batchnorm` does not pool them."""
        share = self.share(batch_size)
        images = share.stop - share.start
        if self.world_size > 1 and not sync_batchnorm and images < MIN_SHARE:
            raise ValueError(
                f"batch_size {batch_size} over {self.world_size} processes leaves {images} "
                f"image(s) per process, below the {MIN_SHARE} that BatchNorm's per-process "
                "statistics need: set sync_batchnorm (CUDA), use fewer processes or a larger "
                "batch_size, or set batch_scope: per_process (batch_size images per process)"
            )

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (a collective: every rank must call it)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=_collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each 0-dim tensor of `values` averaged over the ranks, in float64 (a collective);
        `values` itself when not distributed. Every rank must pass the same keys."""
        if not self.distributed:
            return values
        keys = sorted(values)
        total = torch.stack([values[key].detach().double() for key in keys])
        total = total.to(_collective_device())
        dist.all_reduce(total)
        return dict(zip(keys, total / self.world_size, strict=True))

    def max(self, values: torch.Tensor) -> torch.Tensor:
        """`values` (1-d) element-wise maximum over the ranks (a collective)."""
        if not self.distributed:
            return values
        values = values.to(_collective_device())
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank (a collective; any picklable value, sent whole)."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """`value` of every rank, in rank order (a collective)."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """`module` under DistributedDataParallel (itself when not distributed)."""
        if not self.distributed:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)


SINGLE = Group()

#: What `train_fader.batch_size` counts: the global batch (the paper's 32, split among the
#: processes) or the images of each process.
BATCH_SCOPES = ("global", "per_process")

#: The fewest images per process that BatchNorm normalises by, when each process uses its own
#: share's statistics: at 1 it raises (a single value per channel), at 2 or 3 its statistics are
#: noise that training and eval-mode running averages disagree with. 4 is the paper's batch of
#: 32 on 8 GPUs.
MIN_SHARE = 4

#: How long a collective waits for every rank before it fails the run. The longest wait is the
#: other ranks' at the end of an epoch, while rank 0 alone validates and writes checkpoints: a
#: few seconds on a GPU (the whole CelebA validation split at 256 px is ~20,000 images of
#: inference; `last.pt` at the paper's size, weights and Adam's moments, ~220 MB), less than the
#: 30 s of a whole default epoch on a 2-core CPU (docs/scale.md). 30 minutes leaves a wide margin
#: for a slow disk or a large `valid_size`, while a rank that died or went astray fails the job
#: within the half hour, not at torch's defaults (10 minutes for NCCL: too short for a CPU
#: validation of the whole split; 30 for gloo), which also differ by backend and torch version.
#: A validation longer than this: lower `valid_size`.
TIMEOUT = timedelta(minutes=30)


def _collective_device() -> torch.device:
    """Where collectives' tensors live: NCCL needs this process's GPU, gloo the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def launched() -> bool:
    """Whether this process was started by torchrun (which sets WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def join(device_name: str, timeout: timedelta = TIMEOUT) -> tuple[Group, torch.device]:
    """This process's group and device; joins the process group when torchrun started it (one
    process too: torchrun's launch is what asks for the process group).

    NCCL on CUDA (one GPU per process: `cuda:LOCAL_RANK`), gloo on the CPU; a collective that
    waits longer than `timeout` for another rank fails (see TIMEOUT).
    """
    device = runtime.resolve_device(device_name)
    if not launched():
        return SINGLE, device
    group = Group(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        joined=True,
    )
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    return group, device


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
