"""kill -9 anywhere: each long stage, killed at seeded random moments and run again, ends exactly
where an uninterrupted run ends, and leaves no partial file behind.

    pytest -m reliability                      # 5 kills per stage (CI)
    FADER_KILLS=20 pytest -m reliability       # the slow run (docs/reliability.md)

Each stage runs as `python -m stages.cli ...` in its own process on the tiny configuration of
tests/test_stages.py, with one thread (a given thread count is bit-for-bit reproducible).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_stages import FAST_STAGES, add_committed_inputs, command, write_params

pytestmark = pytest.mark.reliability

KILLS = int(os.environ.get("FADER_KILLS", "5"))
#: The stages worth killing: every one that runs for more than an instant.
KILLED = ["download", "preprocess", "train_classifier", "train_fader", "evaluate"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "FADER_DEBUG": "1"}

#: What each stage produces that must come out identical: files by content, checkpoints by
#: their tensors (torch.save's bytes are not a promise), metrics by value.
OUTPUTS = {
    "download": ["data/raw"],
    "preprocess": ["data/prepared"],
    "train_classifier": ["models/classifier.pt", "metrics/train_classifier.json"],
    "train_fader": ["models/fader.pt", "metrics/train_fader.json"],
    "evaluate": ["metrics/evaluate.json", "metrics/swap_curve.json"],
}


def run(stage: str, root: Path, params: Path) -> subprocess.Popen:
    args = command(stage, root, root, params)
    return subprocess.Popen(
        [sys.executable, "-m", "stages.cli", *args],
        cwd=root,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(stage: str, root: Path, params: Path) -> float:
    """Run `stage` to the end; its wall time."""
    start = time.perf_counter()
    process = run(stage, root, params)
    _, errors = process.communicate(timeout=600)
    assert process.returncode == 0, f"{stage} failed:\n{errors}"
    return time.perf_counter() - start


def fingerprint(root: Path, stage: str) -> dict[str, object]:
    """The stage's outputs in comparable form."""
    found: dict[str, object] = {}
    for name in OUTPUTS[stage]:
        path = root / name
        if path.suffix == ".pt":
            state = torch.load(path, map_location="cpu", weights_only=True)["state"]
            found[name] = {
                k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in state.items()
            }
        elif path.suffix == ".json":
            found[name] = json.loads(path.read_text())
        else:
            found[name] = {
                str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(path.rglob("*"))
                if f.is_file()
            }
    return found


def leftovers(root: Path) -> list[str]:
    """Temporaries of interrupted writes (`fader.io`), anywhere in the outputs."""
    return sorted(
        str(p.relative_to(root))
        for top in ("data", "models", "metrics", "reports")
        for p in (root / top).rglob(".*")
        if p.name.endswith(".tmp") or p.name.endswith(".old")
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, float]]:
    """Every fast stage run once without interruption: the outputs and how long each took."""
    root = tmp_path_factory.mktemp("reference")
    params = write_params(root / "params.yaml")
    add_committed_inputs(root)
    durations = {stage: finish(stage, root, params) for stage in FAST_STAGES}
    return root, params, durations


@pytest.mark.parametrize("stage", KILLED)
def test_killed_anywhere_the_stage_ends_as_an_uninterrupted_run(
    stage: str, reference: tuple[Path, Path, dict[str, float]], tmp_path: Path
) -> None:
    source, params, durations = reference
    root = tmp_path / "run"
    root.mkdir()
    # the inputs the stage reads: the reference's outputs of the stages before it
    for earlier in FAST_STAGES[: FAST_STAGES.index(stage)]:
        for name in OUTPUTS.get(earlier, []) + (
            ["models/fader_checkpoints", "dvclive"] if earlier == "train_fader" else []
        ):
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
            copy(source / name, target)
    rng = np.random.default_rng(FAST_STAGES.index(stage))
    killed = 0
    for moment in rng.uniform(0.05, 0.95, KILLS) * durations[stage]:
        process = run(stage, root, params)
        time.sleep(moment)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.communicate(timeout=600)
    finish(stage, root, params)
    assert killed >= KILLS // 2, f"only {killed} of {KILLS} runs were still going when killed"
    assert fingerprint(root, stage) == fingerprint(source, stage)
    assert leftovers(root) == []
    # and the report of it: how many kills landed, for the table in docs/reliability.md
    print(f"\n{stage}: {killed} kills, resumed identically, 0 partial files")


def test_killed_while_linking_a_local_celeba_copy_the_download_ends_the_same(
    tmp_path: Path, shared_celeba: Path
) -> None:
    """The download of a local CelebA copy (`data.celeba_dir`: ../shared/celeba-mini, whose
    annotation files are the official ones, md5-checked): it links every image."""
    overrides = {"data": {"source": "celeba", "celeba_dir": str(shared_celeba)}}
    reference, root = tmp_path / "reference", tmp_path / "run"
    reference.mkdir()
    root.mkdir()
    params = write_params(tmp_path / "params.yaml", overrides)
    duration = finish("download", reference, params)
    rng = np.random.default_rng(99)
    killed = 0
    for moment in rng.uniform(0.05, 0.95, KILLS) * duration:
        process = run("download", root, params)
        time.sleep(moment)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.communicate(timeout=600)
    finish("download", root, params)
    assert killed >= KILLS // 2
    assert fingerprint(root, "download") == fingerprint(reference, "download")
    assert leftovers(root) == [] and not list(root.glob("data/.raw*"))  # the download cache too
    print(
        f"\ndownload of a local CelebA copy: {killed} kills, resumed identically, 0 partial files"
    )
