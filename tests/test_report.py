import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer import Typer
from typer.testing import CliRunner

import stages.render
from fader.config import to_dict
from fader.data.config import PreprocessConfig
from fader.data.preprocess import prepare
from fader.model import checkpoint
from fader.model.networks import AutoEncoder, ModelConfig
from fader.report import curves, grids, page, render
from tests.conftest import make

ATTRS = ("Smiling", "Male")


def write_live(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real DVCLive folder: dvclive/train_fader/plots/metrics/**/*.tsv."""
    from dvclive import Live

    monkeypatch.chdir(root)  # DVCLive looks for a Git/DVC repo from the working directory
    with Live("dvclive/train_fader", dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for step in (2, 4, 6):
            live.step = step
            live.log_metric("train/recon_loss", 1.0 / step)
            live.log_metric("lambda_e", step * 0.1)
            if step == 6:
                live.log_metric("valid/swap_accuracy/mean", 0.75)
            live.make_summary()
    return root / "dvclive"


def test_read_and_plot_dvclive_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = write_live(tmp_path, monkeypatch)
    read = curves.read_curves(live)
    assert sorted(read) == [
        "train_fader/lambda_e",
        "train_fader/train/recon_loss",
        "train_fader/valid/swap_accuracy/mean",
    ]
    assert read["train_fader/train/recon_loss"]["step"].tolist() == [2, 4, 6]
    assert read["train_fader/train/recon_loss"]["value"].tolist() == pytest.approx(
        [0.5, 0.25, 1 / 6]
    )
    assert sorted(curves.read_curves(live / "train_fader" / "plots" / "metrics")) == [
        "lambda_e",
        "train/recon_loss",
        "valid/swap_accuracy/mean",
    ]

    names = curves.plot_curves(live, tmp_path / "curves.png")
    assert len(names) == 3
    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG" and image.width > 300
    picked = curves.plot_curves(live, tmp_path / "some.png", ["*/valid/*", "*lambda*"])
    assert picked == ["train_fader/valid/swap_accuracy/mean", "train_fader/lambda_e"]
    with pytest.raises(ValueError, match="no curve matches 'nope'.*train_fader/lambda_e"):
        curves.plot_curves(live, tmp_path / "x.png", ["nope"])
    with pytest.raises(FileNotFoundError, match="DVCLive folder not found: .*absent"):
        curves.plot_curves(tmp_path / "absent", tmp_path / "x.png")


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    grid = np.zeros((10, 20, 3), np.uint8)
    grids.save_png(tmp_path / "swaps.png", grid)
    grids.save_png(tmp_path / "curves.png", np.full((5, 5, 3), 9, np.uint8))
    tables = {
        "train_fader": {"selected_epoch": 3, "selected": {"valid/recon_mse": 0.012345678}},
        "evaluate": {"fid": 41.3, "names": ["a<b"]},
    }
    page.write_html_report(
        tmp_path / "index.html",
        "Fader <run>",
        tables,
        [tmp_path / "curves.png"],
        [tmp_path / "swaps.png"],
        captions={"swaps.png": "flips & more"},
    )
    html = (tmp_path / "index.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html
    assert "<title>Fader &lt;run&gt;</title>" in html
    for value in (
        "selected_epoch",
        "selected/valid/recon_mse",
        "0.0123457",
        "41.3",
        "a&lt;b",
        "flips &amp; more",
    ):
        assert value in html
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == 2
    assert base64.b64decode(uris[1]) == (tmp_path / "swaps.png").read_bytes()


def test_render_stage_writes_the_report_folder(
    raw_celeba: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(
        raw_celeba,
        tmp_path / "prepared",
        make(PreprocessConfig, img_size=32, attributes=ATTRS, workers=1),
        progress=False,
    )
    torch.manual_seed(0)
    cfg = make(ModelConfig, img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16)
    checkpoint.save(
        tmp_path / "fader.pt",
        {
            "kind": "fader",
            "config": to_dict(cfg),
            "attributes": list(ATTRS),
            "state": AutoEncoder(cfg).state_dict(),
        },
    )
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train_fader.json").write_text(json.dumps({"selected_epoch": 7}))
    live = write_live(tmp_path, monkeypatch)
    render = {
        "n_images": 8,
        "alpha_min": -0.5,
        "alpha_max": 1.5,
        "n_alphas": 3,
        "seed": 0,
        "multi_swaps": [{"Smiling": 1, "Male": 0}],
        "curves": None,
        "device": "cpu",
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"render": render}, sort_keys=False))
    app = Typer()
    app.command()(stages.render.main)
    out = tmp_path / "reports" / "render"
    args = [
        "--data",
        "prepared",
        "--model",
        "fader.pt",
        "--out",
        str(out),
        "--metrics-dir",
        "metrics",
        "--live",
        str(live),
        "--params",
        "params.yaml",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "curves.png",
        "index.html",
        "interpolation",
        "interpolation/Male.png",
        "interpolation/Smiling.png",
        "multi_swaps.png",
        "swaps.png",
    ]
    rows = 3  # the test split of the 12-image fixture is smaller than n_images
    sizes = {"interpolation/Male.png": 2 + 3, "swaps.png": 2 + 2, "multi_swaps.png": 2 + 1}
    for name, cols in sizes.items():
        with Image.open(out / name) as image:
            assert image.size == (cols * 32 + (cols - 1) * 2, rows * 32 + (rows - 1) * 2)
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "selected_epoch" in page and "Smiling=1, Male=0" in page and "-0.5, 0.5, 1.5" in page
    assert "http" not in page and "<script" not in page

    render["multi_swaps"] = [{"Smile": 1}]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"render": render}, sort_keys=False))
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ValueError)
    assert "'Smile'" in str(result.exception) and "Smiling, Male" in str(result.exception)
    assert (out / "swaps.png").is_file()  # the old report is left whole


@pytest.mark.parametrize(
    "values, message",
    [
        ({"n_images": 0}, "n_images"),
        ({"multi_swaps": ({"Male": "yes"},)}, "multi_swaps"),
        ({"n_alphas": 1}, "n_alphas"),
        ({"alpha_max": float("nan")}, "alpha_max"),
    ],
)
def test_bad_render_parameters(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(render.RenderConfig, **values)
