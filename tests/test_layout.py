"""The code's structure: dvc.yaml's deps follow the imports, layers import downward only, and the
command line starts without torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import fader
from tests.conftest import ROOT, load_script

deps = load_script(".ci/deps.py")


def documented_layers() -> dict[str, int]:
    """fader/__init__.py's list of layers: `fader.<module>` → its rank, 0 at the bottom."""
    bullets = [line for line in fader.__doc__.splitlines() if line.startswith("- ")]
    return {
        f"fader.{name}": rank
        for rank, bullet in enumerate(bullets)
        for name in re.findall(r"`(\w+)`", bullet.partition(": ")[0])
    }


#: Layers of the library: a module may import its own layer or lower ones.
LAYERS = documented_layers()


def test_the_documented_layers_cover_every_module_of_the_library() -> None:
    assert LAYERS["fader.io"] == 0 and LAYERS["fader.eval"] < LAYERS["fader.train"]
    top = {
        f"fader.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "fader").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert set(LAYERS) == top


def test_dvc_deps_are_exactly_the_code_each_stage_imports() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    dvc = yaml.safe_load(text)
    stages = dvc["stages"]
    problems = {
        stage: found
        for stage, module in deps.stage_modules(dvc).items()
        if (found := deps.dep_problems(stages[stage]["deps"], module))
    }
    assert not problems, f"dvc.yaml deps do not follow the imports (run `make deps`): {problems}"
    assert deps.rewrite(text) == text, "dvc.yaml's code deps are not as generated: run `make deps`"


def test_the_deps_check_catches_a_missing_and_a_needless_dep() -> None:
    listed = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train_fader"]["deps"]
    without = [d for d in listed if d != "fader/eval/swaps.py"]
    assert len(without) == len(listed) - 1
    assert deps.dep_problems(without, "stages.train_fader") == ["missing fader/eval/swaps.py"]
    assert deps.dep_problems([*listed, "fader/edit.py"], "stages.train_fader") == [
        "not imported: fader/edit.py"
    ]


def test_make_deps_rewrites_only_the_code_deps() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    broken = text.replace("      - fader/eval/swaps.py\n", "", 1)  # train_fader's
    broken = broken.replace(
        "      - fader/report\n", "      - fader/edit.py\n      - fader/report\n"
    )
    broken = broken.replace(
        "      - stages/_common.py\n      - stages/download.py\n",
        "      - stages/download.py\n      - stages/_common.py\n",
    )
    assert broken.count("\n") == text.count("\n") and broken != text
    assert deps.rewrite(broken) == text
    assert deps.generated_deps("stages.evaluate")[:3] == [
        "stages/__init__.py",
        "stages/_common.py",
        "stages/evaluate.py",
    ]
    # data, models and metrics stay where they were
    other = text.replace("      - data/prepared\n", "      - data/other\n")
    assert deps.rewrite(other) == other


def test_lazy_imports_count_and_folders_cover_their_files() -> None:
    # stages/evaluate.py imports the library inside its command only
    assert ROOT / "fader/eval/evaluate.py" in deps.closure("stages.evaluate")
    assert ROOT / "fader/eval/fid.py" in deps.closure("stages.evaluate")  # lazily, inside _fid
    assert deps.code_deps(["fader/train"]) == set((ROOT / "fader/train").glob("*.py"))
    assert "fader/eval" in deps.generated_deps("stages.evaluate")  # every file of it imported
    assert "fader/eval" not in deps.generated_deps("stages.train_fader")  # swaps.py only


def test_library_imports_only_downward_and_never_the_cli() -> None:
    def layer(module: str) -> int:
        return next(
            rank for prefix, rank in LAYERS.items() if deps.with_parents(module) >= {prefix}
        )

    upward = []
    for path in sorted((ROOT / "fader").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module == "fader":
            continue
        for imported in deps.imported_modules(path):
            assert imported.split(".")[0] == "fader", f"{module} imports {imported}"
            if imported != "fader" and layer(imported) > layer(module):
                upward.append(f"{module} -> {imported}")
    assert not upward, upward
    text = "\n".join(p.read_text() for p in (ROOT / "fader").rglob("*.py"))
    for forbidden in ("import typer", "import yaml", "from stages"):
        assert forbidden not in text


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("stages.cli", "torch"),  # `fader --help` answers at once
        ("fader.train.trainer", "pytorch_fid"),
        ("fader.eval.evaluate", "pytorch_fid"),
        ("fader.edit", "pytorch_fid"),
    ],
)
def test_imports_stay_light(module: str, absent: str) -> None:
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", f"importing {module} imports {absent}"


def test_cli_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stages.cli", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    for command in ("download", "preprocess", "train-classifier", "train", "evaluate", "edit"):
        assert command in result.stdout


def test_a_failing_command_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    args = ["render", "--data", str(tmp_path), "--model", str(tmp_path / "absent.pt")]
    args += ["--out", str(tmp_path / "out"), "--params", str(ROOT / "params.yaml")]
    command = [sys.executable, "-m", "stages.cli", *args]
    quiet = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "FADER_DEBUG": ""}
    )
    assert quiet.returncode == 1
    assert f"fader: error: checkpoint not found: {tmp_path / 'absent.pt'}" in quiet.stderr
    assert "Traceback" not in quiet.stderr and "--debug" in quiet.stderr
    loud = subprocess.run([*command, "--debug"], capture_output=True, text=True, cwd=ROOT)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "CheckpointError" in loud.stderr
    env = {**os.environ, "FADER_DEBUG": "1"}
    assert (
        "Traceback"
        in subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env).stderr
    )


def test_a_stage_dies_with_its_parent() -> None:
    """kill -9 of `dvc repro` must not leave its trainer running (Linux: PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    child = "from stages import _common; _common.setup(); import time; time.sleep(60)"
    parent = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    outer = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    pid = int(outer.stdout.readline())
    time.sleep(1.0)  # the child has called setup()
    outer.kill()
    outer.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            return  # gone, or a zombie nobody reaped: dead either way
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the stage outlived its parent")
