"""`.ci/check_stale.py`: which `dvc status` entries mean the committed results are stale."""

from tests.conftest import load_script

check_stale = load_script(".ci/check_stale.py")

TRACKED = {"fader/training.py", "params.yaml", "metrics/evaluate.json", "stages/train_fader.py"}


def test_missing_data_and_models_are_not_staleness() -> None:
    status = {
        "train_fader": [
            {"changed deps": {"data/prepared": "deleted", "models/classifier.pt": "not in cache"}},
            {"changed outs": {"models/fader.pt": "deleted"}},
        ]
    }
    assert check_stale.stale_entries(status, TRACKED) == []


def test_changed_code_params_metrics_and_command_are_staleness() -> None:
    status = {
        "train_fader": [
            {
                "changed deps": {
                    "fader/training.py": "modified",
                    "params.yaml": {"train_fader.n_epochs": "modified"},
                }
            }
        ],
        "evaluate": [{"changed outs": {"metrics/evaluate.json": "modified"}}, "changed command"],
    }
    found = check_stale.stale_entries(status, TRACKED)
    assert found == [
        "train_fader: fader/training.py modified",
        'train_fader: params.yaml {"train_fader.n_epochs": "modified"}',
        "evaluate: metrics/evaluate.json modified",
        "evaluate: command changed",
    ]
