"""`fader evaluate`: reconstruction, swap accuracy and FID on the test split."""

from pathlib import Path

import typer

from fader import checkpoint, io, runtime
from fader.data import PreparedDataset
from fader.evaluation import EvaluateConfig, ablation_table, evaluate
from fader.inception import build_inception
from stages import _common


def main(
    data: Path = typer.Option(..., help="Prepared dataset folder."),
    model: Path = typer.Option(..., help="Fader checkpoint (from `fader train`)."),
    classifier: Path = typer.Option(..., help="Classifier checkpoint (the judge)."),
    inception: Path = typer.Option(..., help="FID Inception weights (from `fader inception`)."),
    metrics: Path = typer.Option(..., help="Metrics JSON to write."),
    curve: Path = typer.Option(..., help="Swap accuracy vs alpha (JSON rows, a DVC plot)."),
    params: Path = _common.ParamsOption,
) -> None:
    """Judge the selected model on the test split."""
    all_params = _common.load_params(params)
    config = _common.build(EvaluateConfig, _common.section(all_params, "evaluate"), "evaluate")
    _common.setup(_common.seed(all_params))
    device = runtime.resolve_device(config.device)
    autoencoder, attributes = checkpoint.load_fader(model)
    judge, judged = checkpoint.load_classifier(classifier)
    test = PreparedDataset(data, "test", attributes=attributes)
    if judged != attributes:
        raise ValueError(f"{classifier} judges {judged}, but {model} edits {attributes}")
    net = build_inception(inception, device) if config.fid_images else None
    result = evaluate(autoencoder, judge, test, config, net, device)
    result["table"] = ablation_table(result)
    io.write_json(curve, result.pop("swap_curve"))
    _common.write_metrics(metrics, result)
