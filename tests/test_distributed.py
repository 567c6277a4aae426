"""Data-parallel training on the CPU (gloo): N processes take the steps one process would take.

Each test process group is 2 processes started with torch.multiprocessing, rendezvous through
a file. The whole `fader train --nproc 2` command (torchrun, kill and resume) is tested in
tests/test_stages.py.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fader.data.config import PreprocessConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.model import checkpoint
from fader.model.networks import AttributeClassifier, ClassifierConfig, ModelConfig
from fader.train import distributed, trainer
from fader.train.config import TrainConfig
from fader.train.distributed import SINGLE, Group
from fader.train.steps import FaderNetworks
from tests.conftest import make

WORLD = 2
SEED = 3
# No dropout: each process draws its own masks, one process draws other ones.
MODEL = make(ModelConfig, img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16, dis_dropout=0.0)
CONFIG = make(TrainConfig, batch_size=8, learning_rate=1e-3, lambda_max=0.5, device="cpu")


def without_batchnorm(monkeypatch: pytest.MonkeyPatch) -> None:
    """BatchNorm normalises each process's share by its own statistics: the one difference
    between N processes and one (sync_batchnorm removes it on CUDA). Build without it."""
    monkeypatch.setattr(torch.nn, "BatchNorm2d", lambda channels: torch.nn.Identity())


def one_iteration(prepared: Path, group: Group) -> dict[str, torch.Tensor]:
    """The weights after one training iteration (both steps) on `group`'s shares."""
    torch.manual_seed(SEED)
    nets = FaderNetworks.build(MODEL, CONFIG, torch.device("cpu"), group)
    sampler = torch.Generator().manual_seed(SEED)
    train = PreparedDataset(prepared, "train", flip=True)
    trainer._iteration(nets, train, CONFIG, sampler, torch.device("cpu"), 0.5, group)
    state = {f"ae.{k}": v for k, v in nets.autoencoder.net.state_dict().items()}
    return state | {f"dis.{k}": v for k, v in nets.discriminator.net.state_dict().items()}


def _worker(rank: int, prepared: Path, rendezvous: Path, out: Path) -> None:
    torch.set_num_threads(1)
    torch.nn.BatchNorm2d = lambda channels: torch.nn.Identity()  # this process only
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    try:
        state = one_iteration(prepared, Group(rank=rank, world_size=WORLD, local_rank=rank))
        torch.save(state, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture
def prepared(raw_celeba: Path, tmp_path: Path) -> Path:
    config = make(PreprocessConfig, img_size=32, attributes=("Smiling", "Male"), workers=1)
    prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
    return tmp_path / "prepared"


def test_two_processes_take_the_step_of_one_on_the_whole_batch(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mp.spawn(_worker, args=(prepared, tmp_path / "rendezvous", tmp_path), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    without_batchnorm(monkeypatch)
    single = one_iteration(prepared, SINGLE)
    initial = FaderNetworks.build(MODEL, CONFIG, torch.device("cpu")).autoencoder.net.state_dict()
    assert ranks[0].keys() == single.keys()
    for name, weight in single.items():
        for state in ranks:  # every rank holds the same weights, those of one process
            torch.testing.assert_close(state[name], weight, rtol=1e-5, atol=1e-6, msg=name)
    moved = [k for k, v in initial.items() if not torch.allclose(v, single[f"ae.{k}"])]
    assert moved, "the iteration changed no weight: the comparison proves nothing"


def test_batch_shares_are_disjoint_and_make_the_whole_batch(prepared: Path) -> None:
    train = PreparedDataset(prepared, "train", flip=True)
    whole = trainer._sample(train, 8, torch.Generator().manual_seed(1), torch.device("cpu"))
    shares = [
        trainer._sample(
            train, 8, torch.Generator().manual_seed(1), torch.device("cpu"), Group(rank, 2, rank)
        )
        for rank in range(2)
    ]
    assert torch.equal(torch.cat([x for x, _ in shares]), whole[0])
    assert torch.equal(torch.cat([y for _, y in shares]), whole[1])


def test_an_uneven_batch_and_cpu_sync_batchnorm_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size 9 does not split evenly over 2 processes"):
        Group(rank=0, world_size=2).share(9)
    with pytest.raises(ValueError, match="sync_batchnorm needs CUDA"):
        FaderNetworks.build(MODEL, replace(CONFIG, sync_batchnorm=True), torch.device("cpu"))


def test_not_launched_by_torchrun_is_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.join("cpu") == (SINGLE, torch.device("cpu"))
    assert not SINGLE.distributed


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for env:// rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_with_one_process_joins_a_group_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first-day GPU check trains under torchrun with one process to set NCCL up on one GPU:
    the process group, DDP and the collectives run as with several (here gloo, for real)."""
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    group, device = distributed.join("cpu")
    try:
        assert group == Group(rank=0, world_size=1, local_rank=0, joined=True)
        assert group.distributed and dist.is_initialized() and dist.get_world_size() == 1
        assert group.any(True) and not group.any(False)
        wrapped = group.wrap(nn.Linear(2, 1), device)
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
    finally:
        distributed.leave()
    assert not dist.is_initialized()


def test_the_process_group_is_joined_with_an_explicit_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: calls.append((a, k)))
    group, device = distributed.join("cpu")
    assert group == Group(rank=1, world_size=2, local_rank=1, joined=True)
    assert device == torch.device("cpu")
    assert calls == [(("gloo",), {"timeout": distributed.TIMEOUT})]
    assert distributed.TIMEOUT.total_seconds() == 30 * 60


def test_a_share_too_small_for_batchnorm_is_refused_unless_sync_batchnorm_pools_it() -> None:
    sixteen = Group(rank=3, world_size=16, local_rank=3)
    message = "batch_size 32 over 16 processes leaves 2 image.s. per process, below the 4"
    with pytest.raises(ValueError, match=message):
        sixteen.check_share(32, sync_batchnorm=False)
    with pytest.raises(ValueError, match="batch_scope: per_process"):
        Group(rank=0, world_size=2).check_share(2, sync_batchnorm=False)
    sixteen.check_share(32, sync_batchnorm=True)  # statistics over the whole batch
    Group(rank=7, world_size=8).check_share(32, sync_batchnorm=False)  # 4 each: the paper's on 8
    SINGLE.check_share(2, sync_batchnorm=False)  # one process: the batch is the user's choice
    with pytest.raises(ValueError, match="leaves 2 image"):
        FaderNetworks.build(MODEL, replace(CONFIG, batch_size=4), torch.device("cpu"), Group(0, 2))


def test_batch_size_is_global_by_default_or_per_process_when_asked() -> None:
    group = Group(rank=1, world_size=4, local_rank=1)
    assert trainer.in_global_terms(CONFIG, group) == CONFIG  # the paper's meaning
    per_process = replace(CONFIG, batch_scope="per_process", epoch_size=64)
    whole = trainer.in_global_terms(per_process, group)
    assert (whole.batch_size, whole.batch_scope) == (32, "global")
    assert whole.steps_per_epoch == 2  # an epoch keeps its images: 64 in batches of 4 x 8
    assert group.share(whole.batch_size) == slice(8, 16)  # each process takes its 8
    assert trainer.in_global_terms(per_process, SINGLE).batch_size == 8
    with pytest.raises(ValueError, match="batch_scope must be one of"):
        group.global_batch(8, "local")


# -- whole runs in 2 processes: resume, logged metrics, NaN ------------------------------------

RUN = make(
    TrainConfig,
    batch_size=8,
    epoch_size=16,
    n_epochs=2,
    lambda_max=0.01,
    lambda_schedule=4,
    log_every=1,
    device="cpu",
)


def _train_worker(
    rank: int,
    prepared: Path,
    rendezvous: Path,
    folders: list[Path],
    config: TrainConfig,
    out: Path,
    nan_step: int,
) -> None:
    """One rank of `train_fader`, with rank-specific checkpoint folders (each rank its own
    "machine"); saves what it logged, each of its steps' metrics and its error, if any."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=120),  # a rank that went astray fails instead of hanging
    )
    steps: list[dict[str, float]] = []
    iteration, step = trainer._iteration, trainer.autoencoder_step

    def recording(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        metrics = iteration(*args, **kwargs)
        steps.append({key: value.item() for key, value in metrics.items()})
        return metrics

    def poisoned(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        metrics = step(*args, **kwargs)
        if len(steps) + 1 == nan_step:  # this rank's loss alone: its gradients stay finite
            metrics["recon_loss"] = torch.tensor(float("nan"))
        return metrics

    trainer._iteration = recording
    if rank == 1:
        trainer.autoencoder_step = poisoned
    logged: list[tuple[int, dict[str, float]]] = []
    torch.manual_seed(123)
    judge = AttributeClassifier(make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8))
    error = None
    try:
        result = trainer.train_fader(
            PreparedDataset(prepared, "train", flip=True),
            PreparedDataset(prepared, "valid"),
            judge,
            MODEL,
            config,
            folders[rank],
            seed=7,
            logger=lambda m, s: logged.append((s, m)),
            progress=False,
            group=Group(rank=rank, world_size=WORLD, local_rank=rank),
        )
    except trainer.NonFiniteLoss as caught:
        result, error = {}, str(caught)
    finally:
        dist.destroy_process_group()
    torch.save(
        {"result": result, "logged": logged, "steps": steps, "error": error}, out / f"rank{rank}.pt"
    )


def train_two(
    prepared: Path,
    tmp_path: Path,
    name: str,
    folders: list[Path],
    config: TrainConfig = RUN,
    nan_step: int = 0,
) -> list[dict[str, Any]]:
    """Both ranks' records of a 2-process `train_fader` run (`name`: a fresh rendezvous)."""
    out = tmp_path / name
    out.mkdir()
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    mp.spawn(
        _train_worker,
        args=(prepared, out / "rendezvous", folders, config, out, nan_step),
        nprocs=WORLD,
    )
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


def test_a_rank_without_the_checkpoint_resumes_from_rank_0s_and_logs_the_mean(
    prepared: Path, tmp_path: Path
) -> None:
    """Rank 1 on another "machine": its checkpoint folder has no last.pt. Rank 0 reads its own
    and sends it: the resumed run ends as the uninterrupted one, bit for bit."""
    node0, node1 = tmp_path / "node0" / "ckpt", tmp_path / "node1" / "ckpt"
    train_two(prepared, tmp_path, "first", [node0, node1], replace(RUN, n_epochs=1))
    assert (node0 / trainer.LAST).is_file() and not any(node1.iterdir())
    resumed = train_two(prepared, tmp_path, "resumed", [node0, tmp_path / "node1b"])
    assert [len(rank["steps"]) for rank in resumed] == [2, 2]  # the second epoch only, each
    straight = train_two(prepared, tmp_path, "straight", [tmp_path / "s0", tmp_path / "s1"])
    assert resumed[0]["result"]["history"] == straight[0]["result"]["history"]
    ours = checkpoint.load(node0 / trainer.FINAL, "fader", map_location="cpu")
    theirs = checkpoint.load(tmp_path / "s0" / trainer.FINAL, "fader", map_location="cpu")
    for key, value in theirs["state"].items():
        assert torch.equal(ours["state"][key], value), key
    assert not any((tmp_path / "node1b").iterdir())  # rank 1 never writes

    # the logged training metrics are the mean over the ranks, step by step and per epoch
    logged = {s: m for s, m in straight[0]["logged"] if any(k.startswith("train/") for k in m)}
    assert sorted(logged) == [1, 2, 3, 4]
    for index, (mine, theirs_) in enumerate(zip(*(r["steps"] for r in straight), strict=True)):
        for key, value in mine.items():
            mean = (value + theirs_[key]) / 2
            assert logged[index + 1][f"train/{key}"] == pytest.approx(mean, rel=1e-6), key
    assert any(mine != other for mine, other in zip(*(r["steps"] for r in straight)))
    epoch = straight[0]["result"]["history"][0]
    first = [sum(r["steps"][i]["recon_loss"] for i in range(2)) for r in straight]
    assert epoch["train_epoch/recon_loss"] == pytest.approx(sum(first) / 2 / 2, rel=1e-6)


def test_a_non_finite_loss_on_rank_1_alone_stops_every_rank(prepared: Path, tmp_path: Path) -> None:
    ranks = train_two(prepared, tmp_path, "nan", [tmp_path / "c0", tmp_path / "c1"], nan_step=3)
    for rank in ranks:
        assert rank["error"] is not None, "a rank went on past rank 1's NaN"
        assert "training stopped at step 3: recon_loss became non-finite" in rank["error"]
        assert f"{trainer.LAST} keeps epoch 1" in rank["error"]  # each its own folder's name
    assert [len(rank["steps"]) for rank in ranks] == [3, 3]  # log_every 1: found at once
