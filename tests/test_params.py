"""params.yaml is complete and the only source of values: every key missing, unknown or of the
wrong type is an error that names the key, the section and the valid keys."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fader.config import ConfigError, field_names, flatten
from fader.data.config import PreprocessConfig, SourceConfig
from fader.eval.evaluate import EvaluateConfig
from fader.eval.inception import InceptionConfig
from fader.model.networks import ClassifierConfig, ModelConfig
from fader.report.render import RenderConfig
from fader.train.config import ClassifierTrainConfig, TrainConfig
from stages import _common
from stages.cli import app
from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
SEED = {"seed": 0}
SHAPE = {"img_size": 64, "n_attr": 3}

#: What each stage builds from params.yaml: (config class, section, supplied, shared with).
CONFIGS: list[tuple[type, str, dict[str, Any], list[type]]] = [
    (SourceConfig, "data", SEED, [PreprocessConfig]),
    (PreprocessConfig, "data", SEED, [SourceConfig]),
    (ClassifierConfig, "train_classifier", SHAPE, [ClassifierTrainConfig]),
    (ClassifierTrainConfig, "train_classifier", {}, [ClassifierConfig]),
    (ModelConfig, "model", SHAPE, []),
    (TrainConfig, "train_fader", {}, []),
    (InceptionConfig, "inception", {}, []),
    (EvaluateConfig, "evaluate", {}, []),
    (RenderConfig, "render", {}, []),
]


def write_params(tmp_path: Path, section: str, values: dict[str, Any]) -> _common.Params:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, section: values}))
    return _common.Params(path)


def test_the_committed_params_build_every_config() -> None:
    params = _common.Params(ROOT / "params.yaml")
    for cls, section, supplied, shared in CONFIGS:
        config = params.build(cls, section, supplied, shared)
        for name in field_names(cls):
            expected = supplied[name] if name in supplied else PARAMS[section][name]
            value = getattr(config, name)
            assert value == (tuple(expected) if isinstance(expected, list) else expected), name


def test_every_section_key_is_read_by_some_config() -> None:
    read = {(section, name) for cls, section, _, _ in CONFIGS for name in field_names(cls)}
    for section in {section for _, section, _, _ in CONFIGS}:
        for key in PARAMS[section]:
            assert (section, key) in read, f"{section}.{key} is read by no config"


@pytest.mark.parametrize(
    ("cls", "section", "supplied", "shared"), CONFIGS, ids=[c[0].__name__ for c in CONFIGS]
)
def test_a_deleted_key_names_the_key_the_section_and_the_valid_keys(
    tmp_path: Path, cls: type, section: str, supplied: dict, shared: list
) -> None:
    keys = [name for name in field_names(cls) if name not in supplied]
    assert keys
    for key in keys:
        values = {k: v for k, v in PARAMS[section].items() if k != key}
        params = write_params(tmp_path, section, values)
        with pytest.raises(ConfigError) as error:
            params.build(cls, section, supplied, shared)
        message = str(error.value)
        assert f"params.yaml: {section}: missing key(s) [{key!r}]" in message
        assert "valid keys: [" in message and repr(key) in message.partition("valid keys")[2]


@pytest.mark.parametrize(
    ("cls", "section", "supplied", "shared"), CONFIGS, ids=[c[0].__name__ for c in CONFIGS]
)
def test_an_unknown_key_is_refused(
    tmp_path: Path, cls: type, section: str, supplied: dict, shared: list
) -> None:
    params = write_params(tmp_path, section, {**PARAMS[section], "lambda_maxx": 1})
    with pytest.raises(ConfigError, match=rf"{section}: unknown key\(s\) \['lambda_maxx'\]"):
        params.build(cls, section, supplied, shared)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("flip", "false", r"flip: Input should be a valid boolean \(got 'false'\)"),
        ("n_epochs", 1.5, r"n_epochs: Input should be a valid integer \(got 1.5\)"),
        ("batch_size", True, r"batch_size: Input should be a valid integer \(got True\)"),
        ("lambda_max", math.nan, r"lambda_max: Input should be a finite number"),
        ("lambda_max", -1, r"lambda_max: Input should be greater than or equal to 0"),
        ("learning_rate", "fast", r"learning_rate: Input should be a valid number"),
        ("recon_loss", "l3", r"recon_loss: Input should be 'mse', 'mae' or 'huber'"),
    ],
)
def test_wrong_types_and_values_are_refused(
    tmp_path: Path, key: str, value: Any, message: str
) -> None:
    params = write_params(tmp_path, "train_fader", {**PARAMS["train_fader"], key: value})
    with pytest.raises(ConfigError, match=rf"params.yaml: train_fader: {message}"):
        params.build(TrainConfig, "train_fader")


def test_a_stage_fails_on_a_deleted_key(tmp_path: Path) -> None:
    render = {k: v for k, v in PARAMS["render"].items() if k != "n_alphas"}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**PARAMS, "render": render}))
    args = ["render", "--data", str(tmp_path), "--model", str(tmp_path / "f.pt")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out"), "--params", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "render: missing key(s) ['n_alphas']" in str(result.exception)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_exponents_are_numbers_as_dvc_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    text = yaml.safe_dump(PARAMS).replace("learning_rate: 0.0005", "learning_rate: 5e-4")
    assert "learning_rate: 5e-4" in text  # PyYAML alone would read the string '5e-4'
    path.write_text(text)
    assert _common.Params(path).build(TrainConfig, "train_fader").learning_rate == 5e-4


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train_fader", "lambda_max", 1e30, "lambda_max: Input should be less than or equal to 1"),
        ("train_fader", "learning_rate", 10.0, "learning_rate: Input should be less than or equal"),
        ("data", "attributes", "Smiling", "attributes: Input should be a valid tuple"),
        ("data", "attributes", [], "no attributes selected"),
        ("data", "split_fractions", [0.5, 0.5, 0.5], "split_fractions must sum to 1"),
        ("data", "img_size", 100, "img_size: Input should be 32, 64, 128 or 256"),
    ],
)
def test_out_of_range_values_are_refused_at_load_time(
    tmp_path: Path, section: str, key: str, value: Any, message: str
) -> None:
    params = write_params(tmp_path, section, {**PARAMS[section], key: value})
    cls, supplied, shared = {
        "train_fader": (TrainConfig, {}, []),
        "data": (PreprocessConfig, SEED, [SourceConfig]),
    }[section]
    with pytest.raises(ConfigError, match=re.escape(message)):
        params.build(cls, section, supplied, shared)


def test_flatten_joins_nested_keys_with_the_top_level_values_first() -> None:
    tree = {"z": 1, "a": {"x": 1, "b": {"c": 2, "d": {}}, "y": 3}, "e": {}, "f": [1, 2]}
    assert list(flatten(tree, sep="/").items()) == [
        ("z", 1),
        ("f", [1, 2]),
        ("a/x", 1),
        ("a/b/c", 2),
        ("a/y", 3),
    ]
