"""`fader train-classifier`: the attribute classifier that judges swaps."""

from pathlib import Path

import typer

from fader import checkpoint
from fader.classifier import ClassifierTrainConfig, accuracy, train_classifier
from fader.data import PreparedDataset
from fader.model import ClassifierConfig
from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder."),
    out: Path = typer.Option(..., help="Classifier checkpoint to write."),
    metrics: Path = typer.Option(..., help="Metrics JSON to write."),
    params: Path = _common.ParamsOption,
) -> None:
    """Train on the train split, stop early on valid, report test accuracy per attribute."""
    all_params = _common.load_params(params)
    seed = _common.seed(all_params)
    _common.setup(seed)
    train = PreparedDataset(data, "train", flip=False)
    shape = {"img_size": train.img_size, "n_attr": len(train.attributes)}
    model, config = _common.build_many(
        _common.section(all_params, "train_classifier"), "train_classifier",
        (ClassifierConfig, shape), (ClassifierTrainConfig, {}),
    )  # fmt: skip
    train.flip = config.flip
    classifier, history = train_classifier(
        train, PreparedDataset(data, "valid"), model, config, seed
    )
    test = accuracy(classifier, PreparedDataset(data, "test"))
    checkpoint.save(out, {"kind": "classifier", "config": model.to_dict(),
                          "attributes": train.attributes, "state": classifier.state_dict()})  # fmt: skip
    _common.write_metrics(metrics, {"test_accuracy": test, "epochs": len(history),
                                    "best_valid_accuracy": max(
                                        h["valid_accuracy"]["mean"] for h in history)})  # fmt: skip
