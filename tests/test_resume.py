"""fader/train/resume.py: one resume path for both trainers, loud when last.pt does not fit."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from fader import io
from fader.data.prepared import PreparedDataset
from fader.model import checkpoint
from fader.model.networks import ClassifierConfig
from fader.train import classifier as classifier_training
from fader.train.config import ClassifierTrainConfig
from fader.train.resume import LAST, LastCheckpoint, differences, locked
from tests.conftest import make
from tests.test_training import CONFIG, count_steps, prepared, run

__all__ = ["prepared"]  # the fixture, shared with tests/test_training.py

CLASSIFIER = make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8)
CLASSIFIER_TRAINING = make(ClassifierTrainConfig, batch_size=4, max_epochs=2, device="cpu")


def train_classifier(prepared: Path, folder: Path, config: ClassifierTrainConfig) -> list:
    train = PreparedDataset(prepared, "train", flip=True)
    valid = PreparedDataset(prepared, "valid")
    _, history = classifier_training.train_classifier(
        train, valid, CLASSIFIER, config, seed=0, progress=False, checkpoint_dir=folder
    )
    return history


def test_differences_name_each_changed_key_old_and_new() -> None:
    saved = {"train": {"lr": 0.1, "log_every": 5}, "seed": 1, "data": {"digest": "a"}}
    current = {"train": {"lr": 0.2, "flip": True}, "seed": 1, "data": {"digest": "a"}}
    assert differences(saved, current) == ["train.lr: 0.1 → 0.2", "train.flip: absent → True"]
    # a key only the saved fingerprint has (log_every, before it stopped counting) is none
    assert differences(saved, {"train": {"lr": 0.1}, "seed": 1}) == []


def test_a_mismatched_fader_checkpoint_is_moved_aside_with_a_warning(
    prepared: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "ckpt"
    run(prepared, folder, replace(CONFIG, n_epochs=1))
    before = (folder / LAST).read_bytes()
    steps = count_steps(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="fader.train.resume"):
        run(prepared, folder, replace(CONFIG, n_epochs=1, lambda_max=0.02))
    assert len(steps) == CONFIG.steps_per_epoch  # afresh
    aside = folder / "last.mismatch-1.pt"
    assert aside.read_bytes() == before  # kept, not overwritten
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"{folder / LAST} was made with other settings" in record.message
    assert "train.lambda_max: 0.01 → 0.02" in record.message
    assert f"moved it to {aside}" in record.message
    # the next mismatch takes the next free name
    run(prepared, folder, replace(CONFIG, n_epochs=1, lambda_max=0.03))
    assert (folder / "last.mismatch-2.pt").is_file() and aside.read_bytes() == before


def test_a_checkpoint_past_the_epochs_asked_for_is_moved_aside(
    prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ckpt"
    run(prepared, folder)
    with caplog.at_level(logging.WARNING, logger="fader.train.resume"):
        shorter = run(prepared, folder, replace(CONFIG, n_epochs=1))
    assert len(shorter["history"]) == 1
    assert "epoch 2, past the 1 asked for" in caplog.text
    assert checkpoint.load(folder / "last.mismatch-1.pt", "fader_training")["epoch"] == 2


def test_logging_and_validation_settings_do_not_discard_a_run(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log_every and valid_size change no step: a run goes on when they change."""
    folder = tmp_path / "ckpt"
    run(prepared, folder, replace(CONFIG, n_epochs=1))
    steps = count_steps(monkeypatch)
    run(prepared, folder, replace(CONFIG, n_epochs=2, log_every=4, valid_size=2))
    assert len(steps) == CONFIG.steps_per_epoch  # continued: only epoch 2 was trained
    assert [path.name for path in folder.glob("last*")] == [LAST]


def test_a_mismatched_classifier_checkpoint_is_moved_aside_with_a_warning(
    prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ck"
    train_classifier(prepared, folder, CLASSIFIER_TRAINING)
    before = (folder / LAST).read_bytes()
    with caplog.at_level(logging.WARNING, logger="fader.train.resume"):
        faster = replace(CLASSIFIER_TRAINING, learning_rate=2e-3)
        history = train_classifier(prepared, folder, faster)
    assert len(history) == 2  # trained afresh
    assert "train.learning_rate: 0.001 → 0.002" in caplog.text
    assert (folder / "last.mismatch-1.pt").read_bytes() == before


@pytest.mark.parametrize("trainer", ["fader", "classifier"])
def test_both_trainers_lock_the_checkpoint_folder(
    prepared: Path, tmp_path: Path, trainer: str
) -> None:
    folder = tmp_path / "ckpt"
    with locked(folder), pytest.raises(io.LockedError, match=f"the checkpoint folder {folder}"):
        if trainer == "fader":
            run(prepared, folder)
        else:
            train_classifier(prepared, folder, CLASSIFIER_TRAINING)


def test_last_pt_is_read_onto_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #22: read with map_location=<the GPU>, the saved RNG states became CUDA tensors,
    which torch.set_rng_state and Generator.set_state refuse: every GPU resume failed. The
    state is read onto the CPU; load_state_dict moves weights to their networks' device."""
    saved = LastCheckpoint(tmp_path, "fader_training", {"seed": 1})
    saved.save({"epoch": 1, "sampler": torch.Generator().get_state()})
    locations = []
    load = checkpoint.load

    def spy(path: Path, kind: str, map_location: str | torch.device = "cpu") -> dict:
        locations.append(torch.device(map_location))
        return load(path, kind, map_location)

    monkeypatch.setattr(checkpoint, "load", spy)
    state = saved.load(epochs=1)
    assert state is not None and locations == [torch.device("cpu")]
    torch.Generator().set_state(state["sampler"])
