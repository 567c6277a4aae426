"""`fader train`: the Fader network's adversarial training loop, in one process or several."""

import sys
from pathlib import Path

import typer

from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder."),
    classifier: Path = typer.Option(..., help="Classifier checkpoint (the swap judge)."),
    checkpoints: Path = typer.Option(..., help="Folder for resumable and best checkpoints."),
    out: Path = typer.Option(
        ...,
        help="Selected model to write, by train_fader.selection: the epoch of best swap "
        "accuracy (best_swap) or the last epoch (last).",
    ),
    metrics: Path = typer.Option(..., help="Metrics JSON to write."),
    live: Path = typer.Option(..., help="DVCLive folder for per-step and per-epoch plots."),
    nproc: int | None = typer.Option(
        None,
        min=1,
        help="Training processes on this machine (torchrun); default train_fader.nproc. "
        "Under torchrun (multi-node) the launch decides instead.",
    ),
    params: Path = _common.ParamsOption,
) -> None:
    """Train, resuming from the checkpoint folder when its settings match."""
    from fader import io
    from fader.data.prepared import PreparedDataset
    from fader.model import checkpoint
    from fader.model.networks import ModelConfig
    from fader.train import distributed
    from fader.train.config import TrainConfig
    from fader.train.trainer import BEST_SWAP, FINAL, train_fader

    all_params = _common.Params(params)
    seed = all_params.seed
    config = all_params.build(TrainConfig, "train_fader")
    _common.setup(seed, config.deterministic)
    processes = nproc if nproc is not None else config.nproc
    if processes > 1 and not distributed.launched():
        raise typer.Exit(_launch(processes))
    train = PreparedDataset(data, "train", flip=config.flip)
    valid = PreparedDataset(data, "valid")
    shape = {"img_size": train.img_size, "n_attr": len(train.attributes)}
    model = all_params.build(ModelConfig, "model", shape)
    judge, judged_attributes = checkpoint.load_network(classifier, "classifier")
    if judged_attributes != train.attributes:
        raise ValueError(
            f"{classifier} judges {judged_attributes}, but the data has {train.attributes}: "
            "retrain the classifier (dvc repro train_classifier)"
        )
    group, device = distributed.join(config.device)
    try:
        with _common.dvclive_logger(live, enabled=group.is_main) as logger:
            result = train_fader(
                train,
                valid,
                judge,
                model,
                config,
                checkpoints,
                seed,
                logger,
                group=group,
                device=device,
            )
    finally:
        distributed.leave()
    if not group.is_main:
        return
    history = {r["epoch"]: r for r in result["history"]}
    if config.selection == "best_swap":
        selected, epoch = BEST_SWAP, result["best_swap_epoch"]
    else:
        selected, epoch = FINAL, result["history"][-1]["epoch"]
    io.copy_file(checkpoints / selected, out)
    io.write_json(
        metrics,
        {
            "selected_epoch": epoch,
            "selected": history[epoch],
            "best_recon_epoch": result["best_recon_epoch"],
            "last": result["history"][-1],
        },
    )


def _launch(nproc: int) -> int:
    """This command again in `nproc` processes (torchrun's --standalone); their exit code.

    torchrun forwards SIGTERM and SIGINT to the processes and stops them all when one fails;
    each process prints its own error.
    """
    from torch.distributed import run

    args = _without_nproc(sys.argv[1:])
    try:
        run.main(["--standalone", f"--nproc-per-node={nproc}", "--module", "stages.cli", *args])
    except SystemExit as stop:
        return int(stop.code or 0)
    except Exception as error:  # torchrun's ChildFailedError, after the processes' own errors
        raise RuntimeError(f"{nproc} training processes failed ({type(error).__name__})") from None
    return 0


def _without_nproc(args: list[str]) -> list[str]:
    """The command line without `--nproc N` / `--nproc=N` (the processes must not relaunch)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept
