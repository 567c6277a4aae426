"""Parameters overridden, never repeated: `stages._common.merge_overrides`, `.ci/params.py`, CI's
smoke configs (only the values that differ from params.yaml) and the tests' own defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from fader.config import flatten
from fader.train.config import TrainConfig
from stages import _common
from tests.conftest import ROOT, TEST_OVERRIDES, load_script, make
from tests.test_params import CONFIGS

params_script = load_script(".ci/params.py")

PARAMS = _common.read_mapping(ROOT / "params.yaml")
SMOKE_CONFIGS = [ROOT / ".ci/smoke.params.yaml", ROOT / ".ci/smoke.celeba.params.yaml"]


# ---------------------------------------------------------------------------------------------
# merge_overrides


def test_overrides_replace_values_inside_their_sections_and_change_no_input() -> None:
    base = {"seed": 0, "data": {"img_size": 64, "attributes": ["A", "B"]}, "model": {"n": 5}}
    overrides = {"data": {"attributes": ["C"]}, "seed": 3}
    merged = _common.merge_overrides(base, overrides)
    assert merged == {"seed": 3, "data": {"img_size": 64, "attributes": ["C"]}, "model": {"n": 5}}
    assert list(merged) == list(base)  # params.yaml's order
    assert base["data"]["attributes"] == ["A", "B"] and base["seed"] == 0
    assert overrides == {"data": {"attributes": ["C"]}, "seed": 3}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sed": 1}, r"smoke.yaml: unknown key 'sed', not in params.yaml \(valid keys: \['data'"),
        (
            {"data": {"img_sise": 32}},
            r"smoke.yaml: data: unknown key 'img_sise', not in params.yaml \(valid keys: "
            r"\['img_size'\]\)",
        ),
        ({"data": 32}, r"smoke.yaml: 'data' is a section of params.yaml: expected a mapping"),
    ],
)
def test_an_override_params_yaml_lacks_is_an_error_naming_it(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _common.merge_overrides({"data": {"img_size": 64}, "seed": 0}, overrides, "smoke.yaml")


def test_params_with_overrides_build_as_strictly_as_params_yaml() -> None:
    params = _common.Params(ROOT / "params.yaml", {"train_fader": {"n_epochs": 2}})
    assert params.build(TrainConfig, "train_fader").n_epochs == 2
    assert (
        params.build(TrainConfig, "train_fader").batch_size == PARAMS["train_fader"]["batch_size"]
    )
    with pytest.raises(ValueError, match="train_fader: unknown key 'epochs'"):
        _common.Params(ROOT / "params.yaml", {"train_fader": {"epochs": 2}})


# ---------------------------------------------------------------------------------------------
# CI's smoke configs


@pytest.mark.parametrize("path", SMOKE_CONFIGS, ids=lambda p: p.name)
def test_a_smoke_config_holds_only_values_that_differ_from_params_yaml(path: Path) -> None:
    overrides = flatten(_common.read_mapping(path))
    assert overrides
    same = [key for key, value in overrides.items() if value == flatten(PARAMS)[key]]
    assert not same, f"{path.name} repeats params.yaml's values of {same}: leave them out"


@pytest.mark.parametrize("path", SMOKE_CONFIGS, ids=lambda p: p.name)
def test_a_merged_smoke_config_builds_every_config(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "params.yaml"
    out.write_text(params_script.dump(params_script.merged_params(ROOT / "params.yaml", path)))
    params = _common.Params(out)
    for cls, section, supplied, shared in CONFIGS:
        params.build(cls, section, supplied, shared)
    assert params.seed == PARAMS["seed"]


# ---------------------------------------------------------------------------------------------
# .ci/params.py


APP = typer.Typer()
APP.command()(params_script.main)


def run_script(*args: str) -> Result:
    return CliRunner().invoke(APP, list(args))


def test_the_script_writes_params_yaml_with_the_overrides_and_each_set(tmp_path: Path) -> None:
    out = tmp_path / "params.yaml"
    result = run_script(
        str(ROOT / ".ci/smoke.celeba.params.yaml"),
        "--base",
        str(ROOT / "params.yaml"),
        "--set",
        "seed=2",
        "--set",
        "train_fader.precision=bf16",
        "--set",
        "data.celeba_dir=/somewhere/shared/celeba-mini",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Written by .ci/params.py")
    written = _common.read_mapping(out)
    expected = params_script.merged_params(ROOT / "params.yaml", SMOKE_CONFIGS[1])
    expected["seed"] = 2  # an int, as `sed` left it in the YAML text before
    expected["train_fader"]["precision"] = "bf16"
    expected["data"]["celeba_dir"] = "/somewhere/shared/celeba-mini"
    assert written == expected


def test_the_script_refuses_an_unknown_key_and_names_it(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({"train_fader": {"learning_rte": 0.1}}))
    result = run_script(str(overrides), "--base", str(ROOT / "params.yaml"))
    assert result.exit_code == 2
    assert "learning_rte" in result.output
    result = run_script(str(SMOKE_CONFIGS[0]), "--base", str(ROOT / "params.yaml"), "--set", "x")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_set_values_are_yaml() -> None:
    assert params_script.parse_set("a.b=1e-3") == {"a": {"b": 0.001}}
    assert params_script.parse_set("seed=1") == {"seed": 1}
    assert params_script.parse_set("a=[1, 2]") == {"a": [1, 2]}
    with pytest.raises(ValueError, match="dotted KEY"):
        params_script.parse_set("a..b=1")


# ---------------------------------------------------------------------------------------------
# The tests' defaults


def test_test_configs_take_every_unlisted_value_from_params_yaml() -> None:
    config = make(TrainConfig)
    for key, value in PARAMS["train_fader"].items():
        expected = TEST_OVERRIDES["train_fader"].get(key, value)
        assert getattr(config, key) == expected, key
