"""dvc.yaml's code deps, generated from the imports: each stage depends on exactly the files of
`fader/` and `stages/` that its command imports, directly or not (lazy imports included).

    python .ci/deps.py           # rewrite each stage's code deps in dvc.yaml (`make deps`)
    python .ci/deps.py --check   # exit 1, with the differences, when dvc.yaml is not up to date

A stage's code deps are its command's module and the transitive closure of its imports, each
package's `__init__.py` included (importing `a.b` runs `a/__init__.py`). A folder stands for all
its files when the stage imports every one of them (`fader/model`), the stage module's
`stages/` files come first, then `fader/`'s, each in path order. Only those lines of a stage's
`deps:` change: its other deps (data, models, metrics), their order and the file's comments stay
as they are. tests/test_layout.py checks that dvc.yaml is up to date, and that the library's
layers import downward only, with the functions here.
"""

from __future__ import annotations

import ast
import difflib
import re
import sys
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = ROOT / "dvc.yaml"

#: Our packages, in the order their deps are listed.
PACKAGES = ("stages", "fader")


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


def stage_modules(dvc: dict) -> dict[str, str]:
    """dvc.yaml stage → the module of the `fader` command it runs."""
    from stages.cli import app

    commands = {c.name: c.callback.__module__ for c in app.registered_commands}
    modules = {}
    for stage, spec in dvc["stages"].items():
        words = spec["cmd"].split()
        if words[0] != "fader" or words[1] not in commands:
            raise ValueError(f"dvc.yaml: {stage}: not a `fader` command: {spec['cmd']!r}")
        modules[stage] = commands[words[1]]
    return modules


def is_code(dep: str) -> bool:
    """Whether a dep of dvc.yaml is code of ours (a path in fader/ or stages/)."""
    return Path(dep).parts[0] in PACKAGES


def code_deps(deps: list) -> set[Path]:
    """The Python files a stage's dvc.yaml deps cover (a folder covers every .py file in it)."""
    files = set()
    for dep in deps:
        name = dep if isinstance(dep, str) else next(iter(dep))
        if not is_code(name):
            continue
        path = ROOT / name
        files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return files


def dep_problems(deps: list, module: str) -> list[str]:
    """What a stage's deps miss of the code its command imports, and list without need."""
    needed, listed = closure(module), code_deps(deps)
    missing = [f"missing {p.relative_to(ROOT)}" for p in sorted(needed - listed)]
    extra = [f"not imported: {p.relative_to(ROOT)}" for p in sorted(listed - needed)]
    return missing + extra


def generated_deps(module: str) -> list[str]:
    """The code deps of a stage whose command is in `module`, as dvc.yaml lists them."""
    files = closure(module)
    listed: list[Path] = []
    for path in sorted(files, key=_order):
        folder = _whole_folder(path, files)
        if folder not in listed:
            listed.append(folder)
    return [path.relative_to(ROOT).as_posix() for path in listed]


def _order(path: Path) -> tuple[int, str]:
    relative = path.relative_to(ROOT)
    return PACKAGES.index(relative.parts[0]), relative.as_posix()


def _whole_folder(path: Path, files: set[Path]) -> Path:
    """The largest sub-package around `path` all of whose files are in `files`; else `path`."""
    found = path
    folder = path.parent
    while folder.parent != ROOT and set(folder.rglob("*.py")) <= files:
        found, folder = folder, folder.parent
    return found


_STAGE = re.compile(r"^  (\S+):\s*$")
_DEPS = re.compile(r"^    deps:\s*$")
_ITEM = re.compile(r"^      - (.+?)\s*$")


def rewrite(text: str) -> str:
    """dvc.yaml's `text` with each stage's code deps generated from the imports."""
    dvc = yaml.safe_load(text)
    modules = stage_modules(dvc)
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stage = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith(" ") and line.strip():
            stage = None  # a top-level key: past `stages:`
        if (match := _STAGE.match(line)) and match[1] in modules:
            stage = match[1]
        out.append(line)
        i += 1
        if stage is None or not _DEPS.match(line):
            continue
        block = []  # the deps list: items, with their own nested lines
        while i < len(lines) and (lines[i].startswith("      ") or not lines[i].strip()):
            block.append(lines[i])
            i += 1
        out += _replace_code(block, generated_deps(modules[stage]), stage)
    return "".join(out)


def _replace_code(block: list[str], generated: list[str], stage: str) -> list[str]:
    """A deps block with its code items replaced by `generated`, where the first one stood."""
    items = [(n, m[1]) for n, line in enumerate(block) if (m := _ITEM.match(line))]
    code = [n for n, dep in items if is_code(dep)]
    if code and code != list(range(code[0], code[-1] + 1)):
        raise ValueError(f"dvc.yaml: {stage}: code deps must be listed together")
    at = code[0] if code else len(block)
    new = [f"      - {dep}\n" for dep in generated]
    return block[:at] + new + block[at + len(code) :]


def main(
    check: bool = typer.Option(False, "--check", help="Only say whether dvc.yaml is up to date."),
) -> None:
    """Rewrite dvc.yaml's code deps from the imports (or, with --check, exit 1 if they differ)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # this checkout's stages/, whatever is installed
    text = DVC_YAML.read_text()
    new = rewrite(text)
    if new == text:
        typer.echo("dvc.yaml: code deps up to date")
        return
    if check:
        diff = difflib.unified_diff(text.splitlines(), new.splitlines(), "dvc.yaml", "generated")
        typer.echo("\n".join(diff))
        typer.echo("dvc.yaml's code deps do not follow the imports: run `make deps`")
        raise typer.Exit(1)
    DVC_YAML.write_text(new)
    typer.echo("dvc.yaml: code deps rewritten")


if __name__ == "__main__":
    typer.run(main)
