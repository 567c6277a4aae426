"""experiments/*.sh: every `-S key=value` names a key of params.yaml (a typo would make
`dvc exp run` add a key that no stage reads, or fail only when the run starts)."""

import re

import pytest
import yaml

from tests.conftest import ROOT

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
SCRIPTS = sorted((ROOT / "experiments").glob("*.sh"))
SETTING = re.compile(r"""-S\s+["']?([A-Za-z_][\w.]*)=""")


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_experiment_settings_name_params_keys(script) -> None:
    keys = SETTING.findall(script.read_text())
    assert keys, f"{script.name} sets nothing"
    for key in keys:
        section, _, field = key.partition(".")
        assert section in PARAMS and (not field or field in PARAMS[section]), (
            f"{script.name}: -S {key} is not a params.yaml key"
        )
