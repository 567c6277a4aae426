"""`fader train-classifier`: the attribute classifier that judges swaps."""

from pathlib import Path

import typer

from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder."),
    out: Path = typer.Option(..., help="Classifier checkpoint to write."),
    metrics: Path = typer.Option(..., help="Metrics JSON to write."),
    checkpoints: Path | None = typer.Option(
        None, help="Folder for the resumable state (last.pt): an interrupted run goes on."
    ),
    params: Path = _common.ParamsOption,
) -> None:
    """Train on the train split, stop early on valid, report test accuracy per attribute."""
    from fader import io
    from fader.data.prepared import PreparedDataset
    from fader.model import checkpoint
    from fader.model.networks import ClassifierConfig
    from fader.train.classifier import accuracy, train_classifier
    from fader.train.config import ClassifierTrainConfig

    all_params = _common.Params(params)
    _common.setup(all_params.seed)
    config = all_params.build(ClassifierTrainConfig, "train_classifier", {}, [ClassifierConfig])
    train = PreparedDataset(data, "train", flip=config.flip)
    shape = {"img_size": train.img_size, "n_attr": len(train.attributes)}
    model = all_params.build(ClassifierConfig, "train_classifier", shape, [ClassifierTrainConfig])
    valid = PreparedDataset(data, "valid")
    classifier, history = train_classifier(
        train, valid, model, config, all_params.seed, checkpoint_dir=checkpoints
    )
    test = accuracy(classifier, PreparedDataset(data, "test"))
    checkpoint.save(out, checkpoint.network_payload("classifier", classifier, train.attributes))
    best = max(h["valid_accuracy"]["mean"] for h in history)
    io.write_json(
        metrics, {"test_accuracy": test, "epochs": len(history), "best_valid_accuracy": best}
    )
