from pathlib import Path

import pytest
import torch
from torch import nn

from fader.config import to_dict
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import PreprocessConfig, prepare
from fader.model import checkpoint
from fader.model.networks import ClassifierConfig
from fader.train.classifier import accuracy, train_classifier
from fader.train.config import ClassifierTrainConfig
from tests.conftest import make

ATTRS = ("Smiling", "Male")


@pytest.fixture
def prepared(raw_celeba: Path, tmp_path: Path) -> Path:
    config = make(PreprocessConfig, img_size=32, attributes=ATTRS, workers=1)
    prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
    return tmp_path / "prepared"


class Constant(nn.Module):
    """Predicts the same logits for every image."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def test_accuracy_counts_hits_per_attribute(prepared: Path) -> None:
    data = PreparedDataset(prepared, "train")
    scores = accuracy(Constant([5.0, -5.0]), data, batch_size=3)
    expected = [(data.labels[:, 0] == 1).float().mean(), (data.labels[:, 1] == 0).float().mean()]
    assert scores["Smiling"] == pytest.approx(expected[0].item())
    assert scores["Male"] == pytest.approx(expected[1].item())
    assert scores["mean"] == pytest.approx((scores["Smiling"] + scores["Male"]) / 2)


def test_training_stops_early_and_keeps_the_best(prepared: Path, tmp_path: Path) -> None:
    model = make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8)
    config = make(ClassifierTrainConfig, batch_size=4, max_epochs=6, patience=1, device="cpu")
    train, valid = PreparedDataset(prepared, "train", flip=True), PreparedDataset(prepared, "valid")
    classifier, history = train_classifier(train, valid, model, config, seed=0, progress=False)
    best = max(h["valid_accuracy"]["mean"] for h in history)
    assert accuracy(classifier, valid)["mean"] == pytest.approx(best)
    assert len(history) <= 6
    # the saved form round-trips through the checkpoint loader
    checkpoint.save(
        tmp_path / "c.pt",
        {
            "kind": "classifier",
            "config": to_dict(model),
            "attributes": list(ATTRS),
            "state": classifier.state_dict(),
        },
    )
    loaded, attributes = checkpoint.load_network(tmp_path / "c.pt", "classifier")
    assert attributes == list(ATTRS)
    x, _ = valid.batch([0, 1])
    assert torch.equal(loaded(x), classifier(x))


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        checkpoint.load_network(tmp_path / "missing.pt", "classifier")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load_network(tmp_path / "junk.pt", "classifier")
    checkpoint.save(tmp_path / "other.pt", {"kind": "fader"})
    with pytest.raises(checkpoint.CheckpointError, match="not a classifier"):
        checkpoint.load_network(tmp_path / "other.pt", "classifier")


@pytest.mark.parametrize("overrides", [{"batch_size": 0}, {"patience": 0}, {"learning_rate": 0}])
def test_bad_config(overrides: dict) -> None:
    with pytest.raises(ValueError):
        make(ClassifierTrainConfig, **overrides)
