import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer import Typer
from typer.testing import CliRunner

import stages.edit
from fader import edit
from fader.config import to_dict
from fader.data.config import PreprocessConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.image import load_square
from fader.model import checkpoint
from fader.model.networks import AttributeClassifier, ClassifierConfig, ModelConfig
from fader.train.config import TrainConfig
from fader.train.trainer import BEST_SWAP, train_fader
from tests.conftest import cell, make, make_raw_celeba

ATTRS = ("Smiling", "Male")
MODEL = make(ModelConfig, img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16)
CONFIG = make(
    TrainConfig,
    batch_size=4,
    epoch_size=8,
    n_epochs=1,
    lambda_schedule=4,
    log_every=1,
    device="cpu",
)


def save_classifier(
    path: Path,
    attributes: tuple[str, ...],
    img_size: int = 32,
    logits: dict[str, float] | None = None,
) -> Path:
    """A random classifier; with `logits`, one that gives every image these logits (by name)."""
    torch.manual_seed(1)
    cfg = make(ClassifierConfig, img_size=img_size, n_attr=len(attributes), init_fm=4, max_fm=8)
    net = AttributeClassifier(cfg)
    if logits is not None:
        last = net.proj[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor([logits[name] for name in attributes]))
    checkpoint.save(
        path,
        {
            "kind": "classifier",
            "config": to_dict(cfg),
            "attributes": list(attributes),
            "state": net.state_dict(),
        },
    )
    return path


#: A classifier that says Male and not Smiling, listing them in the other order than the model:
#: the random one of the fixture says neither, which is also what no classifier decodes.
MALE = {"Male": 5.0, "Smiling": -5.0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One short epoch of real training: the checkpoint `fader train` would select."""
    root = tmp_path_factory.mktemp("edit")
    prepare(
        make_raw_celeba(root / "raw"),
        root / "prepared",
        make(PreprocessConfig, img_size=32, attributes=ATTRS, workers=1),
        progress=False,
    )
    classifier = save_classifier(root / "classifier.pt", ATTRS)
    train = PreparedDataset(root / "prepared", "train", flip=True)
    valid = PreparedDataset(root / "prepared", "valid")
    judge, _ = checkpoint.load_network(classifier, "classifier")
    train_fader(train, valid, judge, MODEL, CONFIG, root / "ckpt", seed=0, progress=False)
    photo = root / "photo.jpg"  # any size or aspect: cropped and resized like the training data
    pixels = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo, quality=90)
    return {
        "model": root / "ckpt" / BEST_SWAP,
        "classifier": classifier,
        "photo": photo,
        "root": root,
    }


@pytest.fixture(autouse=True)
def _away_from_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder: a models/classifier.pt of the workspace must not be picked up."""
    monkeypatch.chdir(tmp_path)


def cli(*args: str):
    """`fader edit --no-align ...`: the synthetic faces are framed like CelebA's already."""
    app = Typer()
    app.command()(stages.edit.main)
    return CliRunner().invoke(app, ["--no-align", *(str(a) for a in args)])


def edit_image(autoencoder, attributes, photo: bytes, settings: dict, classifier=None):
    """An aligned photo edited through the library, as `fader edit --no-align` does."""
    editor = edit.Editor(autoencoder, attributes, classifier)
    prepared = edit.prepare_photo(photo, editor.img_size, aligned=True)
    return edit.edit_photo(editor, prepared, settings)


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def test_edit_writes_the_edited_photo(trained: dict[str, Path], tmp_path: Path) -> None:
    outputs = {}
    for value in ("0.8", "-0.5"):
        out = tmp_path / f"smiling_{value}.png"
        result = cli(
            trained["photo"],
            "--model",
            trained["model"],
            "--set",
            f"Smiling={value}",
            "--set",
            "Male=1",
            "--classifier",
            trained["classifier"],
            "-o",
            out,
        )
        assert result.exit_code == 0, result.output
        outputs[value] = png(out)
        assert outputs[value].shape == (32, 32, 3)
    assert not np.array_equal(outputs["0.8"], outputs["-0.5"])
    # the CLI is the library call
    autoencoder, attributes = checkpoint.load_network(trained["model"], "fader")
    judge = checkpoint.load_network(trained["classifier"], "classifier")
    direct = edit_image(
        autoencoder, attributes, trained["photo"].read_bytes(), {"Smiling": 0.8, "Male": 1.0}, judge
    )
    assert np.array_equal(direct, outputs["0.8"])


def test_unset_attributes_come_from_the_classifier(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    autoencoder, attributes = checkpoint.load_network(trained["model"], "fader")
    male = save_classifier(tmp_path / "male.pt", ("Male", "Smiling"), logits=MALE)
    net, judged_attributes = checkpoint.load_network(male, "classifier")
    photo = trained["photo"].read_bytes()
    x = torch.from_numpy(load_square(photo, 32)).permute(2, 0, 1)[None].float() / 127.5 - 1
    verdict = dict(zip(judged_attributes, (net(x) > 0).float()[0].tolist()))
    assert verdict == {"Male": 1.0, "Smiling": 0.0}
    with_judge = edit_image(
        autoencoder, attributes, photo, {"Smiling": 1.0}, (net, judged_attributes)
    )
    explicit = edit_image(autoencoder, attributes, photo, {"Smiling": 1.0, "Male": verdict["Male"]})
    assert np.array_equal(with_judge, explicit)
    # what no classifier decodes (Male = 0) differs: the verdict was used, by name
    without = edit_image(autoencoder, attributes, photo, {"Smiling": 1.0, "Male": 0.0})
    assert not np.array_equal(with_judge, without)


def test_without_classifier_unset_attributes_are_zero_with_a_warning(
    trained: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    autoencoder, attributes = checkpoint.load_network(trained["model"], "fader")
    photo = trained["photo"].read_bytes()
    with caplog.at_level(logging.WARNING, logger="fader.edit"):
        guessed = edit_image(autoencoder, attributes, photo, {"Smiling": 1.0})
    assert "Male" in caplog.text and "decoded as 0" in caplog.text
    explicit = edit_image(autoencoder, attributes, photo, {"Smiling": 1.0, "Male": 0.0})
    assert np.array_equal(guessed, explicit)


def test_strip_shows_the_original_then_each_alpha(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "strip.png"
    result = cli(
        trained["photo"],
        "--model",
        trained["model"],
        "--strip",
        "Smiling",
        "--alphas",
        "0,0.5,1",
        "--no-classifier",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    strip = png(out)
    assert strip.shape == (32, 4 * 32 + 3 * 2, 3)
    original = load_square(trained["photo"].read_bytes(), 32)
    assert np.array_equal(cell(strip, 0, 0, 32), original)
    assert not np.array_equal(cell(strip, 0, 1, 32), cell(strip, 0, 3, 32))
    assert (strip[:, 32:34] == 255).all()  # gutter


def test_default_classifier_is_used_when_present(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "fader.pt"
    model.write_bytes(trained["model"].read_bytes())
    assert cli(trained["photo"], "--set", "Smiling=1", "-o", "none.png").exit_code == 0
    male = save_classifier(tmp_path / "male.pt", ("Male", "Smiling"), logits=MALE)
    (tmp_path / "models" / "classifier.pt").write_bytes(male.read_bytes())
    assert cli(trained["photo"], "--set", "Smiling=1", "-o", "default.png").exit_code == 0
    assert (
        cli(
            trained["photo"],
            "--set",
            "Smiling=1",
            "-o",
            "explicit.png",
            "--classifier",
            male,
        ).exit_code
        == 0
    )
    assert np.array_equal(png(tmp_path / "default.png"), png(tmp_path / "explicit.png"))
    # without models/classifier.pt the unset Male was decoded as 0, with it as the verdict 1
    assert not np.array_equal(png(tmp_path / "default.png"), png(tmp_path / "none.png"))


def test_unknown_attribute_lists_the_valid_ones(trained: dict[str, Path], tmp_path: Path) -> None:
    result = cli(
        trained["photo"],
        "--model",
        trained["model"],
        "--set",
        "Smilling=1",
        "-o",
        tmp_path / "out.png",
    )
    assert isinstance(result.exception, ValueError)
    assert "'Smilling'" in str(result.exception) and "Smiling, Male" in str(result.exception)
    result = cli(
        trained["photo"],
        "--model",
        trained["model"],
        "--strip",
        "Eyeglasses",
        "-o",
        tmp_path / "out.png",
    )
    assert isinstance(result.exception, ValueError) and "Eyeglasses" in str(result.exception)
    assert not (tmp_path / "out.png").exists()


def test_one_value_parser_for_the_command_line_and_the_web_app() -> None:
    assert edit.parse_settings(["Smiling=0.8", " Male = -0.5"]) == {"Smiling": 0.8, "Male": -0.5}
    assert edit.parse_value("Male", "2") == 2.0  # extrapolation is allowed
    for text in ("nan", "-inf", "lots", ""):
        with pytest.raises(ValueError, match=f"Male={text!r} is not a finite number"):
            edit.parse_value("Male", text)
    with pytest.raises(ValueError, match="malformed setting 'Male=inf': expected NAME=FLOAT"):
        edit.parse_settings(["Male=inf"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "Smiling"], "NAME=FLOAT"),
        (["--set", "Smiling=lots"], "NAME=FLOAT"),
        (["--set", "=1"], "NAME=FLOAT"),
        (["--set", "Smiling=nan"], "NAME=FLOAT"),
        (["--set", "Smiling=1", "--set", "Smiling=0"], "more than once"),
        (["--strip", "Smiling", "--alphas", "0,,1"], "alphas"),
    ],
)
def test_malformed_options_are_rejected(
    trained: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli(trained["photo"], "--model", trained["model"], *args, "-o", tmp_path / "o.png")
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_corrupt_image_is_named(trained: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    result = cli(bad, "--model", trained["model"], "--set", "Smiling=1", "-o", tmp_path / "o.png")
    assert isinstance(result.exception, ValueError)
    assert "broken.jpg" in str(result.exception) and "not a readable image" in str(result.exception)
    assert (
        cli(
            tmp_path / "absent.jpg", "--model", trained["model"], "-o", tmp_path / "o.png"
        ).exit_code
        == 2
    )


@pytest.mark.parametrize(
    "attributes, img_size, message",
    [
        (("Smiling", "Eyeglasses"), 32, r"missing \['Male'\]"),
        (ATTRS, 64, "works at 64 px but the model at 32 px"),
    ],
)
def test_mismatched_classifier_is_refused(
    trained: dict[str, Path],
    tmp_path: Path,
    attributes: tuple[str, ...],
    img_size: int,
    message: str,
) -> None:
    other = save_classifier(tmp_path / "other.pt", attributes, img_size)
    result = cli(
        trained["photo"],
        "--model",
        trained["model"],
        "--set",
        "Smiling=1",
        "--classifier",
        other,
        "-o",
        tmp_path / "o.png",
    )
    assert isinstance(result.exception, ValueError)
    assert re.search(message, str(result.exception))
