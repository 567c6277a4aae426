"""The code's structure: dvc.yaml's deps follow the imports, layers import downward only, and the
command line starts without torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stages.cli import app
from tests.conftest import ROOT

PACKAGES = ("fader", "stages")

#: Layers of the library (fader/__init__.py): a module may import its own layer or lower ones.
LAYERS = {
    "fader.io": 0,
    "fader.runtime": 0,
    "fader.config": 0,
    "fader.parallel": 0,
    "fader.image": 0,
    "fader.data": 1,
    "fader.model": 2,
    "fader.eval": 3,
    "fader.train": 4,  # model selection judges swaps with fader.eval.swaps
    "fader.report": 5,
    "fader.edit": 6,
    "fader.serve": 7,
}


def module_file(name: str) -> Path | None:
    """The file of module or package `name` in this repository, if it is one of ours."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Every fader/stages module that `path` imports, anywhere in it (lazy imports included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            # `from a import b` imports a.b when b is a module, else a
            names = [f"{base}.{alias.name}" for alias in node.names]
            names = [n if module_file(n) else base for n in names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES and module_file(n)}
    return found


def with_parents(name: str) -> set[str]:
    """`a.b.c` → {a, a.b, a.b.c}: importing a module runs its packages' __init__ too."""
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def closure(module: str) -> set[Path]:
    """The files of `module` and of everything it imports from fader/ and stages/, transitively."""
    seen: set[str] = set()
    todo = with_parents(module)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        file = module_file(name)
        assert file is not None, name
        for imported in imported_modules(file):
            todo |= with_parents(imported) - seen
    return {module_file(name) for name in seen}  # type: ignore[misc]


def stage_modules() -> dict[str, str]:
    """dvc.yaml stage → the module of the `fader` command it runs."""
    commands = {c.name: c.callback.__module__ for c in app.registered_commands}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    modules = {}
    for stage, spec in stages.items():
        words = spec["cmd"].split()
        assert words[0] == "fader", f"{stage}: {spec['cmd']}"
        modules[stage] = commands[words[1]]
    return modules


def code_deps(deps: list) -> set[Path]:
    """The Python files a stage's dvc.yaml deps cover (a folder covers every .py file in it)."""
    files = set()
    for dep in deps:
        path = ROOT / (dep if isinstance(dep, str) else next(iter(dep)))
        if path.relative_to(ROOT).parts[0] not in PACKAGES:
            continue
        files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return files


def dep_problems(deps: list, module: str) -> list[str]:
    """What a stage's deps miss of the code its command imports, and list without need."""
    needed, listed = closure(module), code_deps(deps)
    missing = [f"missing {p.relative_to(ROOT)}" for p in sorted(needed - listed)]
    extra = [f"not imported: {p.relative_to(ROOT)}" for p in sorted(listed - needed)]
    return missing + extra


def test_dvc_deps_are_exactly_the_code_each_stage_imports() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    problems = {
        stage: found
        for stage, module in stage_modules().items()
        if (found := dep_problems(stages[stage]["deps"], module))
    }
    assert not problems, f"dvc.yaml deps do not follow the imports: {problems}"


def test_the_deps_check_catches_a_missing_and_a_needless_dep() -> None:
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train_fader"]["deps"]
    without = [d for d in deps if d != "fader/eval/swaps.py"]
    assert len(without) == len(deps) - 1
    assert dep_problems(without, "stages.train_fader") == ["missing fader/eval/swaps.py"]
    assert dep_problems([*deps, "fader/edit.py"], "stages.train_fader") == [
        "not imported: fader/edit.py"
    ]


def test_lazy_imports_count_and_folders_cover_their_files() -> None:
    # stages/evaluate.py imports the library inside its command only
    assert ROOT / "fader/eval/evaluate.py" in closure("stages.evaluate")
    assert ROOT / "fader/eval/fid.py" in closure("stages.evaluate")  # lazily, inside _fid
    assert code_deps(["fader/train"]) == set((ROOT / "fader/train").glob("*.py"))


def test_library_imports_only_downward_and_never_the_cli() -> None:
    def layer(module: str) -> int:
        return next(rank for prefix, rank in LAYERS.items() if with_parents(module) >= {prefix})

    upward = []
    for path in sorted((ROOT / "fader").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if module == "fader":
            continue
        for imported in imported_modules(path):
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
