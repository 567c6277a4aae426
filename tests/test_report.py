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
from fader.image import save_png
from fader.model import checkpoint
from fader.model.networks import AutoEncoder, ModelConfig
from fader.report import curves, page, render
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
    save_png(tmp_path / "swaps.png", grid)
    save_png(tmp_path / "curves.png", np.full((5, 5, 3), 9, np.uint8))
    tables = {
        "train_fader": {"selected_epoch": 3, "selected": {"valid/recon_mse": 0.012345678}},
        "evaluate": {"fid": 41.3, "names": ["a<b"]},
    }
    summary = [page.Table("Per <attribute>", ["attribute", "flip"], [["Male", "91.0 %"]])]
    page.write_html_report(
        tmp_path / "index.html",
        "Fader <run>",
        summary,
        [tmp_path / "curves.png"],
        [tmp_path / "swaps.png"],
        tables,
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
        "Per &lt;attribute&gt;",
        "91.0 %",
    ):
        assert value in html
    # the order of a results page: summary, curves, grids, then every metric, collapsed
    order = ["Per &lt;attribute&gt;", "<h2>Curves", "<h2>Edits", "<details>", "selected_epoch"]
    assert [html.index(marker) for marker in order] == sorted(html.index(m) for m in order)
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
    (tmp_path / "tradeoff").mkdir()
    data = "celeba-mini, random split, 64 px"
    sweep = [
        {
            "experiment": "a",
            "data": data,
            "lambda_e": 1e-3,
            "recon_mse": 0.02,
            "flip_accuracy": 0.6,
        },
        {
            "experiment": "b",
            "data": data,
            "lambda_e": 1e-2,
            "recon_mse": 0.03,
            "flip_accuracy": 0.9,
        },
    ]
    (tmp_path / "tradeoff" / "recipe.json").write_text(json.dumps(sweep))
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
        "--tradeoff",
        "tradeoff",
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
        "tradeoff.png",
    ]
    rows = 3  # the test split of the 12-image fixture is smaller than n_images
    sizes = {"interpolation/Male.png": 2 + 3, "swaps.png": 2 + 2, "multi_swaps.png": 2 + 1}
    for name, cols in sizes.items():
        with Image.open(out / name) as image:
            assert image.size == (cols * 32 + (cols - 1) * 2, rows * 32 + (rows - 1) * 2)
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 6
    assert "selected_epoch" in page and "Smiling=1, Male=0" in page and "-0.5, 0.5, 1.5" in page
    assert "per λ_E, test split of celeba-mini, random split, 64 px" in page
    assert "http" not in page and "<script" not in page

    del sweep[1]["recon_mse"]
    (tmp_path / "tradeoff" / "recipe.json").write_text(json.dumps(sweep))
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ValueError)
    assert "tradeoff/recipe.json: expected a list of points with" in str(result.exception)
    (tmp_path / "tradeoff" / "recipe.json").unlink()

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


def test_the_report_reads_as_a_results_page_in_a_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser
) -> None:
    """What a person sees in headless Chromium: the summary on the first screen, the swap curve
    drawn as a picture, and the full metrics collapsed until opened."""
    metrics = {
        "attributes": {
            name: {
                "real_accuracy": 0.95,
                "swap_accuracy": 0.91,
                "swap_accuracy_x2": 0.99,
                "preservation_error": 0.05,
            }
            for name in ATTRS
        },
        "reconstruction": {"mse": 0.0197, "psnr": 23.3, "ssim": 0.66},
        "fid": {"images": 200, "reconstruction": 226.3, "real_vs_real": 69.4},
        "kid": {"reconstruction": {"mean": 0.198, "std": 0.005}},
        "settings": {"intensity": 2.0},
    }
    curve = [{"alpha": a, "Smiling": a / 2, "Male": a / 2} for a in (0.0, 1.0, 2.0)]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "evaluate.json").write_text(json.dumps(metrics))
    (tmp_path / "metrics" / "swap_curve.json").write_text(json.dumps(curve))
    tables = page.read_metrics_dir(tmp_path / "metrics")
    summary = render.summary_tables(tables)
    curves.plot_swap_curve(curve, tmp_path / "swap_curve.png")
    save_png(tmp_path / "swaps.png", np.full((64, 160, 3), 128, np.uint8))
    index = tmp_path / "index.html"
    page.write_html_report(
        index, "Fader", summary, [tmp_path / "swap_curve.png"], [tmp_path / "swaps.png"], tables
    )
    view = browser.new_page(viewport={"width": 1200, "height": 900})
    view.goto(index.as_uri())
    first = view.locator("table.summary").first
    assert first.is_visible() and first.bounding_box()["y"] < 900  # on the first screen
    assert "91.0 %" in first.inner_text() and "Smiling" in first.inner_text()
    assert "226.3 / 0.198 ± 0.005" in view.locator("table.summary").nth(1).inner_text()
    picture = view.locator("img[alt='swap_curve.png']")
    assert picture.bounding_box()["width"] > 300  # a picture, not a JSON cell
    full = view.locator("details h3").first
    assert not full.is_visible()  # collapsed ...
    view.locator("details summary").click()
    assert full.is_visible()  # ... until opened
    view.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    with Image.open(tmp_path / "report.png") as shot:
        assert shot.width >= 1200 and len(np.unique(np.asarray(shot.convert("L")))) > 16
    view.close()


@pytest.mark.parametrize(
    ("settings", "key", "header"),
    [
        ({"intensity": 2.0}, "swap_accuracy_x2", "flip, 2x intensity"),
        ({"intensity": 3.0}, "swap_accuracy_x3", "flip, 3x intensity"),
        ({"intensity": 1.5}, "swap_accuracy_x1.5", "flip, 1.5x intensity"),
        (None, "swap_accuracy_x2.5", "flip, 2.5x intensity"),  # no settings: the key tells
    ],
)
def test_the_intensity_column_reads_the_intensity_evaluate_used(
    settings: dict | None, key: str, header: str
) -> None:
    """evaluate.json's key is `swap_accuracy_x{intensity:g}`: with `evaluate.intensity` 3 the
    column shows the flips at 3x (not "–"), labelled with that intensity."""
    scores = {"real_accuracy": 0.9, "swap_accuracy": 0.8, key: 0.97, "preservation_error": 0.1}
    evaluate = {"attributes": {name: scores for name in ATTRS}}
    if settings is not None:
        evaluate["settings"] = settings
    per_attribute, _ = render.summary_tables({"evaluate": evaluate})
    column = list(per_attribute.headers).index(header)
    assert [row[column] for row in per_attribute.rows] == ["97.0 %"] * len(ATTRS)


def test_without_a_recognisable_intensity_the_column_is_empty() -> None:
    scores = {"swap_accuracy": 0.8, "swap_accuracy_x2": 0.9, "swap_accuracy_x3": 0.97}
    per_attribute, _ = render.summary_tables({"evaluate": {"attributes": {"Male": scores}}})
    column = list(per_attribute.headers).index("flip, other intensity")
    assert per_attribute.rows[0][column] == "–"
