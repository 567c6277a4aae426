"""Where computation runs and how its randomness is captured: devices, seeds, RNG states."""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else the CPU; `cuda` fails clearly when there is none."""
    if name not in DEVICES and not re.fullmatch(r"cuda:\d+", name):
        raise ValueError(f"device must be one of {DEVICES} (or cuda:N), got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available here")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


#: CPU flags (Linux /proc/cpuinfo names) of instructions that compute in bfloat16 natively.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (elsewhere bf16 is emulated, and slower).

    CUDA: compute capability 8.0 (Ampere) or later. CPU: AVX512_BF16 or AMX, read from
    /proc/cpuinfo (oneDNN also accepts plain AVX-512, by converting to fp32 and back).
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return device.type == "cpu" and any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux names them; empty where /proc/cpuinfo is absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states that training on `device` draws from, for a checkpoint: torch's
    CPU generator (initialisation, the CPU's dropout) and, on a GPU, that GPU's own generator
    only (its dropout), so that a resume under another `CUDA_VISIBLE_DEVICES` layout restores
    the generator the process uses, whatever other GPUs it sees."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what `rng_state()` captured, for training on `device` (a GPU's state is skipped
    on the CPU). torch takes RNG states only as CPU byte tensors: read checkpoints onto the CPU."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        saved = state["cuda"]
        if isinstance(saved, list):  # an older checkpoint: every visible GPU's state, by index
            saved = saved[device.index if device.index is not None else 0]
        torch.cuda.set_rng_state(saved, device)
