"""experiments/tradeoff.py: the λ_E sweep's finished runs become one point each, by family."""

import pytest

from tests.conftest import ROOT


@pytest.fixture
def tradeoff(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import tradeoff

    return tradeoff


def experiment(name: str, lam: float, mse: float, flips: dict[str, float]) -> dict:
    params = {
        "data": {
            "source": "celeba",
            "celeba_dir": "/x/celeba-mini",
            "split": "random",
            "img_size": 64,
        },
        "train_fader": {"lambda_max": lam},
    }
    attributes = {n: {"swap_accuracy": f} for n, f in flips.items()}
    evaluation = {
        "attributes": attributes,
        "mean": {"swap_accuracy": sum(flips.values()) / len(flips)},
        "reconstruction": {"mse": mse, "psnr": 20.0},
    }
    data = {
        "params": {"params.yaml": {"data": params}},
        "metrics": {"metrics/evaluate.json": {"data": evaluation}},
    }
    return {"revs": [{"name": name, "rev": "0" * 40, "data": data}]}


def test_finished_sweep_runs_become_points_by_family(tradeoff) -> None:
    runs = [
        experiment("celeba-tradeoff-recipe-0.01", 0.01, 0.03, {"Male": 0.9, "Smiling": 1.0}),
        experiment("celeba-tradeoff-recipe-0.001", 0.001, 0.02, {"Male": 0.5, "Smiling": 0.7}),
        experiment("celeba-tradeoff-official-0.0001", 1e-4, 0.02, {"Male": 0.4, "Smiling": 0.6}),
        experiment("celeba-tradeoff-recipe-0.1", 0.1, 0.09, {"Male": 1.0, "Smiling": 1.0}),
        experiment("ablation-mae", 0.002, 0.02, {"Male": 0.5, "Smiling": 0.5}),
    ]
    show = [{"data": {}}, {"experiments": runs}]
    finished = {"celeba-tradeoff-recipe-0.01", "celeba-tradeoff-recipe-0.001"}
    finished |= {"celeba-tradeoff-official-0.0001", "ablation-mae"}  # recipe-0.1 still queued
    families = tradeoff.points(show, finished, "celeba-tradeoff-")
    assert sorted(families) == ["official", "recipe"]
    recipe = families["recipe"]
    assert [p["lambda_e"] for p in recipe] == [0.001, 0.01]  # by λ_E; the unfinished one left out
    assert recipe[0] == {
        "experiment": "celeba-tradeoff-recipe-0.001",
        "data": "celeba-mini, random split, 64 px",
        "lambda_e": 0.001,
        "recon_mse": 0.02,
        "psnr": 20.0,
        "flip_accuracy": pytest.approx(0.6),
        "flip_Male": 0.5,
        "flip_Smiling": 0.7,
    }
    with pytest.raises(SystemExit, match="not named celeba-tradeoff-<family>-<λ_E>"):
        tradeoff.points(
            [
                {"data": {}},
                {"experiments": [experiment("celeba-tradeoff-x", 0.1, 0.1, {"Male": 1.0})]},
            ],
            {"celeba-tradeoff-x"},
            "celeba-tradeoff-",
        )
