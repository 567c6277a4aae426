"""benchmarks/gpu_check.py, the first-day GPU check, in its CPU `--dry-run` mode: every line OK
or SKIP, and its JSON summary well-formed.

The in-process checks run here in the default test run (seconds); the whole dry run, with its
tiny `dvc repro` and its kills, takes 2 to 4 minutes on 2 cores: `slow` here, and a step of
its own in CI (.ci/run).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check
from stages._common import merge_overrides, read_mapping

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(OK|SKIP|FAIL) (\w+) \((\d+\.\d) s\): (.+)$")
#: The checks that run in-process in seconds on the CPU.
FAST = [
    "environment",
    "data_on_device",
    "host_syncs",
    "throughput_fp32",
    "throughput_bf16",
    "throughput_bf16_graphs",
]


def check_report(output: str, summary_path: Path, names: list[str]) -> dict:
    """One line per check in `names`, each OK or SKIP, then the totals; the JSON matches."""
    lines = output.strip().splitlines()
    matches = [LINE.match(line) for line in lines[:-1]]
    assert all(matches), output
    assert [m.group(2) for m in matches] == names, output
    assert {m.group(1) for m in matches} <= {"OK", "SKIP"}, output
    summary = json.loads(summary_path.read_text())
    assert summary["dry_run"] is True
    assert [c["name"] for c in summary["checks"]] == names
    for check, match in zip(summary["checks"], matches, strict=True):
        assert check["status"] == match.group(1) and check["message"] == match.group(4)
        assert isinstance(check["seconds"], float) and isinstance(check["values"], dict)
    assert summary["counts"]["FAIL"] == 0
    return summary


def test_the_in_process_checks_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--dry-run", "--out", str(tmp_path / "out.json")]
    assert gpu_check.main([*args, *(f"--only={name}" for name in FAST)]) == 0
    summary = check_report(capsys.readouterr().out, tmp_path / "out.json", FAST)
    checks = {c["name"]: c for c in summary["checks"]}
    assert checks["data_on_device"]["status"] == "OK"  # bit-identical on the CPU too
    assert checks["host_syncs"]["status"] == "SKIP"  # needs CUDA, after running the steps
    assert "not implemented" in checks["throughput_bf16_graphs"]["message"]
    for name in ("throughput_fp32", "throughput_bf16"):
        values = checks[name]["values"]
        assert values["it_per_s"] > 0 and values["peak_memory_mib"] > 0
        assert values["paper_schedule_hours"] == pytest.approx(
            gpu_check.PAPER_ITERATIONS / values["it_per_s"] / 3600
        )


def test_a_failing_check_is_reported_and_the_next_one_runs(tmp_path: Path) -> None:
    def broken(ctx: gpu_check.Context) -> str:
        ctx.values["partial"] = 1
        raise ValueError("boom")

    def skipped(ctx: gpu_check.Context) -> str:
        raise gpu_check.Skip("needs CUDA")

    checks = {"broken": broken, "skipped": skipped, "fine": lambda ctx: "all good"}
    lines: list[str] = []
    ctx = gpu_check.Context(True, tmp_path, deadline=float("inf"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu_check, "CHECKS", checks)
        results = gpu_check.run_checks(list(checks), ctx, lines.append)
    assert [r["status"] for r in results] == ["FAIL", "SKIP", "OK"]
    assert lines[0].startswith("FAIL broken (") and lines[0].endswith("): ValueError: boom")
    assert results[0]["values"]["partial"] == 1 and "boom" in results[0]["values"]["traceback"]
    assert lines[1].endswith("): needs CUDA") and lines[2].endswith("): all good")
    late = gpu_check.Context(True, tmp_path, deadline=0.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu_check, "CHECKS", checks)
        (result,) = gpu_check.run_checks(["fine"], late, lines.append)
    assert (result["status"], result["message"]) == ("SKIP", "out of time (--budget)")


@pytest.mark.parametrize("dry_run", [True, False])
def test_the_tiny_pipeline_overrides_only_keys_of_params_yaml(dry_run: bool) -> None:
    overrides = gpu_check.pipeline_overrides(dry_run)
    params = merge_overrides(read_mapping(REPO / "params.yaml"), overrides, "gpu_check")
    device = "cpu" if dry_run else "cuda"
    stages = ("train_classifier", "train_fader", "evaluate", "render")
    assert all(params[stage]["device"] == device for stage in stages)
    assert params["evaluate"]["fid_images"] == 0  # the Inception weights are a placeholder
    assert params["train_classifier"]["patience"] >= params["train_classifier"]["max_epochs"]


def test_the_paper_schedule_is_the_docs_figure() -> None:
    assert round(gpu_check.PAPER_ITERATIONS / 1e6, 2) == 1.56
    assert "1.56 M iterations" in " ".join((REPO / "docs" / "scale.md").read_text().split())
    assert gpu_check.PAPER == gpu_check.Shape(256, 7, 16, 32)


def test_the_gpu_tests_are_collected_from_their_own_files() -> None:
    files = gpu_check.gpu_test_files()
    assert "tests/test_precision.py" in files and "tests/test_gpu_check.py" not in files
    assert all("@pytest.mark.gpu" in (REPO / name).read_text() for name in files)


def test_a_tree_without_git_is_copied_without_its_ignored_folders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device machine's copy of the tree may have no .git: every file but the ignored ones."""
    tracked = set(gpu_check.tree_files())
    assert {"dvc.yaml", "params.yaml", ".dvc/config", "benchmarks/gpu_check.py"} <= tracked

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(gpu_check.subprocess, "run", no_git)
    walked = set(gpu_check.tree_files())
    assert tracked <= walked
    for name in walked:
        parts = Path(name).parts
        assert parts[0] not in gpu_check.IGNORED_AT_TOP, name
        assert not set(parts) & gpu_check.IGNORED_ANYWHERE, name
        assert "/".join(parts[:2]) not in gpu_check.DVC_STATE, name


@pytest.mark.slow
def test_the_whole_dry_run(tmp_path: Path) -> None:
    """Every check, the tiny `dvc repro` with its two kills included (2 to 4 minutes)."""
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = check_report(done.stdout, out, list(gpu_check.CHECKS))
    checks = {c["name"]: c for c in summary["checks"]}
    for stage in ("train_classifier", "train_fader"):
        values = checks[f"kill_resume_{stage}"]["values"]
        assert 1 <= values["killed_after_epoch"] < values["epochs"]
    assert checks["pipeline_finish"]["status"] == "OK"
