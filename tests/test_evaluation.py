"""`fader.evaluation.evaluate` on known inputs: a fake autoencoder that paints the attribute code
into pixels and a fake classifier that reads them back, so every number has a closed form."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fader.config import ConfigError, build
from fader.data.config import PreprocessConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.eval import swaps
from fader.eval.evaluate import EvaluateConfig, _judge_batch, ablation_table, evaluate
from fader.eval.swaps import flip_attribute
from fader.model.networks import AttributeClassifier, AutoEncoder, ClassifierConfig, ModelConfig
from tests.conftest import make, make_raw_celeba, params_defaults

ATTRS = ("Smiling", "Male", "Eyeglasses")
SIZE = 32


class PaintingAutoEncoder(nn.Module):
    """E(x) = x; D(z, y) writes 2y - 1 into the red channel of pixel (0, i) for attribute i."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = z.clone()
        out[:, 0, 0, : y.shape[1]] = 2 * y - 1
        return out


class PixelReader(nn.Module):
    """Logit of attribute i = the red value of pixel (0, i): it sees exactly what was painted."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, : len(ATTRS)]


@pytest.fixture
def test_split(raw_celeba: Path, tmp_path: Path) -> PreparedDataset:
    prepare(
        raw_celeba,
        tmp_path / "prepared",
        make(PreprocessConfig, img_size=SIZE, attributes=ATTRS, workers=1),
        progress=False,
    )
    return PreparedDataset(tmp_path / "prepared", "test")


def run(data: PreparedDataset, **overrides: object) -> dict:
    config = make(EvaluateConfig, fid_images=0, batch_size=2, device="cpu", **overrides)
    return evaluate(PaintingAutoEncoder(), PixelReader(), data, config)


def test_every_score_has_its_closed_form(test_split: PreparedDataset) -> None:
    x, y = test_split.batch(list(range(len(test_split))))
    share_present = y.mean(0)  # real images have no red: the reader says "absent"
    result = run(test_split, alphas=(0.0, 0.5, 1.0, 2.0))
    painted_error = ((2 * y - 1) - x[:, 0, 0, : len(ATTRS)]) ** 2  # the only pixels that differ
    expected_mse = painted_error.sum(1).mean().item() / (3 * SIZE * SIZE)
    assert result["reconstruction"]["mse"] == pytest.approx(expected_mse, rel=1e-5)
    for i, name in enumerate(ATTRS):
        scores = result["attributes"][name]
        assert scores["real_accuracy"] == pytest.approx(1 - share_present[i].item())
        assert scores["reconstruction_accuracy"] == 1.0
        assert scores["swap_accuracy"] == 1.0
        assert scores["swap_accuracy_x2"] == 1.0
        assert scores["preservation_error"] == 0.0
        assert scores["official_set_accuracy"] == 1.0
    curve = {row["alpha"]: row for row in result["swap_curve"]}
    assert [curve[0.0][n] for n in ATTRS] == [0.0] * 3  # α = 0 keeps every value
    # α = 0.5 paints 0 (logit 0 reads "absent"): only images that had the attribute flip.
    assert [curve[0.5][n] for n in ATTRS] == pytest.approx(share_present.tolist())
    assert result["settings"]["images"] == len(test_split)
    assert result["mean"]["swap_accuracy"] == 1.0


def test_identical_reconstruction_scores_perfectly(test_split: PreparedDataset) -> None:
    class Copy(PaintingAutoEncoder):
        def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return z

    result = evaluate(
        Copy(), PixelReader(), test_split, make(EvaluateConfig, fid_images=0, device="cpu")
    )
    _, y = test_split.batch(list(range(len(test_split))))
    recon = result["reconstruction"]
    assert recon["mse"] == 0 and recon["rmse"] == 0
    assert recon["ssim"] == pytest.approx(1.0)
    assert recon["psnr"] == 100.0  # the stated cap
    # The code is ignored, so the reader always says "absent": only removals count as swaps.
    assert result["attributes"]["Smiling"]["swap_accuracy"] == pytest.approx(y[:, 0].mean().item())


def test_ablation_table_has_the_reports_shape(test_split: PreparedDataset) -> None:
    table = ablation_table(run(test_split))
    assert list(table) == ["Real", "AE", "Swap"]
    assert set(table["Swap"]) == set(ATTRS)
    assert table["Swap"]["Male"] == {"fid": None, "kid": None, "accuracy": 1.0}


def test_n_images_limits_the_images_judged(test_split: PreparedDataset) -> None:
    _, y = test_split.batch(list(range(len(test_split))))
    for n in (1, 2):
        result = run(test_split, n_images=n)
        assert result["settings"]["images"] == n
        # the scores are those of the first n images alone (which differ from the whole split's)
        share_present = y[:n].mean(0)
        assert not torch.equal(share_present, y.mean(0))
        for i, name in enumerate(ATTRS):
            real = result["attributes"][name]["real_accuracy"]
            assert real == pytest.approx(1 - share_present[i].item())


@pytest.mark.parametrize(
    "alphas, intensity, message",
    [
        ((0.0, 1.0), 2.0, r"alphas \[0.0, 1.0\] must hold 1 .* intensity 2; missing: 2$"),
        ((0.0, 2.0), 2.0, r"alphas \[0.0, 2.0\] must hold 1 .* intensity 2; missing: 1$"),
        ((0.5,), 3.0, r"missing: 1, 3$"),
    ],
)
def test_alphas_must_hold_1_and_the_intensity(
    alphas: tuple, intensity: float, message: str
) -> None:
    """Refused when the config is built (from params.yaml: a `ConfigError`), before any judging."""
    values = {**params_defaults(EvaluateConfig), "alphas": alphas, "intensity": intensity}
    with pytest.raises(ConfigError, match=message):
        build(EvaluateConfig, values, "evaluate")
    with pytest.raises(ValueError, match="must hold 1"):
        make(EvaluateConfig, alphas=alphas, intensity=intensity)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fid_images": 3}, "even number"),
        ({"n_images": -1}, "n_images"),
        ({"alphas": ()}, "at least one"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(EvaluateConfig, **overrides)


def test_flip_with_intensity_pushes_past_the_other_value() -> None:
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert flip_attribute(y, 0, 2.0).tolist() == [[2.0, 1.0], [-1.0, 0.0]]


def test_training_and_evaluate_judge_swaps_with_one_function(
    test_split: PreparedDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model selection (`swap_accuracy`) and the evaluate stage both call `swaps.judge_swap`, and
    a real network gets the same flip accuracy from both."""
    calls = []
    original = swaps.judge_swap

    def spy(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(args[4:])  # (index, alpha)
        return original(*args, **kwargs)

    monkeypatch.setattr(swaps, "judge_swap", spy)
    torch.manual_seed(0)
    cfg = dict(img_size=SIZE, n_attr=len(ATTRS), init_fm=4, max_fm=16)
    autoencoder = AutoEncoder(make(ModelConfig, n_layers=4, **cfg)).eval()
    classifier = AttributeClassifier(make(ClassifierConfig, **cfg)).eval()
    x, y = test_split.batch(list(range(len(test_split))))
    trained = swaps.swap_accuracy(autoencoder, classifier, x, y, ATTRS)
    assert calls == [(i, 1.0) for i in range(len(ATTRS))]
    config = make(EvaluateConfig, fid_images=0, batch_size=2, device="cpu", alphas=(1.0, 2.0))
    result = evaluate(autoencoder, classifier, test_split, config)
    assert len(calls) == len(ATTRS) + 2 * len(ATTRS) * -(-len(test_split) // 2)
    for name in ATTRS:
        assert result["attributes"][name]["swap_accuracy"] == pytest.approx(trained[name])


def test_a_batch_is_judged_on_its_own_device() -> None:
    """Every running sum lives where the batch does (issue #22: CPU zeros plus CUDA values broke
    the first evaluate on a GPU). On the "meta" device, which no CPU tensor may be mixed with,
    any sum built on the CPU raises "Expected all tensors to be on the same device"."""
    x = torch.zeros(4, 3, SIZE, SIZE, device="meta")
    y = torch.zeros(4, len(ATTRS), device="meta")
    sums = _judge_batch(PaintingAutoEncoder(), PixelReader(), x, y, alphas=(0.0, 1.0, 2.0))
    assert {key: value.device.type for key, value in sums.items()} == dict.fromkeys(sums, "meta")
    assert sums["swap_hits"].shape == (3, len(ATTRS))


class Thumbnail(nn.Module):
    """A stand-in for Inception: (B, 3, H, W) in [0, 1] → (B, 48) features, a 4x4 thumbnail."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 4).flatten(1)


def test_each_phase_shows_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Judging and the FID features each show a bar with an ETA; `progress=False` shows none."""
    raw = make_raw_celeba(tmp_path / "raw", n=40)
    config = make(PreprocessConfig, img_size=SIZE, attributes=ATTRS, workers=1)
    prepare(raw, tmp_path / "prepared", config, progress=False)
    test = PreparedDataset(tmp_path / "prepared", "test")
    assert len(test) >= 8  # KID needs 4 images in each half of the real set
    settings = make(EvaluateConfig, fid_images=8, batch_size=3, device="cpu")
    for progress in (True, False):
        capsys.readouterr()
        result = evaluate(
            PaintingAutoEncoder(), PixelReader(), test, settings, Thumbnail(), progress=progress
        )
        assert result["fid"]["images"] == 8
        bars = capsys.readouterr().err
        if not progress:
            assert bars == ""
            continue
        judged = f"evaluate: reconstructions and swaps: 100%.* {len(test)}/{len(test)} \\["
        assert re.search(judged, bars), bars
        features = 8 * (2 + len(ATTRS))  # real, reconstructions, one set of swaps per attribute
        assert re.search(f"evaluate: FID features: 100%.* {features}/{features} \\[", bars), bars
        assert "<" in bars  # tqdm's elapsed<remaining: the ETA
