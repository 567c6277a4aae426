"""`fader evaluate`: reconstruction, swap accuracy and FID on the test split."""

from pathlib import Path

import typer

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
    from fader import io, runtime
    from fader.data.prepared import PreparedDataset
    from fader.eval.evaluate import EvaluateConfig, ablation_table, evaluate
    from fader.model import checkpoint

    all_params = _common.Params(params)
    config = all_params.build(EvaluateConfig, "evaluate")
    _common.setup(all_params.seed)
    device = runtime.resolve_device(config.device)
    autoencoder, attributes = checkpoint.load_network(model, "fader")
    judge, judged_attributes = checkpoint.load_network(classifier, "classifier")
    test = PreparedDataset(data, "test", attributes=attributes)
    if judged_attributes != attributes:
        raise ValueError(f"{classifier} judges {judged_attributes}, but {model} edits {attributes}")
    for name, size in ((model, autoencoder.cfg.img_size), (classifier, judge.cfg.img_size)):
        if size != test.img_size:
            raise ValueError(
                f"{name} works at {size} px but {data} is prepared at {test.img_size} px"
            )
    net = None
    if config.fid_images:
        from fader.eval.inception import build_inception

        net = build_inception(inception, device)
    result = evaluate(autoencoder, judge, test, config, net, device)
    result["table"] = ablation_table(result)
    if net is not None:
        # official, fid-helper-converted or unverified
        result["inception_weights"] = net.weights_origin
    io.write_json(curve, result.pop("swap_curve"))
    io.write_json(metrics, result)
