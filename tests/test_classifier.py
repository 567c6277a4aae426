from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

import fader.train.classifier as classifier_module
from fader.config import to_dict
from fader.data.config import PreprocessConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.model import checkpoint
from fader.model.networks import AttributeClassifier, ClassifierConfig
from fader.train import classifier as classifier_training
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


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_stops_early_and_keeps_the_best(
    prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validation scores are scripted, so the best epoch is known and is not the last.

    They do not steer training: the weights after epoch k are those of any run with the seed.
    """
    model = make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8)
    train, valid = PreparedDataset(prepared, "train", flip=True), PreparedDataset(prepared, "valid")

    def fit(means: list[float], max_epochs: int, patience: int):
        scores = iter(means)

        def scripted(net: nn.Module, data: PreparedDataset, **_: object) -> dict[str, float]:
            mean = next(scores)
            return {**dict.fromkeys(data.attributes, mean), "mean": mean}

        monkeypatch.setattr(classifier_training, "accuracy", scripted)
        config = make(
            ClassifierTrainConfig,
            batch_size=4,
            max_epochs=max_epochs,
            patience=patience,
            device="cpu",
        )
        return train_classifier(train, valid, model, config, seed=0, progress=False)

    classifier, history = fit([0.5, 0.9, 0.6, 0.7, 1.0, 1.0], max_epochs=6, patience=2)
    # two epochs without a better score after epoch 2: epochs 5 and 6 never run
    assert [h["valid_accuracy"]["mean"] for h in history] == [0.5, 0.9, 0.6, 0.7]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    after_two, _ = fit([0.5, 0.9], max_epochs=2, patience=2)  # every epoch better: the last
    after_four, _ = fit([0.1, 0.2, 0.3, 0.4], max_epochs=4, patience=2)
    assert same_weights(classifier, after_two)  # the weights of the best epoch...
    assert not same_weights(classifier, after_four)  # ...not of the last one
    assert not classifier.training
    # a tie is not better: patience 1 stops after the first epoch that does not improve
    _, history = fit([0.5, 0.5, 0.9], max_epochs=3, patience=1)
    assert len(history) == 2


def test_an_interrupted_run_resumes_to_the_same_classifier(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8)
    config = make(ClassifierTrainConfig, batch_size=4, max_epochs=4, patience=4, device="cpu")
    train, valid = PreparedDataset(prepared, "train", flip=True), PreparedDataset(prepared, "valid")
    straight, straight_history = train_classifier(train, valid, model, config, 0, False)
    real_accuracy = classifier_module.accuracy
    calls = []

    def killed_in_epoch_three(net, data, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the validation of epoch 3: epochs 1 and 2 are saved
            raise KeyboardInterrupt
        return real_accuracy(net, data, *args, **kwargs)

    monkeypatch.setattr(classifier_module, "accuracy", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(train, valid, model, config, 0, False, tmp_path / "ck")
    assert checkpoint.load(tmp_path / "ck" / "last.pt", "classifier_training")["epoch"] == 2
    epochs = []
    monkeypatch.setattr(
        classifier_module, "accuracy", lambda *a, **k: epochs.append(1) or real_accuracy(*a, **k)
    )
    resumed, history = train_classifier(train, valid, model, config, 0, False, tmp_path / "ck")
    assert len(epochs) == 2  # epochs 3 and 4 only
    assert history == straight_history
    assert same_weights(resumed, straight)
    # a finished run is read back, not retrained
    epochs.clear()
    again, _ = train_classifier(train, valid, model, config, 0, False, tmp_path / "ck")
    assert not epochs and same_weights(again, straight)


def test_the_training_loss_is_read_from_the_device_once_per_epoch(
    prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No host sync per step: the loss is summed on the device (in float64, as the Python sum
    of `loss.item() * len(x)` was) and read once at the end of each epoch."""
    model = make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8)
    config = make(ClassifierTrainConfig, batch_size=4, max_epochs=2, patience=2, device="cpu")
    train, valid = PreparedDataset(prepared, "train", flip=True), PreparedDataset(prepared, "valid")
    size = config.batch_size
    assert len(train) > size  # several steps per epoch
    losses: list[torch.Tensor] = []
    bce = classifier_module.F.binary_cross_entropy_with_logits
    monkeypatch.setattr(
        classifier_module.F,
        "binary_cross_entropy_with_logits",
        lambda *a, **k: losses.append(bce(*a, **k)) or losses[-1],
    )
    items = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: items.append(1) or item(t))
    _, history = train_classifier(train, valid, model, config, 0, False)
    assert len(items) == config.max_epochs
    per_epoch = len(losses) // config.max_epochs
    for epoch, record in enumerate(history):
        total = 0.0
        for loss, start in zip(losses[epoch * per_epoch :], range(0, len(train), size)):
            total += loss.item() * len(range(start, min(start + size, len(train))))
        assert record["train_loss"] == total / len(train)  # the former Python sum, exactly


def test_trained_classifier_round_trips_through_the_checkpoint(
    prepared: Path, tmp_path: Path
) -> None:
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
    assert not torch.equal(AttributeClassifier(model).eval()(x), classifier(x))  # weights matter


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        checkpoint.load_network(tmp_path / "missing.pt", "classifier")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load_network(tmp_path / "junk.pt", "classifier")
    checkpoint.save(tmp_path / "other.pt", {"kind": "fader"})
    with pytest.raises(checkpoint.CheckpointError, match="not a classifier"):
        checkpoint.load_network(tmp_path / "other.pt", "classifier")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"batch_size": 0}, r"batch_size\s+Input should be greater than or equal to 1"),
        ({"patience": 0}, r"patience\s+Input should be greater than or equal to 1"),
        ({"learning_rate": 0}, r"learning_rate\s+Input should be greater than 0"),
    ],
)
def test_bad_config(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(ClassifierTrainConfig, **overrides)


@pytest.mark.gpu
def test_a_classifier_on_a_gpu_resumes(prepared: Path, tmp_path: Path) -> None:
    """Issue #22: last.pt read onto the GPU held its RNG states there, which torch refuses."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8)
    config = make(ClassifierTrainConfig, batch_size=4, max_epochs=1, patience=4, device="cuda")
    train, valid = PreparedDataset(prepared, "train", flip=True), PreparedDataset(prepared, "valid")
    train_classifier(train, valid, model, config, 0, False, tmp_path / "ck")
    longer = replace(config, max_epochs=2)
    _, history = train_classifier(train, valid, model, longer, 0, False, tmp_path / "ck")
    assert [h["epoch"] for h in history] == [1, 2]
