"""fader/model/checkpoint.py: atomic saves, strict loads, no code run on load, round trips."""

from __future__ import annotations

import errno
import pickle
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from fader.config import ConfigError, to_dict
from fader.model import checkpoint
from fader.model.checkpoint import CheckpointError
from fader.model.networks import AttributeClassifier, AutoEncoder, ClassifierConfig, ModelConfig
from tests.conftest import make

ATTRS = ["Smiling", "Male"]


def fader_config() -> ModelConfig:
    # a skip connection and decoder dropout: eval mode must matter for the outputs to agree
    return make(
        ModelConfig,
        img_size=32,
        n_layers=4,
        n_attr=2,
        init_fm=4,
        max_fm=16,
        n_skip=1,
        decoder_dropout=0.3,
    )


def classifier_config() -> ClassifierConfig:
    return make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8, dropout=0.3)


def trained_a_little(net: nn.Module, forward) -> nn.Module:
    """`net` after a few train-mode passes: BatchNorm running statistics away from 0 and 1."""
    torch.manual_seed(0)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            forward(net, torch.rand(4, 3, 32, 32) * 2 - 1)
    return net


def run_fader(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])[: len(x)]
    return net(x, y)


def run_classifier(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x)


NETWORKS = {
    "fader": (fader_config, AutoEncoder, run_fader),
    "classifier": (classifier_config, AttributeClassifier, run_classifier),
}


def path_in(path: Path) -> str:
    """A pattern matching `path` literally (it holds regex characters such as `.`)."""
    return re.escape(str(path))


# --- save ----------------------------------------------------------------------------------------


def test_save_writes_the_payload_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "c.pt"
    checkpoint.save(target, {"kind": "fader", "step": 3, "weights": torch.arange(4.0)})
    checkpoint.save(target, {"kind": "fader", "step": 4, "weights": torch.arange(5.0)})
    assert [p.name for p in target.parent.iterdir()] == ["c.pt"]
    loaded = checkpoint.load(target, "fader")
    assert loaded["step"] == 4 and torch.equal(loaded["weights"], torch.arange(5.0))


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interruption: BaseException
) -> None:
    target = tmp_path / "c.pt"
    checkpoint.save(target, {"kind": "fader", "step": 1})
    before = target.read_bytes()
    written: list[Path] = []

    def half_then_fail(payload: object, path: Path) -> None:
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        written.append(Path(path))
        raise interruption

    monkeypatch.setattr(torch, "save", half_then_fail)
    expected = KeyboardInterrupt if isinstance(interruption, KeyboardInterrupt) else OSError
    with pytest.raises(expected):  # a failed write is a CheckpointWriteError (an OSError)
        checkpoint.save(target, {"kind": "fader", "step": 2})
    assert written and written[0] != target  # it wrote elsewhere first
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    monkeypatch.undo()
    assert checkpoint.load(target, "fader")["step"] == 1


# --- load: refusals ------------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    for absent in (tmp_path / "missing.pt", tmp_path):  # nothing, or a folder
        with pytest.raises(CheckpointError, match=f"checkpoint not found: {path_in(absent)}$"):
            checkpoint.load(absent, "fader")


@pytest.mark.parametrize(
    ("failure", "free", "message"),
    [
        (
            RuntimeError("basic_ios::clear: iostream error"),
            2**20,
            "the disk is full (1 MiB free in",
        ),
        (OSError(errno.ENOSPC, "No space left on device"), 2**30, "the disk is full"),
        (OSError(errno.EROFS, "Read-only file system"), 2**30, "is not writable"),
    ],
)
def test_a_failed_write_says_why_and_replaces_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception, free: int, message: str
) -> None:
    target = tmp_path / "last.pt"
    checkpoint.save(target, {"kind": "fader", "step": 1})

    def fail(payload: object, path: Path) -> None:
        Path(path).write_bytes(b"PK")
        raise failure

    monkeypatch.setattr(torch, "save", fail)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=free))
    with pytest.raises(checkpoint.CheckpointWriteError) as error:
        checkpoint.save(target, {"kind": "fader", "step": 2})
    assert str(error.value).startswith(f"cannot write checkpoint {target}: ")
    assert message in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left
    monkeypatch.undo()
    assert checkpoint.load(target, "fader")["step"] == 1


def test_corrupt_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    good = tmp_path / "good.pt"
    checkpoint.save(good, {"kind": "fader", "state": {"w": torch.ones(100)}})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path in (junk, truncated, empty):
        with pytest.raises(CheckpointError, match=f"cannot read checkpoint {path_in(path)}: ") as e:
            checkpoint.load(path, "fader")
        assert "delete it" in str(e.value)  # what to do about it


@pytest.mark.parametrize(
    "payload, found",
    [
        ({"kind": "classifier", "state": {}}, "'classifier'"),
        ({"state": {}}, "None"),
        (torch.zeros(2), "'Tensor'"),
        ([{"kind": "fader"}], "'list'"),
    ],
)
def test_other_kinds_are_refused(tmp_path: Path, payload: object, found: str) -> None:
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"{path_in(path)} is not a fader checkpoint"):
        checkpoint.load(path, "fader")
    with pytest.raises(CheckpointError, match=f"found {re.escape(found)}"):
        checkpoint.load(path, "fader")


class _Exploit:
    """Unpickling this calls `_write_marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


def _write_marker(path: str) -> dict:
    Path(path).write_text("code ran on load")
    return {}


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_load_never_runs_code_from_the_file(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    payload = {"kind": "fader", "state": _Exploit(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {path_in(path)}"):
        checkpoint.load(path, "fader")
    with pytest.raises(CheckpointError, match=path_in(path)):
        checkpoint.load_network(path, "fader")
    assert not marker.exists()
    # the file is live: an unrestricted unpickler does run its code
    if writer == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with path.open("rb") as f:
            pickle.load(f)
    assert marker.read_text() == "code ran on load"


# --- networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fader", "classifier"])
def test_network_round_trip_gives_the_same_outputs(tmp_path: Path, kind: str) -> None:
    make_config, network, forward = NETWORKS[kind]
    cfg = make_config()
    net = trained_a_little(network(cfg), forward)
    payload = checkpoint.network_payload(kind, net, ATTRS, epoch=3)
    assert payload["kind"] == kind and payload["epoch"] == 3
    assert payload["config"] == to_dict(cfg) and payload["attributes"] == ATTRS
    assert payload["attributes"] is not ATTRS
    checkpoint.save(tmp_path / "net.pt", payload)

    loaded, attributes = checkpoint.load_network(tmp_path / "net.pt", kind)
    assert type(loaded) is network and loaded.cfg == cfg
    assert attributes == ATTRS
    assert not loaded.training and not any(m.training for m in loaded.modules())
    state, saved = loaded.state_dict(), net.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in state)  # running statistics too
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    net.eval()
    with torch.no_grad():
        expected = forward(net, x)
        assert torch.equal(forward(loaded, x), expected)
        assert torch.equal(forward(loaded, x), expected)  # eval: no dropout, deterministic
        torch.manual_seed(1)
        assert not torch.allclose(forward(network(cfg).eval(), x), expected)  # weights matter


@pytest.mark.parametrize("kind", ["fader", "classifier"])
def test_network_of_the_other_kind_is_refused(tmp_path: Path, kind: str) -> None:
    make_config, network, forward = NETWORKS[kind]
    checkpoint.save(
        tmp_path / "net.pt", checkpoint.network_payload(kind, network(make_config()), ATTRS)
    )
    other = "classifier" if kind == "fader" else "fader"
    with pytest.raises(CheckpointError, match=f"is not a {other} checkpoint \\(found '{kind}'\\)"):
        checkpoint.load_network(tmp_path / "net.pt", other)


@pytest.mark.parametrize("kind", ["fader", "classifier"])
@pytest.mark.parametrize("change", ["missing", "unknown"])
def test_stored_config_with_a_bad_key_is_refused(tmp_path: Path, kind: str, change: str) -> None:
    make_config, network, _ = NETWORKS[kind]
    payload = checkpoint.network_payload(kind, network(make_config()), ATTRS)
    if change == "missing":
        del payload["config"]["n_attr"]
        message = r"missing key\(s\) \['n_attr'\]"
    else:
        payload["config"]["n_atr"] = 2
        message = r"unknown key\(s\) \['n_atr'\]"
    path = tmp_path / "net.pt"
    checkpoint.save(path, payload)
    with pytest.raises(ConfigError, match=f"{path_in(path)}: config: {message}"):
        checkpoint.load_network(path, kind)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs; needs root, as CI has): writes past it fail with ENOSPC."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_says_so_keeps_the_old_file_and_a_rerun_succeeds(small_disk: Path) -> None:
    target = small_disk / "ckpt" / "last.pt"
    checkpoint.save(target, {"kind": "fader_training", "w": torch.zeros(1000)})
    before = target.read_bytes()
    big = {"kind": "fader_training", "w": torch.zeros(400_000)}  # 1.6 MB
    with pytest.raises(checkpoint.CheckpointWriteError, match=r"the disk is full \(\d+ MiB free"):
        checkpoint.save(target, big)
    assert target.read_bytes() == before  # nothing replaced
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.pt"]  # nothing half-written
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)  # space freed
    checkpoint.save(target, big)
    assert checkpoint.load(target, "fader_training")["w"].shape == (400_000,)


def test_a_read_only_folder_says_so(small_disk: Path) -> None:
    target = small_disk / "last.pt"
    checkpoint.save(target, {"kind": "fader_training"})
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(checkpoint.CheckpointWriteError, match="is not writable"):
        checkpoint.save(target, {"kind": "fader_training", "step": 2})
    assert checkpoint.load(target, "fader_training") == {"kind": "fader_training"}


def test_weights_that_do_not_fit_their_config_are_refused(tmp_path: Path) -> None:
    small = make(ModelConfig, img_size=32, n_layers=4, n_attr=1, init_fm=4, max_fm=16)
    wider = make(ModelConfig, img_size=32, n_layers=4, n_attr=1, init_fm=8, max_fm=16)
    payload = checkpoint.network_payload("fader", AutoEncoder(small), ["Smiling"])
    payload["state"] = AutoEncoder(wider).state_dict()  # another architecture's tensors
    checkpoint.save(tmp_path / "odd.pt", payload)
    with pytest.raises(CheckpointError, match=r"odd.pt: its weights do not fit the network"):
        checkpoint.load_network(tmp_path / "odd.pt", "fader")
