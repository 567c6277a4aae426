"""fader/runtime.py: device names, seeding every generator, saving and restoring torch's RNG."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fader import runtime


@pytest.fixture(autouse=True)
def _keep_global_rng_states() -> Iterator[None]:
    """These tests reseed the global generators: leave them as they were for the other tests."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA reported present with two GPUs (only `resolve_device` is run: it builds devices,
    never uses them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


# --- resolve_device ------------------------------------------------------------------------------


def test_auto_is_the_cpu_without_cuda(no_cuda: None) -> None:
    assert runtime.resolve_device("auto") == torch.device("cpu")


def test_auto_is_cuda_when_present(with_cuda: None) -> None:
    assert runtime.resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("present", [False, True])
def test_cpu_is_the_cpu(monkeypatch: pytest.MonkeyPatch, present: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
    assert runtime.resolve_device("cpu") == torch.device("cpu")


def test_cuda_names_when_present(with_cuda: None) -> None:
    assert runtime.resolve_device("cuda") == torch.device("cuda")
    assert runtime.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"device 'cuda:2': only 2 CUDA device\(s\) here"):
        runtime.resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_cuda_says_so(no_cuda: None, name: str) -> None:
    with pytest.raises(
        ValueError, match=f"device '{name}' was asked for but CUDA is not available"
    ):
        runtime.resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "CPU", "Auto", "cuda0", "mps", "", " cpu"])
def test_bad_names_list_the_valid_ones(no_cuda: None, name: str) -> None:
    expected = rf"device must be one of \('auto', 'cpu', 'cuda'\) \(or cuda:N\), got {name!r}$"
    with pytest.raises(ValueError, match=expected):
        runtime.resolve_device(name)


@pytest.mark.parametrize("name", ["cuda:", "cuda:x", "cuda:-1"])
def test_malformed_cuda_index_is_a_bad_name(with_cuda: None, name: str) -> None:
    with pytest.raises(ValueError, match="device must be one of"):
        runtime.resolve_device(name)


# --- seed_everything -----------------------------------------------------------------------------


def draws() -> tuple[list[float], list[float], list[float]]:
    """A few numbers from each global generator: Python's, NumPy's and torch's."""
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
    )


def test_seed_everything_repeats_every_generator() -> None:
    runtime.seed_everything(5)
    first = draws()
    runtime.seed_everything(5)
    second = draws()
    for name, a, b in zip(("random", "numpy", "torch"), first, second):
        assert a == b, name
    runtime.seed_everything(6)
    other = draws()
    for name, a, b in zip(("random", "numpy", "torch"), first, other):
        assert a != b, name


def test_seed_everything_sets_the_documented_seeds() -> None:
    runtime.seed_everything(11)
    got = draws()
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    assert got == draws()


# --- rng_state / set_rng_state -------------------------------------------------------------------


CPU = torch.device("cpu")


def test_rng_state_restores_torch_stream_exactly(no_cuda: None) -> None:
    torch.manual_seed(0)
    torch.rand(5)  # somewhere in the middle of the stream
    state = runtime.rng_state(CPU)
    assert set(state) == {"torch"}  # no CUDA state on the CPU
    expected = [torch.rand(4), torch.randn(3, 2), torch.randint(0, 1000, (6,))]
    dropout = torch.nn.functional.dropout(torch.ones(50), p=0.5, training=True)
    runtime.set_rng_state(state, CPU)
    again = [torch.rand(4), torch.randn(3, 2), torch.randint(0, 1000, (6,))]
    assert all(torch.equal(a, b) for a, b in zip(expected, again))
    assert torch.equal(torch.nn.functional.dropout(torch.ones(50), p=0.5, training=True), dropout)
    # restoring again rewinds again: the captured state is a copy, not the live generator
    runtime.set_rng_state(state, CPU)
    assert torch.equal(torch.rand(4), expected[0])


def test_rng_state_is_a_checkpointable_tensor(no_cuda: None, tmp_path: Path) -> None:
    state = runtime.rng_state(CPU)
    torch.save(state, tmp_path / "rng.pt")
    expected = torch.rand(3)
    runtime.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), CPU)
    assert torch.equal(torch.rand(3), expected)


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch) -> dict[int, torch.Tensor]:
    """Three GPUs' generator states, by index, read and written through torch.cuda's per-device
    functions (torch defers CUDA calls until CUDA starts, so a real call could pass unnoticed)."""
    states = {index: torch.full((16,), index, dtype=torch.uint8) for index in range(3)}

    def get(device: torch.device) -> torch.Tensor:
        return states[torch.device(device).index or 0].clone()

    def set_state(state: torch.Tensor, device: torch.device) -> None:
        states[torch.device(device).index or 0] = state

    def every_gpu(*args: object) -> None:
        raise AssertionError("every visible GPU's generator was used")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", get)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_gpu)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", every_gpu)
    return states


def test_only_the_generator_of_the_device_in_use_is_saved_and_restored(
    fake_gpus: dict[int, torch.Tensor],
) -> None:
    """Issue #22: saving every visible GPU's generator, a resume under another
    CUDA_VISIBLE_DEVICES layout failed or left the process's own generator unrestored."""
    state = runtime.rng_state(torch.device("cuda", 1))
    assert torch.equal(state["cuda"], torch.full((16,), 1, dtype=torch.uint8))
    # resumed by a process that trains on cuda:0 (another layout): its own generator is set
    runtime.set_rng_state(state, torch.device("cuda", 0))
    assert torch.equal(fake_gpus[0], state["cuda"])
    assert torch.equal(fake_gpus[2], torch.full((16,), 2, dtype=torch.uint8))  # others untouched


def test_an_older_checkpoint_with_every_gpus_state_restores_the_devices_own(
    fake_gpus: dict[int, torch.Tensor],
) -> None:
    """Checkpoints written before each process kept its own GPU's generator hold a list of every
    visible GPU's state (`get_rng_state_all`), and their fingerprints still match."""
    older = [torch.full((16,), 10 + index, dtype=torch.uint8) for index in range(3)]
    runtime.set_rng_state({"torch": torch.get_rng_state(), "cuda": older}, torch.device("cuda", 1))
    assert torch.equal(fake_gpus[1], older[1])
    runtime.set_rng_state({"torch": torch.get_rng_state(), "cuda": older}, torch.device("cuda"))
    assert torch.equal(fake_gpus[0], older[0])


def test_a_gpu_state_is_skipped_on_the_cpu(fake_gpus: dict[int, torch.Tensor]) -> None:
    """A checkpoint written on a GPU machine resumes on the CPU: its CUDA state is skipped."""
    state = runtime.rng_state(torch.device("cuda", 2))
    before = {index: value.clone() for index, value in fake_gpus.items()}
    expected = torch.rand(3)
    runtime.set_rng_state(state, CPU)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(fake_gpus[i], before[i]) for i in fake_gpus)


@pytest.mark.gpu
def test_cuda_rng_state_round_trip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    device = torch.device("cuda", torch.cuda.device_count() - 1)
    torch.cuda.manual_seed_all(0)
    state = runtime.rng_state(device)
    assert state["cuda"].device == CPU  # what torch.cuda.set_rng_state takes back
    expected = torch.rand(4, device=device)
    runtime.set_rng_state(state, device)
    assert torch.equal(torch.rand(4, device=device), expected)
