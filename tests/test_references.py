"""What the code points readers at exists: the files it names and the `make` targets it offers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ROOT

#: Where references to other files and commands are written.
SEARCHED = ("fader", "stages", "tests", "benchmarks", ".ci", "experiments")
TOP_FILES = ("Makefile", "dvc.yaml", "params.yaml", "pyproject.toml")
#: Tests of link checkers, which name missing files on purpose.
LINK_TESTS = ("tests/test_docs.py", "tests/test_references.py")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def searched_texts() -> dict[Path, str]:
    """The repository's code and configuration, as text (binary files left out)."""
    texts = {}
    for path in tracked_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] not in SEARCHED and relative.as_posix() not in TOP_FILES:
            continue
        if relative.as_posix() in LINK_TESTS:
            continue
        try:
            texts[path] = path.read_text()
        except UnicodeDecodeError:
            continue
    return texts


def test_every_markdown_file_the_code_names_is_in_the_repository() -> None:
    names = {path.name for path in tracked_files()}
    dangling = sorted(
        f"{path.relative_to(ROOT)}: {reference}"
        for path, text in searched_texts().items()
        for reference in re.findall(r"[\w./-]*\w\.md\b", text)
        if not (ROOT / reference).is_file() and Path(reference).name not in names
    )
    assert not dangling, f"references to files this repository does not have: {dangling}"


def test_every_make_target_the_code_names_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    unknown = sorted(
        f"{path.relative_to(ROOT)}: make {target}"
        for path, text in searched_texts().items()
        for target in re.findall(r"[`(]make ([a-z][\w-]*)", text)
        if target not in targets
    )
    assert not unknown, f"no such Makefile target (targets: {sorted(targets)}): {unknown}"
