"""Atomic outputs: all or nothing, with ordinary permissions."""

import os
import subprocess
import sys
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


def test_leftovers_of_killed_writes_are_removed_by_the_next_write(tmp_path: Path) -> None:
    # what a kill -9 leaves: a temporary file, a temporary folder, an old folder mid-swap
    (tmp_path / ".last.pt.k2j3h4.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".prepared.x8y9.tmp").mkdir()
    (tmp_path / ".prepared.x8y9.tmp" / "images.npy").write_bytes(b"27 MB of it")
    (tmp_path / ".prepared.old").mkdir()
    (tmp_path / ".other.pt.a1b2.tmp").write_bytes(b"another path's: kept")
    io.write_bytes(tmp_path / "last.pt", b"new")
    with io.atomic_dir(tmp_path / "prepared") as tmp:
        (tmp / "meta.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.pt.a1b2.tmp",
        "last.pt",
        "prepared",
    ]


def test_an_exclusive_lock_refuses_a_second_holder_and_dies_with_the_first(tmp_path: Path) -> None:
    lock = tmp_path / ".ckpt.lock"
    with io.exclusive_lock(lock, "the folder ckpt"):
        with pytest.raises(
            io.LockedError, match=rf"the folder ckpt is in use by .*pid {os.getpid()}"
        ):
            with io.exclusive_lock(lock, "the folder ckpt"):
                pass
    with io.exclusive_lock(lock, "the folder ckpt"):  # released: free again
        pass
    # a holder killed with SIGKILL releases it too (the kernel drops the lock with the process)
    code = (
        "from fader import io; import os, signal\n"
        f"with io.exclusive_lock({str(lock)!r}, 'x'):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    with io.exclusive_lock(lock, "the folder ckpt"):
        pass
