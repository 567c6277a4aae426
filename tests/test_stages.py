"""The whole pipeline through the `fader` CLI, on a tiny configuration.

A module fixture runs every stage once, in dvc.yaml's order and with dvc.yaml's own command
lines, in a scratch copy of the project layout. Its params.yaml is the repository's with small
overrides (60 synthetic faces at 32 px, a few training steps, no FID). The tests then read what
the stages wrote, edit a photo with the trained model, convert the FID Inception weights and
compute a 4-image FID (`slow`: each Fréchet distance is a 2048x2048 matrix square root), feed
the CLI bad inputs (each must exit non-zero with a clear message and write nothing), and re-run
`fader train` to check that it resumes from its checkpoints instead of training again.

Paths are never spelled here: `command()` takes them from dvc.yaml and moves a stage's inputs
and outputs to the folders a test chooses.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import Result
from PIL import Image
from typer.testing import CliRunner

from fader.data import formats
from fader.eval.inception import FID_HELPER_PACKAGE, check_state_dict
from fader.image import GUTTER
from fader.model import checkpoint
from fader.report.curves import read_curves
from fader.report.render import interpolation_file
from fader.train import trainer
from fader.train.resume import LAST
from fader.train.trainer import BEST_RECON, BEST_SWAP, FINAL
from stages import _common
from stages.cli import app

REPO = Path(__file__).resolve().parents[1]
DVC_YAML: dict[str, Any] = yaml.safe_load((REPO / "dvc.yaml").read_text())
DVC_STAGES: dict[str, dict[str, Any]] = DVC_YAML["stages"]

#: Deep-merged into the repository's params.yaml: every stage runs in seconds on a CPU.
TINY: dict[str, Any] = {
    "data": {"synthetic_size": 60, "img_size": 32, "workers": 1},
    "model": {"n_layers": 4, "init_fm": 4, "max_fm": 16},
    "train_classifier": {
        "init_fm": 4,
        "max_fm": 16,
        "batch_size": 16,
        "max_epochs": 1,
        "device": "cpu",
    },
    "train_fader": {
        "batch_size": 8,
        "epoch_size": 64,
        "n_epochs": 2,
        "lambda_schedule": 8,
        "log_every": 4,
        "device": "cpu",
    },
    "evaluate": {"fid_images": 0, "batch_size": 8, "device": "cpu"},
    "render": {"n_images": 2, "n_alphas": 3, "device": "cpu"},
}

#: The stages of the fast path, in dvc.yaml's order; `inception` only runs in the FID test.
FAST_STAGES = [name for name in DVC_STAGES if name != "inception"]


# ---------------------------------------------------------------------------------------------
# Helpers


def tiny_params() -> dict[str, Any]:
    """The repository's params.yaml with the `TINY` overrides (a key it lacks is an error)."""
    return _common.merge_overrides(_common.read_mapping(REPO / "params.yaml"), TINY, "TINY")


def write_params(path: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write `tiny_params()`, plus `overrides`, to `path`; return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = _common.merge_overrides(tiny_params(), overrides or {}, "the test's overrides")
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def declared_outputs(stage: str) -> list[str]:
    """Every path dvc.yaml lists under the stage's `outs`, `metrics` and `plots`."""
    spec = DVC_STAGES[stage]
    entries = [*spec.get("outs", []), *spec.get("metrics", []), *spec.get("plots", [])]
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def _is_output(stage: str, path: str) -> bool:
    """A declared output of `stage`, or a folder holding one (e.g. the DVCLive folder)."""
    return any(out == path or out.startswith(f"{path}/") for out in declared_outputs(stage))


def option(stage: str, flag: str) -> str:
    """The value dvc.yaml passes to `flag` in `stage`'s command (a path relative to the root)."""
    words = shlex.split(DVC_STAGES[stage]["cmd"])
    return words[words.index(flag) + 1]


def add_committed_inputs(root: Path) -> None:
    """The committed files a stage reads that no stage writes: the λ_E sweep's results, which
    the render stage draws."""
    sweeps = option("render", "--tradeoff")
    shutil.copytree(REPO / sweeps, root / sweeps)


def command(stage: str, inputs: Path, outputs: Path, params: Path, **paths: Path) -> list[str]:
    """dvc.yaml's command line of `stage`, without `fader`, its paths rebased.

    Declared outputs go under `outputs`, everything else is read from `inputs`, and `paths`
    replaces single options (`data=...` for `--data`). Every option of a stage is a path.
    """
    program, *words = shlex.split(DVC_STAGES[stage]["cmd"])
    assert program == "fader", DVC_STAGES[stage]["cmd"]
    args = [words[0]]
    for flag, value in zip(words[1::2], words[2::2]):
        name = flag.removeprefix("--").replace("-", "_")
        if name in paths:
            path = paths.pop(name)
        else:
            path = (outputs if _is_output(stage, value) else inputs) / value
        args += [flag, str(path)]
    assert not paths, f"{stage} has no option(s) {sorted(paths)}"
    return [*args, "--params", str(params)]


def invoke(*args: str | Path) -> Result:
    """Run the `fader` CLI in-process."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def _describe(result: Result) -> str:
    return f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def check_ok(result: Result) -> None:
    """The command succeeded; otherwise fail with its output and exception."""
    assert result.exit_code == 0, _describe(result)


def check_fails(result: Result, *fragments: str) -> None:
    """The command failed, and its message (output or exception) holds every fragment."""
    assert result.exit_code != 0, _describe(result)
    message = f"{result.output}\n{result.exception}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def files_under(folder: Path) -> list[Path]:
    """Every file below `folder` (none when it does not exist)."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of an RGB PNG."""
    with Image.open(path) as image:
        assert (image.format, image.mode) == ("PNG", "RGB"), (path, image.format, image.mode)
        return image.size


def grid_size(rows: int, cols: int, cell: int) -> tuple[int, int]:
    """(width, height) of a `fader.grids` grid: cells separated by gutters, no outer border."""
    return cols * cell + (cols - 1) * GUTTER, rows * cell + (rows - 1) * GUTTER


def fader_state(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path, "fader")["state"]


def is_finite_float(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# The pipeline, run once


@dataclass
class Pipeline:
    """A scratch project after the fast path: the root, its params.yaml, each stage's result."""

    root: Path
    params: Path
    results: dict[str, Result]

    def path(self, stage: str, flag: str) -> Path:
        """The file or folder dvc.yaml passes to `flag` in `stage`, under the root."""
        return self.root / option(stage, flag)

    def command(
        self, stage: str, outputs: Path, params: Path | None = None, **paths: Path
    ) -> list[str]:
        """`stage`'s command reading this pipeline's files and writing under `outputs`."""
        return command(stage, self.root, outputs, params or self.params, **paths)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """Run download → preprocess → train-classifier → train → evaluate → render once.

    Runs stop at the first failing stage; `test_stage_writes_its_outputs` reports it. The
    working directory is the scratch root meanwhile, so DVCLive sees no DVC repository.
    """
    root = tmp_path_factory.mktemp("pipeline")
    params = write_params(root / "params.yaml")
    add_committed_inputs(root)
    results: dict[str, Result] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for stage in FAST_STAGES:
            results[stage] = invoke(*command(stage, root, root, params))
            if results[stage].exit_code != 0:
                break
    return Pipeline(root, params, results)


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own folder: no stage reads or writes the repository's files."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def attributes() -> list[str]:
    return list(tiny_params()["data"]["attributes"])


# ---------------------------------------------------------------------------------------------
# The fast path: every stage and what it writes


@pytest.mark.parametrize("stage", FAST_STAGES)
def test_stage_writes_its_outputs(pipeline: Pipeline, stage: str) -> None:
    assert stage in pipeline.results, f"not run: an earlier stage failed ({pipeline.results})"
    check_ok(pipeline.results[stage])
    for out in declared_outputs(stage):
        assert (pipeline.root / out).exists(), f"{stage} did not write {out}"


def test_top_level_plots_are_rendered(pipeline: Pipeline) -> None:
    attributes = _common.read_mapping(REPO / "params.yaml")["data"]["attributes"]
    for plot in DVC_YAML["plots"]:
        if isinstance(plot, dict):  # a data plot of committed files (the λ_E sweep)
            (definition,) = plot.values()
            assert all((pipeline.root / file).is_file() for file in definition["y"]), plot
            continue
        path = pipeline.root / plot
        if plot.endswith("/interpolation"):  # a folder: one grid per attribute
            assert sorted(p.name for p in path.iterdir()) == sorted(f"{a}.png" for a in attributes)
        else:
            assert path.is_file(), plot


def test_download_writes_the_celeba_layout(pipeline: Pipeline) -> None:
    raw = pipeline.path("download", "--out")
    size = tiny_params()["data"]["synthetic_size"]
    assert len(list((raw / formats.IMAGE_DIR).glob("*.jpg"))) == size
    assert len(formats.read_attributes(raw / formats.ATTR_FILE)) == size
    assert (raw / formats.PARTITION_FILE).is_file()


def test_preprocess_packs_the_selected_attributes(
    pipeline: Pipeline, attributes: list[str]
) -> None:
    prepared = pipeline.path("preprocess", "--out")
    data = tiny_params()["data"]
    images = np.load(prepared / "images.npy", mmap_mode="r")
    assert images.dtype == np.uint8
    assert images.shape == (data["synthetic_size"], data["img_size"], data["img_size"], 3)
    table = pd.read_csv(prepared / "attributes.csv")
    assert list(table.columns) == ["filename", "split", *attributes]
    assert set(table["split"]) == set(formats.SPLITS)
    assert table[attributes].isin([0, 1]).all().all()
    meta = read_json(prepared / "meta.json")
    assert meta["attributes"] == attributes and meta["img_size"] == data["img_size"]
    assert meta["counts"] == table["split"].value_counts().to_dict()


def test_the_last_epoch_is_kept_instead_without_training_again(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """selection: last keeps final.pt; the rule is not part of what a resume must match, so
    the finished run's checkpoints are reused as they are."""
    checkpoints = tmp_path / option("train_fader", "--checkpoints")
    shutil.copytree(pipeline.path("train_fader", "--checkpoints"), checkpoints)
    monkeypatch.setattr(trainer, "autoencoder_step", None)  # any training step would fail
    params = write_params(tmp_path / "params.yaml", {"train_fader": {"selection": "last"}})
    check_ok(invoke(*pipeline.command("train_fader", tmp_path, params)))
    selected = tmp_path / option("train_fader", "--out")
    assert selected.read_bytes() == (checkpoints / FINAL).read_bytes()
    metrics = read_json(tmp_path / option("train_fader", "--metrics"))
    assert metrics["selected_epoch"] == metrics["last"]["epoch"] == TINY["train_fader"]["n_epochs"]
    final = checkpoint.load(checkpoints / FINAL, "fader")["state"]
    last = checkpoint.load(checkpoints / LAST, "fader_training")["nets"]["autoencoder"]
    assert all(torch.equal(final[k], last[k]) for k in final)


def test_classifier_checkpoint_and_metrics(pipeline: Pipeline, attributes: list[str]) -> None:
    _, judged_attributes = checkpoint.load_network(
        pipeline.path("train_classifier", "--out"), "classifier"
    )
    assert judged_attributes == attributes
    metrics = read_json(pipeline.path("train_classifier", "--metrics"))
    assert set(metrics) == {"test_accuracy", "epochs", "best_valid_accuracy"}
    assert set(metrics["test_accuracy"]) == {*attributes, "mean"}
    assert all(0 <= v <= 1 for v in metrics["test_accuracy"].values())
    assert metrics["epochs"] == tiny_params()["train_classifier"]["max_epochs"]


def test_fader_checkpoints_metrics_and_curves(pipeline: Pipeline, attributes: list[str]) -> None:
    folder = pipeline.path("train_fader", "--checkpoints")
    assert {p.name for p in folder.iterdir()} >= {LAST, BEST_RECON, BEST_SWAP, FINAL}
    selected = pipeline.path("train_fader", "--out")
    assert selected.read_bytes() == (folder / BEST_SWAP).read_bytes()
    autoencoder, edited = checkpoint.load_network(selected, "fader")
    assert edited == attributes
    x = torch.zeros(1, 3, *[tiny_params()["data"]["img_size"]] * 2)
    assert autoencoder(x, torch.ones(1, len(attributes))).shape == x.shape

    metrics = read_json(pipeline.path("train_fader", "--metrics"))
    assert set(metrics) == {"selected_epoch", "selected", "best_recon_epoch", "last"}
    n_epochs = tiny_params()["train_fader"]["n_epochs"]
    assert metrics["last"]["epoch"] == n_epochs
    assert 1 <= metrics["selected_epoch"] <= n_epochs
    assert metrics["selected"]["epoch"] == metrics["selected_epoch"]
    for name in attributes:
        assert 0 <= metrics["selected"][f"valid/swap_accuracy/{name}"] <= 1

    curves = read_curves(pipeline.path("train_fader", "--live"))
    assert "train/recon_loss" in curves and "valid/recon_mse" in curves
    assert curves["valid/recon_mse"]["step"].tolist() == [
        e * metrics["last"]["step"] // n_epochs for e in range(1, n_epochs + 1)
    ]


def test_evaluate_metrics_and_swap_curve(pipeline: Pipeline, attributes: list[str]) -> None:
    metrics = read_json(pipeline.path("evaluate", "--metrics"))
    params = tiny_params()["evaluate"]
    assert "fid" not in metrics  # evaluate.fid_images is 0 on the fast path
    assert "inception_weights" not in metrics  # no Inception network was used
    assert metrics["settings"]["images"] == tiny_params()["data"]["synthetic_size"] // 10
    assert metrics["settings"]["alphas"] == params["alphas"]
    assert {"mse", "rmse", "psnr", "ssim"} <= set(metrics["reconstruction"])
    assert metrics["reconstruction"]["rmse"] == pytest.approx(
        metrics["reconstruction"]["mse"] ** 0.5
    )
    assert set(metrics["attributes"]) == set(attributes)
    intensity = f"swap_accuracy_x{params['intensity']:g}"
    for name in attributes:
        scores = metrics["attributes"][name]
        for key in (
            "swap_accuracy",
            intensity,
            "real_accuracy",
            "reconstruction_accuracy",
            "preservation_error",
            "official_set_accuracy",
        ):
            assert 0 <= scores[key] <= 1, (name, key, scores)
    assert set(metrics["table"]) == {"Real", "AE", "Swap"}

    curve = read_json(pipeline.path("evaluate", "--curve"))
    assert [row["alpha"] for row in curve] == params["alphas"]
    assert all(set(row) == {"alpha", *attributes} for row in curve)
    at_one = curve[params["alphas"].index(1.0)]
    for name in attributes:
        assert at_one[name] == pytest.approx(metrics["attributes"][name]["swap_accuracy"])


def test_render_folder(pipeline: Pipeline, attributes: list[str]) -> None:
    folder = pipeline.path("render", "--out")
    params = tiny_params()
    rows, cell = params["render"]["n_images"], params["data"]["img_size"]
    expected = {interpolation_file(name): 2 + params["render"]["n_alphas"] for name in attributes}
    expected["swaps.png"] = 2 + len(attributes)
    expected["multi_swaps.png"] = 2 + len(params["render"]["multi_swaps"])
    for name, cols in expected.items():
        assert png_size(folder / name) == grid_size(rows, cols, cell), name
    curves = ("curves.png", "swap_curve.png", "tradeoff.png")
    assert all((folder / name).is_file() for name in curves)

    page = (folder / "index.html").read_text()
    images = len(expected) + len(curves)
    assert page.count("<img ") == page.count('src="data:image/png;base64,') == images
    for stage in ("train_classifier", "train_fader", "evaluate"):
        assert f"<h3>{stage}</h3>" in page  # the metrics tables
    for name in attributes:  # the summary: a row per attribute
        assert f"<tr><td>{name}</td>" in page


# ---------------------------------------------------------------------------------------------
# fader edit


@pytest.fixture
def photo(pipeline: Pipeline) -> Path:
    """One of the synthetic JPEGs (178x218, like CelebA's aligned faces)."""
    return sorted((pipeline.path("download", "--out") / formats.IMAGE_DIR).glob("*.jpg"))[0]


def edit(pipeline: Pipeline, photo: Path, out: Path, *options: str) -> Result:
    """`fader edit` with the pipeline's model, from the pipeline's root (the default classifier)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(pipeline.root)
        model = pipeline.path("train_fader", "--out")
        # the synthetic faces are framed like CelebA's aligned images already
        return invoke("edit", photo, "--no-align", "--model", model, "-o", out, *options)


def test_edit_writes_a_png_of_the_model_size(
    pipeline: Pipeline, photo: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    check_ok(edit(pipeline, photo, tmp_path / "edited.png", "--set", "Smiling=1"))
    size = tiny_params()["data"]["img_size"]
    assert png_size(tmp_path / "edited.png") == (size, size)
    assert "no classifier" not in caplog.text  # models/classifier.pt filled in the others


def test_edit_strip(pipeline: Pipeline, photo: Path, tmp_path: Path) -> None:
    alphas = "0,0.5,1"
    check_ok(edit(pipeline, photo, tmp_path / "strip.png", "--strip", "Male", "--alphas", alphas))
    cols = 1 + len(alphas.split(","))  # the original, then one column per α
    size = tiny_params()["data"]["img_size"]
    assert png_size(tmp_path / "strip.png") == grid_size(1, cols, size)


def test_edit_unknown_attribute_names_the_valid_ones(
    pipeline: Pipeline, photo: Path, tmp_path: Path, attributes: list[str]
) -> None:
    result = edit(pipeline, photo, tmp_path / "edited.png", "--set", "Nope=1")
    check_fails(result, "Nope", *attributes)
    assert not (tmp_path / "edited.png").exists()


# ---------------------------------------------------------------------------------------------
# FID


@pytest.fixture(scope="module")
def fid_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Offline Inception weights (the fid-helper conversion) and a 4-image FID."""
    return write_params(
        tmp_path_factory.mktemp("fid") / "params.yaml",
        {"inception": {"source": "fid-helper"}, "evaluate": {"fid_images": 4}},
    )


@pytest.fixture(scope="module")
def inception_weights(pipeline: Pipeline, fid_params: Path) -> Path:
    """`fader inception --out <tmp>/w.pth`, run once."""
    if importlib.util.find_spec(FID_HELPER_PACKAGE) is None:
        pytest.skip(f"{FID_HELPER_PACKAGE} is not installed (`make env` installs it)")
    weights = fid_params.parent / "w.pth"
    check_ok(invoke(*pipeline.command("inception", fid_params.parent, fid_params, out=weights)))
    return weights


def test_inception_writes_and_then_reuses_the_weights(
    pipeline: Pipeline, fid_params: Path, inception_weights: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = torch.load(inception_weights, map_location="cpu", weights_only=True)
    check_state_dict(state)  # a plain pytorch-fid state dict
    written = inception_weights.read_bytes()
    caplog.set_level(logging.INFO, logger="fader.eval.inception")
    check_ok(
        invoke(*pipeline.command("inception", fid_params.parent, fid_params, out=inception_weights))
    )
    assert "using cached" in caplog.text
    assert inception_weights.read_bytes() == written


@pytest.mark.slow  # each Fréchet distance takes a 2048x2048 sqrtm: ~10-25 s on two CPU cores
@pytest.mark.filterwarnings("ignore:Matrix is singular:scipy.linalg.LinAlgWarning")
def test_evaluate_reports_fid(
    pipeline: Pipeline,
    fid_params: Path,
    inception_weights: Path,
    tmp_path: Path,
    attributes: list[str],
) -> None:
    out = tmp_path / "out"
    check_ok(invoke(*pipeline.command("evaluate", out, fid_params, inception=inception_weights)))
    metrics = read_json(out / option("evaluate", "--metrics"))
    fid = metrics["fid"]
    assert fid["images"] == 4 and fid["real_vs_real_images"] == 2
    assert metrics["inception_weights"] == "fid-helper-converted"  # inception.source: fid-helper
    for key in ("real_vs_real", "reconstruction", *(f"swap/{name}" for name in attributes)):
        assert is_finite_float(fid[key]) and fid[key] >= 0, (key, fid[key])
    for name in attributes:
        assert metrics["table"]["Swap"][name]["fid"] == fid[f"swap/{name}"]


# ---------------------------------------------------------------------------------------------
# Bad inputs: a non-zero exit, a message that names the problem, no output


@pytest.mark.parametrize(
    "stage, section",
    [
        ("train_classifier", "train_classifier"),
        ("train_fader", "model"),
        ("train_fader", "train_fader"),
        ("evaluate", "evaluate"),
        ("render", "render"),
        ("download", "data"),
        ("preprocess", "data"),
    ],
)
def test_unknown_params_key(pipeline: Pipeline, tmp_path: Path, stage: str, section: str) -> None:
    values = tiny_params()
    values[section]["bogus_key"] = 1  # a key params.yaml lacks: the override merge refuses it
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(values, sort_keys=False))
    out = tmp_path / "out"
    result = invoke(*pipeline.command(stage, out, params))
    check_fails(result, section, "unknown key(s) ['bogus_key']")
    assert files_under(out) == []


def test_unknown_attribute_in_data_attributes(pipeline: Pipeline, tmp_path: Path) -> None:
    params = write_params(tmp_path / "params.yaml", {"data": {"attributes": ["Smiling", "Nope"]}})
    out = tmp_path / "out"
    result = invoke(*pipeline.command("preprocess", out, params))
    check_fails(result, "'Nope'", *formats.CELEBA_ATTRIBUTES)
    assert files_under(out) == []


#: (stage, option naming an input folder, what the message must also say)
MISSING_INPUTS = [
    ("preprocess", "raw", "not found"),
    *(
        (stage, "data", "run `fader preprocess` first")
        for stage in FAST_STAGES
        if "--data" in DVC_STAGES[stage]["cmd"]
    ),
]


@pytest.mark.parametrize("stage, name, hint", MISSING_INPUTS)
def test_missing_input_folder(
    pipeline: Pipeline, tmp_path: Path, stage: str, name: str, hint: str
) -> None:
    absent = tmp_path / "absent"
    out = tmp_path / "out"
    result = invoke(*pipeline.command(stage, out, **{name: absent}))
    check_fails(result, str(absent), hint)
    assert files_under(out) == []


def test_classifier_of_other_attributes_is_refused(
    pipeline: Pipeline, tmp_path: Path, attributes: list[str]
) -> None:
    other = ["Smiling", "Male"]
    assert other != attributes
    params = write_params(tmp_path / "params.yaml", {"data": {"attributes": other}})
    check_ok(invoke(*pipeline.command("preprocess", tmp_path / "other", params)))
    out = tmp_path / "out"
    data = tmp_path / "other" / option("preprocess", "--out")
    result = invoke(*pipeline.command("train_fader", out, params, data=data))
    check_fails(result, f"judges {attributes}", f"the data has {other}")
    assert files_under(out) == []


# ---------------------------------------------------------------------------------------------
# Resume


def retrain(pipeline: Pipeline, out: Path, params: Path | None = None) -> Result:
    """`fader train` writing under `out`, starting from a copy of the pipeline's checkpoints."""
    folder = option("train_fader", "--checkpoints")
    shutil.copytree(pipeline.root / folder, out / folder)
    return invoke(*pipeline.command("train_fader", out, params))


def test_rerun_resumes_instead_of_retraining(
    pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A second `fader train` with the same params finds the finished run in its checkpoints."""
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger="fader.train.trainer")
    check_ok(retrain(pipeline, out))

    n_epochs = tiny_params()["train_fader"]["n_epochs"]
    assert f"at epoch {n_epochs}" in caplog.text and "resuming from" in caplog.text
    assert "starting afresh" not in caplog.text
    assert f"epoch 1/{n_epochs}" not in caplog.text  # no epoch ran again
    folder = option("train_fader", "--checkpoints")
    assert (out / folder / LAST).read_bytes() == (pipeline.root / folder / LAST).read_bytes()
    before = fader_state(pipeline.path("train_fader", "--out"))
    after = fader_state(out / option("train_fader", "--out"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)
    metrics = option("train_fader", "--metrics")
    assert read_json(out / metrics) == read_json(pipeline.root / metrics)
    # the resumed run replays what the first one logged into its fresh DVCLive folder
    live = option("train_fader", "--live")
    first, again = read_curves(pipeline.root / live), read_curves(out / live)
    assert first.keys() == again.keys()
    for name, frame in first.items():
        pd.testing.assert_frame_equal(frame, again[name], obj=name)


def test_fewer_epochs_do_not_reuse_a_longer_run(pipeline: Pipeline, tmp_path: Path) -> None:
    """Lowering train_fader.n_epochs must not hand back the longer run's model and metrics."""
    params = write_params(tmp_path / "params.yaml", {"train_fader": {"n_epochs": 1}})
    out = tmp_path / "out"
    check_ok(retrain(pipeline, out, params))
    assert read_json(out / option("train_fader", "--metrics"))["last"]["epoch"] == 1


def test_two_processes_train_once_and_resume_after_kill_9(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """`fader train --nproc 2` (torchrun, gloo): rank 0 alone writes checkpoints, metrics and
    DVCLive files; killed with -9 after an epoch, the same command resumes from last.pt."""
    n_epochs = 12
    params = write_params(tmp_path / "params.yaml", {"train_fader": {"n_epochs": n_epochs}})
    out = tmp_path / "out"
    train = [sys.executable, "-m", "stages.cli", "--debug"]
    train += [*pipeline.command("train_fader", out, params), "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a fresh run to its end (rank 1 has no validation history to choose from)
    short = write_params(tmp_path / "short.yaml", {"train_fader": {"n_epochs": 1}})
    fresh = [*train[:4], *pipeline.command("train_fader", tmp_path / "short", short)]
    done = subprocess.run(
        [*fresh, "--nproc", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert read_json(tmp_path / "short" / option("train_fader", "--metrics"))["last"]["epoch"] == 1
    last = out / option("train_fader", "--checkpoints") / LAST
    first = subprocess.Popen(
        train, cwd=REPO, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not last.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the launcher and both processes
    _, first_log = first.communicate()
    assert last.is_file(), first_log
    epoch = checkpoint.load(last, "fader_training")["epoch"]
    assert epoch < n_epochs, "the run ended before the kill: the resume is not tested"

    again = subprocess.run(train, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {last} at epoch" in again.stderr
    assert read_json(out / option("train_fader", "--metrics"))["last"]["epoch"] == n_epochs
    saved = checkpoint.load(last, "fader_training")
    assert len(saved["rng"]) == 2 and saved["fingerprint"]["processes"] == 2  # both ranks'
    folder = out / option("train_fader", "--checkpoints")
    assert sorted(p.name for p in folder.iterdir()) == sorted([LAST, BEST_RECON, BEST_SWAP, FINAL])
    live = out / option("train_fader", "--live")
    curves = read_curves(live)
    steps = curves["train/recon_loss"]["step"].tolist()
    assert steps == sorted(set(steps))  # one writer: every step logged once
    assert len(curves["valid/recon_mse"]) == n_epochs


def test_the_train_help_names_both_selection_rules() -> None:
    """`fader train --out` holds the model train_fader.selection picks: best swap or last."""
    from stages import train_fader

    help_text = inspect.signature(train_fader.main).parameters["out"].default.help
    assert "best swap accuracy (best_swap) or the last epoch (last)" in help_text
