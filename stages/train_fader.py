"""`fader train`: the Fader network's adversarial training loop."""

from pathlib import Path

import typer

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
    from fader import io
    from fader.data.prepared import PreparedDataset
    from fader.model import checkpoint
    from fader.model.networks import ModelConfig
    from fader.train.config import TrainConfig
    from fader.train.trainer import BEST_SWAP, train_fader

    all_params = _common.Params(params)
    seed = all_params.seed
    _common.setup(seed)
    config = all_params.build(TrainConfig, "train_fader")
    train = PreparedDataset(data, "train", flip=config.flip)
    valid = PreparedDataset(data, "valid")
    shape = {"img_size": train.img_size, "n_attr": len(train.attributes)}
    model = all_params.build(ModelConfig, "model", shape)
    judge, judged = checkpoint.load_network(classifier, "classifier")
    if judged != train.attributes:
        raise ValueError(
            f"{classifier} judges {judged}, but the data has {train.attributes}: "
            "retrain the classifier (dvc repro train_classifier)"
        )
    with _common.dvclive_logger(live) as logger:
        result = train_fader(train, valid, judge, model, config, checkpoints, seed, logger)
    io.copy_file(checkpoints / BEST_SWAP, out)
    history = {r["epoch"]: r for r in result["history"]}
    io.write_json(
        metrics,
        {
            "selected_epoch": result["best_swap_epoch"],
            "selected": history[result["best_swap_epoch"]],
            "best_recon_epoch": result["best_recon_epoch"],
            "last": result["history"][-1],
        },
    )
