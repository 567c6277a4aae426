"""The speed levers of training, on the CPU and on CUDA: mixed precision
(`train_fader.precision`), the memory format, batches gathered on the device, no discriminator
gradients in the autoencoder step; and the NCCL path of data parallelism.

The `gpu` tests need a CUDA device (`pytest -m gpu`); they skip without one.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fader import runtime
from fader.data.config import PreprocessConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.model.networks import ModelConfig
from fader.train import trainer
from fader.train.config import TrainConfig
from fader.train.distributed import Group
from fader.train.precision import Precision
from fader.train.steps import FaderNetworks, autoencoder_step, discriminator_step
from tests.conftest import make

MODEL = make(ModelConfig, img_size=32, n_layers=4, n_attr=2, init_fm=8, max_fm=32)
CONFIG = make(TrainConfig, batch_size=8, learning_rate=1e-3, lambda_max=0.1, device="cpu")
CPU = torch.device("cpu")


def batch(device: torch.device = CPU) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=generator) * 2 - 1
    y = torch.randint(0, 2, (8, 2), generator=generator).float()
    return x.to(device), y.to(device)


def train_steps(config: TrainConfig, device: torch.device, n: int = 20) -> list[float]:
    """Reconstruction losses of `n` iterations on one fixed batch, from the same weights."""
    torch.manual_seed(0)
    nets = FaderNetworks.build(MODEL, config, device)
    x, y = batch(device)
    losses = []
    for _ in range(n):
        discriminator_step(nets, x, y, config.clip_grad_norm)
        losses.append(autoencoder_step(nets, x, y, 0.1, config)["recon_loss"].item())
    return losses


def test_auto_is_bf16_only_where_bf16_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not runtime.native_bf16(CPU)
    assert Precision.resolve("auto", CPU).name == "fp32"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert runtime.native_bf16(CPU)
    assert Precision.resolve("auto", CPU).name == "bf16"
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert Precision.resolve("auto", CPU).name == "bf16"


def test_fp16_on_the_cpu_is_refused_with_the_way_out() -> None:
    with pytest.raises(ValueError, match="fp16 needs a CUDA device.*use bf16"):
        Precision.resolve("fp16", CPU)
    with pytest.raises(ValueError, match="precision"):
        make(TrainConfig, precision="fp8")


def test_bf16_steps_compute_in_bf16_and_learn_like_fp32() -> None:
    nets = FaderNetworks.build(MODEL, replace(CONFIG, precision="bf16"), CPU)
    seen: list[torch.dtype] = []
    autoencoder = nets.autoencoder.net
    autoencoder.encoder.blocks[1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    autoencoder_step(nets, *batch(), 0.1, CONFIG)
    assert seen == [torch.bfloat16]  # the convolutions ran in bf16 ...
    assert all(p.dtype == torch.float32 for p in autoencoder.parameters())  # ... not weights
    fp32 = train_steps(CONFIG, CPU)
    bf16 = train_steps(replace(CONFIG, precision="bf16"), CPU)
    assert bf16[-1] < 0.7 * bf16[0]  # it learns
    assert abs(bf16[-1] - fp32[-1]) < 0.1 * fp32[-1]  # about as fp32 does


def test_channels_last_trains_like_contiguous() -> None:
    nets = FaderNetworks.build(MODEL, replace(CONFIG, memory_format="channels_last"), CPU)
    weight = nets.autoencoder.net.encoder.blocks[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    contiguous = train_steps(CONFIG, CPU, n=5)
    channels_last = train_steps(replace(CONFIG, memory_format="channels_last"), CPU, n=5)
    assert channels_last == pytest.approx(contiguous, rel=1e-3)  # rounding, grown by Adam


def test_auto_memory_format_is_channels_last_at_256_px_on_the_cpu() -> None:
    big = make(ModelConfig, img_size=256, n_layers=7, n_attr=1, init_fm=2, max_fm=4)
    auto = replace(CONFIG, memory_format="auto")
    assert FaderNetworks.build(big, auto, CPU).memory_format == torch.channels_last
    assert FaderNetworks.build(MODEL, auto, CPU).memory_format == torch.contiguous_format


def test_the_discriminator_gets_no_gradient_from_the_autoencoder_step() -> None:
    """The official code computes them and the next discriminator step throws them away."""
    nets = FaderNetworks.build(MODEL, CONFIG, CPU)
    autoencoder_step(nets, *batch(), 0.1, CONFIG)
    assert all(p.grad is None for p in nets.discriminator.net.parameters())
    assert all(p.requires_grad for p in nets.discriminator.net.parameters())  # given back
    assert any(p.grad is not None for p in nets.autoencoder.net.parameters())


# ---------------------------------------------------------------------------------------------
# CUDA


def cuda() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device("cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_learns_like_fp32(precision: str) -> None:
    device = cuda()
    config = replace(CONFIG, device="cuda", memory_format="auto")
    fp32 = train_steps(config, device)
    mixed = train_steps(replace(config, precision=precision), device)
    assert mixed[-1] < 0.7 * mixed[0]
    assert abs(mixed[-1] - fp32[-1]) < 0.1 * fp32[-1]
    nets = FaderNetworks.build(MODEL, replace(config, precision=precision), device)
    assert (nets.precision.scaler is not None) == (precision == "fp16")
    assert nets.memory_format == torch.channels_last  # auto, on CUDA


@pytest.mark.gpu
def test_nccl_process_group_of_one_trains(
    raw_celeba: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NCCL path of DistributedDataParallel: a group of one process on one GPU."""
    device = cuda()
    monkeypatch.setitem(os.environ, "MASTER_ADDR", "127.0.0.1")
    init = f"file://{tmp_path / 'rendezvous'}"
    dist.init_process_group("nccl", init_method=init, rank=0, world_size=1)
    try:
        config = make(PreprocessConfig, img_size=32, attributes=("Smiling", "Male"), workers=1)
        prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
        train = PreparedDataset(tmp_path / "prepared", "train", flip=True)
        group = Group(rank=0, world_size=1)
        # world_size 1 is not `distributed`: wrap explicitly to exercise DDP over NCCL
        nets = FaderNetworks.build(MODEL, replace(CONFIG, device="cuda", precision="bf16"), device)
        nets.reconstruct = torch.nn.parallel.DistributedDataParallel(
            nets.reconstruct, device_ids=[device.index or 0]
        )
        sampler = torch.Generator().manual_seed(0)
        metrics = trainer._iteration(nets, train, CONFIG, sampler, device, 0.1, group)
        assert all(torch.isfinite(value) for value in metrics.values())
        assert metrics["recon_loss"].device.type == "cuda"
    finally:
        dist.destroy_process_group()


def test_batches_gathered_on_the_device_are_those_of_the_memory_map(
    raw_celeba: Path, tmp_path: Path
) -> None:
    config = make(PreprocessConfig, img_size=32, attributes=("Smiling", "Male"), workers=1)
    prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
    train = PreparedDataset(tmp_path / "prepared", "train", flip=True)
    on_device = train.on_device(CPU, chunk=3)  # several chunks
    for seed in range(3):
        mapped = trainer._sample(train, 8, torch.Generator().manual_seed(seed), CPU)
        gathered = trainer._sample(on_device, 8, torch.Generator().manual_seed(seed), CPU)
        assert torch.equal(mapped[0], gathered[0]) and torch.equal(mapped[1], gathered[1])
    with pytest.raises(ValueError, match="data_on_device"):
        make(TrainConfig, data_on_device="yes")


@pytest.mark.gpu
def test_cuda_batches_gathered_on_the_gpu_are_those_of_the_memory_map(
    raw_celeba: Path, tmp_path: Path
) -> None:
    device = cuda()
    config = make(PreprocessConfig, img_size=32, attributes=("Smiling", "Male"), workers=1)
    prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
    train = PreparedDataset(tmp_path / "prepared", "train", flip=True)
    mapped = trainer._sample(train, 8, torch.Generator().manual_seed(0), device)
    gathered = trainer._sample(train.on_device(device), 8, torch.Generator().manual_seed(0), device)
    assert gathered[0].device.type == "cuda"
    assert torch.equal(mapped[0], gathered[0]) and torch.equal(mapped[1], gathered[1])
