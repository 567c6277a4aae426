"""The first-day GPU check: one script, the repository alone, under 8 minutes on one GPU.

    python benchmarks/gpu_check.py --out $OUT/gpu_check.json     # on the GPU (make gpu-check)
    python benchmarks/gpu_check.py --dry-run                     # the same checks on the CPU
    python benchmarks/gpu_check.py --only data_on_device --only host_syncs

Each check prints one line, `OK`, `SKIP` (with the reason) or `FAIL` (with the error), and the
run ends with a JSON summary (`--out`): per check its status, seconds and measured numbers.
Every input is made on the spot (synthetic faces, random images); nothing is downloaded.

- `environment`: torch, the GPU, and the packages the pipeline imports (the device image lacks
  some: docs/scale.md says how to carry them).
- `gpu_tests`: `pytest -m gpu` in its own process; its summary line.
- `pipeline_prepare`, `kill_resume_train_classifier`, `kill_resume_train_fader`,
  `pipeline_finish`: a tiny `dvc repro` of every stage on the device, in a scratch copy of the
  repository (as `.ci/smoke` makes one); each training stage is killed with SIGKILL (the whole
  `dvc repro` process group) once its first `last.pt` exists, and the same `dvc repro` must
  resume it ("resuming" in its log) and finish. The FID Inception weights cannot be fetched
  offline: the tiny run computes no FID (`evaluate.fid_images: 0`), so the `inception` stage is
  committed with a placeholder file that nothing reads.
- `nccl_group_of_one`: `fader train --nproc 1` launched by torchrun (`torch.distributed.run
  --standalone --nproc-per-node 1`) on the tiny pipeline's data, with `NCCL_DEBUG=INFO`: it must
  finish, and NCCL must have set up a communicator.
- `data_on_device`: a few iterations with the training split on the device and from the memory
  map give bit-identical weights (deterministic algorithms; a second memory-map run is the
  control that the run repeats at all).
- `host_syncs`: host syncs per iteration in the steady state, counted with
  `torch.cuda.set_sync_debug_mode("warn")` between two logging steps (fp32, bf16; fp16 for
  information): 0 is the design (docs/benchmarks.md, "No host sync per step").
- `throughput_fp32`, `throughput_bf16`, `throughput_bf16_graphs`: iterations per second at the
  paper's shape (256 px, 7 layers, init_fm 16, batch 32, max_fm 512; the training split on the
  device, channels_last as `memory_format: auto` picks on CUDA), peak GPU memory, and the hours
  the paper's 1.56 M iterations would take at that rate. fp32 is PyTorch's default on CUDA
  (cuDNN convolutions in TF32, matmuls in fp32). CUDA graphs are not implemented yet: SKIP.

`--dry-run` runs the same checks on the CPU at tiny sizes, so that CI keeps the script working
(tests/test_gpu_check.py): a check that needs CUDA runs its code as far as the CPU allows, then
reports SKIP with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: `benchmarks` and `fader` importable
    sys.path.insert(0, str(REPO_ROOT))

#: The paper's schedule: 1,000 epochs of 50,000 images in batches of 32 (docs/scale.md: 1.56 M
#: iterations), counted as `TrainConfig.steps_per_epoch` counts them.
PAPER_ITERATIONS = 1000 * math.ceil(50_000 / 32)
#: What the whole GPU run may take (a check that would start later is skipped, "out of time"):
#: 8 minutes of the device's time, less its start. A dry run is not timed out.
DEFAULT_BUDGET_S = 450.0
DRY_RUN_BUDGET_S = 3600.0
#: The modules the pipeline imports that a bare GPU image may lack, by import name.
PIPELINE_MODULES = ("dvc", "dvclive", "pydantic", "typer", "yaml", "pandas", "PIL", "tqdm")
PIPELINE_MODULES += ("matplotlib", "scipy", "gdown", "requests", "pytest")
#: Written into the JSON under each failing subprocess's check: the end of its output.
LOG_TAIL_CHARS = 3000


class Skip(Exception):
    """The check ran as far as it could here; the message says why it stopped."""


@dataclass
class Context:
    """What the checks share: the mode, the scratch folder and the tiny pipeline's state."""

    dry_run: bool
    scratch: Path
    deadline: float
    values: dict[str, Any] = field(default_factory=dict)  # the running check's numbers
    pipeline: Path | None = None  # the scratch repository, once pipeline_prepare made it

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 1.0)

    def need_cuda(self, what: str) -> None:
        """SKIP here on the CPU (the code up to this point ran)."""
        if self.dry_run:
            raise Skip(f"{what} needs CUDA (dry run: ran on the CPU up to here)")


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------


def _env(ctx: Context, **extra: str) -> dict[str, str]:
    """The environment of a pipeline command: the scratch copy's code first, no DVC analytics,
    and `fader` on PATH (a shim: the device image has the code, not the installed package)."""
    assert ctx.pipeline is not None
    paths = [str(ctx.pipeline), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "PATH": f"{ctx.scratch / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _run(ctx: Context, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `args` to the end (within the time left); its output, or RuntimeError with its end."""
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=ctx.remaining(),
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{' '.join(args[:6])}: timed out after {error.timeout:.0f} s") from None
    if done.returncode != 0:
        ctx.values["log_tail"] = done.stdout[-LOG_TAIL_CHARS:]
        lines = done.stdout.strip().splitlines() or ["(no output)"]
        errors = [line for line in lines if "error" in line.lower()]
        raise RuntimeError(f"{' '.join(args[:6])}: exit {done.returncode}: {(errors or lines)[-1]}")
    return done.stdout


def _dvc(ctx: Context, *args: str) -> str:
    assert ctx.pipeline is not None
    return _run(ctx, [sys.executable, "-m", "dvc", *args], ctx.pipeline, _env(ctx))


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def check_environment(ctx: Context) -> str:
    import torch

    missing = [name for name in PIPELINE_MODULES if importlib.util.find_spec(name) is None]
    ctx.values |= {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "missing_modules": missing,
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        ctx.values |= {
            "gpu": properties.name,
            "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
            "compute_capability": f"{properties.major}.{properties.minor}",
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    if missing:
        raise RuntimeError(f"missing Python packages {missing}: carry them (docs/scale.md)")
    if not ctx.dry_run and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device (use --dry-run on a CPU)")
    return f"torch {torch.__version__}, " + (ctx.values.get("gpu") or "no GPU")


def gpu_test_files() -> list[str]:
    """The test modules holding `gpu`-marked tests: only they are collected, so that modules
    importing what a GPU image lacks (the browser tests' Playwright) cannot stop the run."""
    tests = sorted((REPO_ROOT / "tests").glob("test_*.py"))
    marked = re.compile(r"^(@pytest\.mark\.gpu|pytestmark = .*pytest\.mark\.gpu)\b", re.M)
    return [str(p.relative_to(REPO_ROOT)) for p in tests if marked.search(p.read_text())]


def check_gpu_tests(ctx: Context) -> str:
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    paths = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    files = gpu_test_files()
    ctx.values["files"] = files
    done = subprocess.run(
        [*command, *files],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=ctx.remaining(),
    )
    lines = done.stdout.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else "(no output)"
    ctx.values |= {"summary": summary, "returncode": done.returncode}
    if done.returncode != 0:
        ctx.values["log_tail"] = done.stdout[-LOG_TAIL_CHARS:]
        raise RuntimeError(f"pytest -m gpu: {summary}")
    if " passed" not in summary:
        if ctx.dry_run:
            raise Skip(f"the gpu tests skip without CUDA ({summary})")
        raise RuntimeError(f"no gpu test ran: {summary}")
    return summary


#: Not copied when the tree is no git checkout (a device machine's copy): .gitignore's folders,
#: at the top (`/data/`) and anywhere (`__pycache__/`), and DVC's own state.
IGNORED_AT_TOP = {".git", ".venv", ".whl", ".gl", "data", "models", "reports", "dvclive"}
IGNORED_AT_TOP |= {"dvc_plots", ".pytest_cache", ".benchmarks", ".hypothesis", ".ruff_cache"}
IGNORED_ANYWHERE = {"__pycache__"}
DVC_STATE = {".dvc/cache", ".dvc/tmp"}


def tree_files() -> list[str]:
    """The files `.ci/smoke` copies (tracked, and untracked but not ignored); in a tree that is
    no git checkout, every file outside the ignored folders and DVC's cache."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for folder, dirs, files in os.walk(REPO_ROOT):
            here = Path(folder).relative_to(REPO_ROOT)
            top = here == Path(".")
            dirs[:] = [
                d
                for d in dirs
                if d not in IGNORED_ANYWHERE
                and not (top and d in IGNORED_AT_TOP)
                and str(here / d) not in DVC_STATE
            ]
            names += [str(here / f) for f in files if not (top and f in IGNORED_AT_TOP)]
    return [name for name in names if (REPO_ROOT / name).is_file()]


#: Each pipeline stage's device, and the tiny sizes: GPU runs are long enough for a kill to land
#: mid-run (the first `last.pt` after one of several epochs), dry runs as short as that allows.
def pipeline_overrides(dry_run: bool) -> dict[str, Any]:
    device = "cpu" if dry_run else "cuda"
    return {
        "data": {"synthetic_size": 80 if dry_run else 400, "img_size": 32, "workers": 2},
        "model": {"n_layers": 4, "init_fm": 4 if dry_run else 16, "max_fm": 16 if dry_run else 128},
        "train_classifier": {
            "init_fm": 4,
            "max_fm": 16,
            "batch_size": 16,
            "max_epochs": 3 if dry_run else 20,
            "patience": 20,
            "device": device,
        },
        "train_fader": {
            "batch_size": 8,
            "epoch_size": 64 if dry_run else 1600,
            "n_epochs": 3 if dry_run else 6,
            "lambda_schedule": 8,
            "log_every": 4,
            "device": device,
        },
        "evaluate": {"fid_images": 0, "batch_size": 8, "device": device},
        "render": {"n_images": 2, "n_alphas": 3, "device": device},
    }


def check_pipeline_prepare(ctx: Context) -> str:
    """The scratch repository (`tree_files` copied, git init, the tiny params.yaml), then `dvc
    repro preprocess` (download and preprocess) and the placeholder Inception weights."""
    import yaml

    from stages._common import merge_overrides, read_mapping

    root = ctx.scratch / "repo"
    for name in tree_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, root / name)
    params = merge_overrides(
        read_mapping(REPO_ROOT / "params.yaml"), pipeline_overrides(ctx.dry_run), "gpu_check"
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shim = ctx.scratch / "bin" / "fader"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(
        f"#!{sys.executable}\nimport sys\nfrom stages.cli import main\nsys.exit(main())\n"
    )
    shim.chmod(0o755)
    ctx.pipeline = root
    if shutil.which("git"):
        git = ["git", "-c", "user.name=gpu-check", "-c", "user.email=gpu-check@localhost"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "gpu check"]):
            _run(ctx, [*git, *args], root)
    else:  # an image without git: DVC without an SCM
        _dvc(ctx, "config", "core.no_scm", "true")
    ctx.values["git"] = shutil.which("git") is not None
    _dvc(ctx, "repro", "preprocess")
    # no FID in the tiny run (evaluate.fid_images 0): the weights are a dependency nothing reads
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["inception"]
    weights = root / stage["outs"][0]
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"placeholder: the tiny pipeline computes no FID\n")
    _dvc(ctx, "commit", "--force", "inception")
    images = len(list((root / "data" / "raw").rglob("*.jpg")))
    ctx.values["images"] = images
    return f"download + preprocess: {images} synthetic faces ({ctx.device})"


def _kill_and_resume(ctx: Context, stage: str, last: str, epochs_key: str, resumed: str) -> str:
    """`dvc repro stage`, SIGKILLed (its whole process group) once `last` exists, then again:
    it must resume and finish."""
    import torch

    if ctx.pipeline is None:
        raise RuntimeError("needs pipeline_prepare, which failed")
    root = ctx.pipeline
    path = root / last
    log_path = ctx.scratch / f"{stage}.killed.log"  # a file: a full pipe would stall the run
    with log_path.open("w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro", stage],
            cwd=root,
            env=_env(ctx),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + min(ctx.remaining(), 240)
        while not path.is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # dvc and the stage's process with it
        first.wait()
    output = log_path.read_text(errors="replace")
    if not path.is_file():
        ctx.values["log_tail"] = output[-LOG_TAIL_CHARS:]
        raise RuntimeError(f"no {last} before the kill (exit {first.returncode})")
    epoch = int(torch.load(path, map_location="cpu", weights_only=False)["epoch"])
    params = yaml_section(root, stage)
    total = params[epochs_key]
    ctx.values |= {"killed_after_epoch": epoch, "epochs": total}
    if epoch >= total:
        raise RuntimeError(f"{stage} ended (epoch {epoch}) before the kill: nothing to resume")
    again = _dvc(ctx, "repro", stage)
    if resumed not in again:
        ctx.values["log_tail"] = again[-LOG_TAIL_CHARS:]
        raise RuntimeError(f"the rerun did not resume (no {resumed!r} in its log)")
    return f"killed after epoch {epoch} of {total}, resumed and finished ({ctx.device})"


def yaml_section(root: Path, stage: str) -> dict[str, Any]:
    from stages._common import read_mapping

    return read_mapping(root / "params.yaml")[stage]


def check_kill_resume_train_classifier(ctx: Context) -> str:
    last = "models/classifier_checkpoints/last.pt"
    return _kill_and_resume(ctx, "train_classifier", last, "max_epochs", "resuming the classifier")


def check_kill_resume_train_fader(ctx: Context) -> str:
    last = "models/fader_checkpoints/last.pt"
    result = _kill_and_resume(ctx, "train_fader", last, "n_epochs", "resuming from")
    assert ctx.pipeline is not None
    metrics = json.loads((ctx.pipeline / "metrics" / "train_fader.json").read_text())
    if metrics["last"]["epoch"] != ctx.values["epochs"]:
        raise RuntimeError(f"metrics/train_fader.json ends at epoch {metrics['last']['epoch']}")
    return result


def check_pipeline_finish(ctx: Context) -> str:
    """`dvc repro` of the rest (evaluate, render), then `dvc status`: nothing left to run."""
    if ctx.pipeline is None:
        raise RuntimeError("needs pipeline_prepare, which failed")
    _dvc(ctx, "repro")
    status = _dvc(ctx, "status")
    if "up to date" not in status:
        ctx.values["log_tail"] = status[-LOG_TAIL_CHARS:]
        raise RuntimeError(f"dvc status after the run: {status.strip().splitlines()[:1]}")
    evaluated = json.loads((ctx.pipeline / "metrics" / "evaluate.json").read_text())
    ctx.values["evaluate_keys"] = sorted(evaluated)
    renders = sorted(p.name for p in (ctx.pipeline / "reports" / "render").rglob("*.png"))
    ctx.values["renders"] = renders
    return f"evaluate + render: {len(renders)} images, dvc status clean ({ctx.device})"


def check_nccl_group_of_one(ctx: Context) -> str:
    """`fader train --nproc 1` under torchrun, on the tiny pipeline's data and classifier."""
    import yaml

    if ctx.pipeline is None:
        raise RuntimeError("needs pipeline_prepare, which failed")
    root, out = ctx.pipeline, ctx.scratch / "nccl"
    if not (root / "models" / "classifier.pt").is_file():  # run alone (--only)
        _dvc(ctx, "repro", "train_classifier")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train_fader"]["n_epochs"] = 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1"]
    train = ["-m", "stages.cli", "train", "--data", str(root / "data" / "prepared")]
    train += ["--classifier", str(root / "models" / "classifier.pt")]
    train += ["--checkpoints", str(out / "checkpoints"), "--out", str(out / "fader.pt")]
    train += ["--metrics", str(out / "metrics.json"), "--live", str(out / "live")]
    # no `--nproc 1`: under torchrun the launch decides, and torchrun's parser would take the
    # flag for its own --nproc-per-node (`fader train --nproc N` strips it for the same reason)
    train += ["--params", str(out / "params.yaml")]
    output = _run(ctx, [*launch, *train], out, _env(ctx, NCCL_DEBUG="INFO"))
    epoch = json.loads((out / "metrics.json").read_text())["last"]["epoch"]
    nccl = "NCCL INFO" in output
    ctx.values |= {"epochs": epoch, "nccl_initialised": nccl}
    ctx.need_cuda("NCCL")
    if not nccl:
        ctx.values["log_tail"] = output[-LOG_TAIL_CHARS:]
        raise RuntimeError("trained under torchrun, but NCCL set up no communicator")
    return f"trained {epoch} epoch under torchrun, NCCL communicator of 1"


@dataclass(frozen=True)
class Shape:
    """A model and batch to train: `benchmarks.train_step.Shape` and a batch size."""

    img_size: int
    n_layers: int
    init_fm: int
    batch_size: int


PAPER = Shape(256, 7, 16, 32)
TINY = Shape(32, 4, 8, 4)
SMALL = Shape(64, 5, 16, 32)  # host syncs: params.yaml's default shape


class Training:
    """Networks from seed 0 and their iterations, as `fader.train.trainer` takes them: the
    official settings of benchmarks/train_step.py (max_fm 512) at `shape`, on the random split
    (on the device, or memory-mapped), batches from the loop's `BatchSampler`, the metrics
    summed on the device and read every `log_every` steps (the loop's only host sync)."""

    def __init__(self, ctx: Context, shape: Shape, precision: str, on_device: bool) -> None:
        import torch

        from benchmarks import train_step
        from fader.data.prepared import BatchSampler
        from fader.train import trainer
        from fader.train.steps import FaderNetworks

        bench_shape = train_step.Shape("gpu check", shape.img_size, shape.n_layers, shape.init_fm)
        self.model, config = train_step._configs(bench_shape, precision, "auto", shape.batch_size)
        self.config = dataclasses.replace(config, device=ctx.device, data_on_device=on_device)
        folder = ctx.scratch / f"random{shape.img_size}"
        folder.mkdir(parents=True, exist_ok=True)
        data = train_step._random_prepared(folder, shape.img_size)
        self.device = torch.device(ctx.device)
        self.batches = data.on_device(self.device) if on_device else data
        torch.manual_seed(0)
        torch.cuda.manual_seed_all(0)
        self.nets = FaderNetworks.build(self.model, self.config, self.device)
        # as `trainer._Run` draws batches: a chunk ahead, sent to the device in one copy
        generator = torch.Generator().manual_seed(0)
        self.sampler = BatchSampler(generator, len(data), shape.batch_size, data.flip)
        self.sums = trainer._EpochSums(self.device)
        self.step = 0

    def run(self, steps: int, log: bool = True) -> None:
        """`steps` iterations; with `log`, the metrics read every `log_every` steps."""
        from fader.train import trainer

        for _ in range(steps):
            metrics = trainer._iteration(
                self.nets, self.batches, self.config, self.sampler, self.device, 1e-4
            )
            self.step += 1
            self.sums.add(metrics, self.step)
            if log and self.step % self.config.log_every == 0:
                self.sums.check("nothing")

    def weights(self) -> dict[str, Any]:
        """Both networks' tensors, on the CPU."""
        return {
            f"{name}.{key}": value.detach().cpu()
            for name in ("autoencoder", "discriminator")
            for key, value in self.nets.modules()[name].state_dict().items()
        }


def check_data_on_device(ctx: Context) -> str:
    import torch

    shape, steps = (TINY, 3) if ctx.dry_run else (SMALL, 10)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    runs = []
    try:
        for on_device in (False, True, False):  # the third: the control, repeated
            training = Training(ctx, shape, "fp32", on_device)
            training.run(steps)
            runs.append(training.weights())
    finally:
        torch.use_deterministic_algorithms(deterministic)
    mapped, gathered, control = runs
    differ = sorted(k for k in mapped if not torch.equal(mapped[k], gathered[k]))
    repeat = sorted(k for k in mapped if not torch.equal(mapped[k], control[k]))
    ctx.values |= {"tensors": len(mapped), "differ": differ[:10], "control_differ": repeat[:10]}
    if repeat:
        raise RuntimeError(f"not repeatable even from the memory map: {len(repeat)} tensors differ")
    if differ:
        raise RuntimeError(f"{len(differ)} of {len(mapped)} tensors differ, e.g. {differ[0]}")
    return f"{steps} iterations, {len(mapped)} tensors bit-identical ({ctx.device})"


def check_host_syncs(ctx: Context) -> str:
    """Syncs per iteration between two logging steps, the split on the device (as `auto`)."""
    import warnings

    import torch

    shape, warmup, steps = (TINY, 1, 2) if ctx.dry_run else (SMALL, 5, 20)
    counts = {}
    for precision in ("fp32", "bf16") if ctx.dry_run else ("fp32", "bf16", "fp16"):  # fp16: CUDA
        training = Training(ctx, shape, precision, True)
        training.run(warmup)
        if ctx.dry_run:
            training.run(steps, log=False)
            continue
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                training.run(steps, log=False)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        counts[precision] = len(syncs) / steps
        if syncs:
            ctx.values[f"{precision}_first_sync"] = str(syncs[0].message)[:300]
        training.sums.check("nothing")
    ctx.values["syncs_per_iteration"] = counts
    ctx.need_cuda("torch.cuda.set_sync_debug_mode")
    bad = {p: n for p, n in counts.items() if p != "fp16" and n > 0}  # fp16: for information
    if bad:
        raise RuntimeError(f"host syncs per iteration: {bad} (expected 0)")
    return "host syncs per iteration: " + ", ".join(f"{p} {n:g}" for p, n in counts.items())


def _throughput(ctx: Context, precision: str, graphs: str | None = None) -> str:
    import torch

    from benchmarks.fresh import peak_rss

    shape, warmup, steps = (TINY, 1, 3) if ctx.dry_run else (PAPER, 20, 200)
    cuda = not ctx.dry_run
    if cuda:
        gc.collect()  # the previous check's networks
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    training = Training(ctx, shape, precision, True)
    if graphs is not None:
        training.config = dataclasses.replace(training.config, **{graphs: True})
    training.run(warmup)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    training.run(steps)
    if cuda:
        torch.cuda.synchronize()
    rate = steps / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss()["main_rss_mib"]
    hours = PAPER_ITERATIONS / rate / 3600
    ctx.values |= {
        "shape": dataclasses.asdict(shape),
        "max_fm": training.model.max_fm,
        "precision": precision,
        "memory_format": str(training.nets.memory_format),
        "device": ctx.device,
        "iterations": steps,
        "it_per_s": rate,
        "peak_memory_mib": peak,
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if cuda else "process peak RSS",
        "paper_iterations": PAPER_ITERATIONS,
        "paper_schedule_hours": hours,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    where = "paper shape" if cuda else f"{shape.img_size} px (dry run)"
    return (
        f"{precision}{' + graphs' if graphs else ''} at the {where}: {rate:.1f} it/s, peak "
        f"{peak:,.0f} MiB, paper schedule {hours:.2f} h ({ctx.device})"
    )


def check_throughput_fp32(ctx: Context) -> str:
    return _throughput(ctx, "fp32")


def check_throughput_bf16(ctx: Context) -> str:
    return _throughput(ctx, "bf16")


def check_throughput_bf16_graphs(ctx: Context) -> str:
    from fader.train.config import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig) if "graph" in f.name]
    if not names:
        raise Skip("not implemented: no CUDA-graph capture in fader.train (no train_fader key)")
    ctx.need_cuda("CUDA graphs")
    return _throughput(ctx, "bf16", names[0])


#: Every check, in the order run: subprocess checks first, in-process CUDA ones after.
CHECKS: dict[str, Callable[[Context], str]] = {
    "environment": check_environment,
    "gpu_tests": check_gpu_tests,
    "pipeline_prepare": check_pipeline_prepare,
    "kill_resume_train_classifier": check_kill_resume_train_classifier,
    "kill_resume_train_fader": check_kill_resume_train_fader,
    "pipeline_finish": check_pipeline_finish,
    "nccl_group_of_one": check_nccl_group_of_one,
    "data_on_device": check_data_on_device,
    "host_syncs": check_host_syncs,
    "throughput_fp32": check_throughput_fp32,
    "throughput_bf16": check_throughput_bf16,
    "throughput_bf16_graphs": check_throughput_bf16_graphs,
}
#: The checks that work in the scratch repository `pipeline_prepare` makes.
NEED_PIPELINE = (
    "kill_resume_train_classifier",
    "kill_resume_train_fader",
    "pipeline_finish",
    "nccl_group_of_one",
)


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


def run_checks(names: list[str], ctx: Context, log: Callable[[str], None] = print) -> list[dict]:
    """Each check in turn, timed; an exception is its FAIL, and the next one runs."""
    results = []
    for name in names:
        ctx.values = {}
        start = time.monotonic()
        if start >= ctx.deadline:
            status, message = "SKIP", "out of time (--budget)"
        else:
            try:
                status, message = "OK", CHECKS[name](ctx)
            except Skip as skip:
                status, message = "SKIP", str(skip)
            except Exception as error:  # noqa: BLE001 - a check's failure is its report
                status, message = "FAIL", f"{type(error).__name__}: {error}"
                ctx.values["traceback"] = traceback.format_exc()[-LOG_TAIL_CHARS:]
        seconds = time.monotonic() - start
        log(f"{status} {name} ({seconds:.1f} s): {message}")
        results.append(
            {"name": name, "status": status, "seconds": round(seconds, 2), "message": message}
            | {"values": ctx.values}
        )
    return results


def default_out() -> Path:
    return Path(tempfile.gettempdir()) / "fader_gpu_check.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="Tiny sizes on the CPU (CI).")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"JSON summary (default {default_out()})."
    )
    parser.add_argument(
        "--only", action="append", choices=list(CHECKS), help="Run this check (repeatable)."
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"Seconds before checks skip ({DEFAULT_BUDGET_S:g}; dry run {DRY_RUN_BUDGET_S:g}).",
    )
    args = parser.parse_args(argv)
    chosen = set(args.only or CHECKS)
    if chosen & set(NEED_PIPELINE):
        chosen.add("pipeline_prepare")
    names = [name for name in CHECKS if name in chosen]
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    start, started = time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="fader-gpu-check-") as scratch:
        budget = args.budget or (DRY_RUN_BUDGET_S if args.dry_run else DEFAULT_BUDGET_S)
        ctx = Context(args.dry_run, Path(scratch), start + budget)
        results = run_checks(names, ctx)
    counts = {s: sum(r["status"] == s for r in results) for s in ("OK", "SKIP", "FAIL")}
    summary = {
        "dry_run": args.dry_run,
        "started": started,
        "seconds": round(time.monotonic() - start, 1),
        "counts": counts,
        "checks": results,
    }
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    total = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(f"{total} in {summary['seconds']} s; wrote {out}")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
