"""Atomic outputs: all or nothing, with ordinary permissions."""

from pathlib import Path

import pytest

from fader import io


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_directory_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    with io.atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), io.atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]


def test_outputs_get_the_modes_of_plain_files_and_folders(tmp_path: Path) -> None:
    io.write_text(tmp_path / "file.txt", "x")
    with io.atomic_dir(tmp_path / "folder"):
        pass
    assert (tmp_path / "file.txt").stat().st_mode & 0o777 == io.FILE_MODE
    assert (tmp_path / "folder").stat().st_mode & 0o777 == io.DIR_MODE
