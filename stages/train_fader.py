"""`fader train`: the Fader network's adversarial training loop."""

from pathlib import Path

import typer

from fader import checkpoint, io
from fader.data import PreparedDataset
from fader.model import ModelConfig
from fader.training import BEST_SWAP, TrainConfig, train_fader
from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder."),
    classifier: Path = typer.Option(..., help="Classifier checkpoint (the swap judge)."),
    checkpoints: Path = typer.Option(..., help="Folder for resumable and best checkpoints."),
    out: Path = typer.Option(..., help="Selected model to write (best swap accuracy)."),
    metrics: Path = typer.Option(..., help="Metrics JSON to write."),
    live: Path = typer.Option(..., help="DVCLive folder for per-step and per-epoch plots."),
    params: Path = _common.ParamsOption,
) -> None:
    """Train, resuming from the checkpoint folder when its settings match."""
    all_params = _common.load_params(params)
    seed = _common.seed(all_params)
    _common.setup(seed)
    config = _common.build(TrainConfig, _common.section(all_params, "train_fader"), "train_fader")
    train = PreparedDataset(data, "train", flip=config.flip)
    valid = PreparedDataset(data, "valid")
    shape = {"img_size": train.img_size, "n_attr": len(train.attributes)}
    model = _common.build(ModelConfig, {**_common.section(all_params, "model"), **shape}, "model")
    judge, judged = checkpoint.load_classifier(classifier)
    if judged != train.attributes:
        raise ValueError(f"{classifier} judges {judged}, but the data has {train.attributes}: "
                         "retrain the classifier (dvc repro train_classifier)")  # fmt: skip
    with _common.dvclive_logger(live) as logger:
        result = train_fader(train, valid, judge, model, config, checkpoints, seed, logger)
    io.copy_file(checkpoints / BEST_SWAP, out)
    history = {r["epoch"]: r for r in result["history"]}
    _common.write_metrics(metrics, {
        "selected_epoch": result["best_swap_epoch"],
        "selected": history[result["best_swap_epoch"]],
        "best_recon_epoch": result["best_recon_epoch"],
        "last": result["history"][-1],
    })  # fmt: skip
