"""Throughput and memory of `fader preprocess` and of the Fader training step, against baselines.

Run by `make benchmark` (`python -m benchmarks.run`); `python -m benchmarks.run --quick` is a
smoke check of well under a minute. Each of our code paths is timed next to a plain baseline
measured in the same run, and reported as a ratio to it:

1. Pre-processing, images/s and peak RSS per image size: `fader.preprocess.prepare`, the call
   behind `fader preprocess` (read the lists, crop, resize, write `images.npy` and the table,
   with `--workers` processes), against `naive_load`, a single-process Pillow loop (open, crop
   the centred square, Lanczos resize, `np.asarray`, append to a list, `np.stack`). The input
   is synthetic CelebA-format images (`fader.data.sources.synthetic`), plus a local CelebA copy
   such as ../shared/celeba-mini with `--celeba-dir`. Every image is read once beforehand, so both
   paths find the files in the page cache.
2. Training: the Fader iteration at the official code's four shapes, beside the official code
   itself and against the machine's own convolution throughput (`benchmarks/train_step.py`).
3. Inception, the bulk of `evaluate`: images/s per memory layout and precision
   (`benchmarks/inception.py`).

Every measurement runs in a freshly spawned process, so imports, allocator state and memory
peaks cannot leak from one measurement into the next. The process reports its own peak RSS
(VmHWM; see `peak_rss` for why not `ru_maxrss`) and its largest worker's (RUSAGE_CHILDREN, read
after the worker pool has been joined). Because each spawned process re-imports this file,
anything imported at the top is charged to every measurement: pandas (through
`fader.preprocess`) and torch (~200 MiB on its own) are therefore imported only inside the
functions that use them.

Output: a Markdown report on stdout and in `benchmarks/results.md`, and every number in
`benchmarks/results.json` (`results_quick.*` with `--quick`, so a smoke check never overwrites
a real run).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
import yaml
from PIL import Image

from benchmarks import inception, train_step
from benchmarks.fresh import Measurement, in_fresh_process, peak_rss
from fader import io

if TYPE_CHECKING:
    from fader.data.config import PreprocessConfig

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# The targets the pre-processing is judged against.
TARGET_SIZE = 128
TARGET_IMAGES_PER_S = 1500
TARGET_RSS_MIB = 1024


@dataclass(frozen=True)
class Plan:
    """What to measure and how long; `--quick` starts from tiny values."""

    sizes: tuple[int, ...]
    images: int  # synthetic images to generate
    workers: int  # pre-processing worker processes (params.yaml: data.workers)
    steps: int  # timed training iterations
    warmup: int  # untimed training iterations first (allocator, oneDNN primitive caches)
    batch_size: int
    repeats: int  # each measurement is repeated; the fastest run is kept
    threads: int | None  # torch threads; None keeps torch's default


FULL = Plan(
    sizes=(64, 128, 256),
    images=4000,
    workers=2,
    steps=10,
    warmup=3,
    batch_size=32,
    repeats=1,
    threads=None,
)
# One torch thread: a smoke check often shares the CPUs, and OpenMP's barriers then stall
# (an iteration at 64 px took 3 s with 2 threads beside another job, 0.1 s with 1).
QUICK = replace(FULL, sizes=(32, 64), images=200, steps=2, warmup=1, batch_size=8, threads=1)


# ---------------------------------------------------------------------------------------------
# Running one measurement in a fresh process
# ---------------------------------------------------------------------------------------------


def fastest(runs: list[Measurement], workers: int = 0) -> Measurement:
    """The fastest of repeated runs, with the highest memory peak seen in any of them.

    Adds `images_per_s`, `peak_rss_mib` (the largest single process) and `all_rss_mib`, an
    upper bound on the whole process tree at once: main + workers x largest worker. Forked
    workers share the parent's pages, which that sum counts once per process, so the real
    total lies between the two.
    """
    best = dict(min(runs, key=lambda run: run["seconds"]))
    main = max(run["main_rss_mib"] for run in runs)
    worker = max(run["worker_rss_mib"] for run in runs)
    best.update(
        images_per_s=best["images"] / best["seconds"],
        main_rss_mib=main,
        worker_rss_mib=worker,
        peak_rss_mib=max(main, worker),
        all_rss_mib=main + workers * worker,
        repeats=len(runs),
    )
    return best


# ---------------------------------------------------------------------------------------------
# Pre-processing
# ---------------------------------------------------------------------------------------------


def naive_load(paths: Sequence[Path], img_size: int) -> np.ndarray:
    """The naive baseline: decode each JPEG in full, crop, resize, keep everything in a list.

    Returns (N, img_size, img_size, 3) uint8, the layout of our `images.npy`.
    """
    images = []
    for path in paths:
        with Image.open(path) as image:
            width, height = image.size
            # the centred square: rows 20..198 of CelebA's 178x218
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            square = image.crop((left, top, left + side, top + side))
            resized = square.resize((img_size, img_size), Image.Resampling.LANCZOS)
            images.append(np.asarray(resized))
    return np.stack(images)


def measure_naive(paths: list[Path], img_size: int) -> Measurement:
    """Time `naive_load` over `paths` (meant to run in a fresh process)."""
    start = time.perf_counter()
    images = naive_load(paths, img_size)
    seconds = time.perf_counter() - start
    assert images.shape == (len(paths), img_size, img_size, 3), images.shape
    return {"images": len(paths), "seconds": seconds, **peak_rss()}


def measure_ours(raw_dir: Path, out_dir: Path, config: PreprocessConfig) -> Measurement:
    """Time `prepare()`, everything `fader preprocess` does (meant to run in a fresh process).

    `select_seconds` is the fixed part of that time, reading the attribute and split lists
    (all 202,599 rows for real CelebA, however few images are present). It is timed again on
    its own after the run, so that it warms nothing the run uses.
    """
    from fader.data.preprocess import prepare, select_images

    start = time.perf_counter()
    meta = prepare(raw_dir, out_dir, config, progress=False)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    select_images(raw_dir, config)
    select_seconds = time.perf_counter() - start
    return {
        "images": sum(meta["counts"].values()),
        "seconds": seconds,
        "select_seconds": select_seconds,
        **peak_rss(),
    }


def bench_preprocess(
    dataset: str, raw_dir: Path, config: PreprocessConfig, plan: Plan, scratch: Path
) -> list[dict[str, Any]]:
    """Both pre-processing paths at every size of the plan, on one CelebA-format folder."""
    from fader.data import formats

    paths = sorted((raw_dir / formats.IMAGE_DIR).glob("*.jpg"))
    for path in paths:  # into the page cache, so neither path pays for the first read
        path.read_bytes()
    rows = []
    for size in plan.sizes:
        sized = replace(config, img_size=size)
        naive_runs, our_runs = [], []
        for _ in range(plan.repeats):
            naive_runs.append(in_fresh_process(measure_naive, paths, size))
            out_dir = scratch / f"prepared-{dataset}-{size}"
            our_runs.append(in_fresh_process(measure_ours, raw_dir, out_dir, sized))
            shutil.rmtree(out_dir)
        naive, ours = fastest(naive_runs), fastest(our_runs, workers=config.workers)
        rows.append(
            {
                "dataset": dataset,
                "img_size": size,
                "images": ours["images"],
                "naive": naive,
                "ours": ours,
                "speedup": ours["images_per_s"] / naive["images_per_s"],
                "rss_ratio": ours["peak_rss_mib"] / naive["peak_rss_mib"],
            }
        )
        log(
            f"preprocess {dataset} {size} px: naive {naive['images_per_s']:,.0f} img/s, "
            f"ours {ours['images_per_s']:,.0f} img/s; peak RSS {naive['peak_rss_mib']:,.0f} "
            f"vs {ours['peak_rss_mib']:,.0f} MiB"
        )
    return rows


def run_preprocess(
    plan: Plan, params: dict[str, Any], celeba_dir: Path | None, scratch: Path
) -> list[dict[str, Any]]:
    """Generate the synthetic input (and link a local CelebA copy), then benchmark each."""
    from fader.config import build
    from fader.data.config import PreprocessConfig, SourceConfig
    from fader.data.sources import synthetic
    from fader.data.sources.celeba import fetch_celeba

    values = {**params["data"], "img_size": plan.sizes[0], "workers": plan.workers}
    config = build(PreprocessConfig, values, "params.yaml: data", {"seed": 0}, [SourceConfig])
    start = time.perf_counter()
    synthetic.generate(
        scratch / "synthetic", n_images=plan.images, seed=0, workers=plan.workers, progress=False
    )
    log(f"generated {plan.images:,} synthetic images in {time.perf_counter() - start:.1f} s")
    rows = bench_preprocess("synthetic", scratch / "synthetic", config, plan, scratch)
    shutil.rmtree(scratch / "synthetic")
    if celeba_dir is not None:
        fetch_celeba(scratch / "celeba", celeba_dir, progress=False)
        # a partial copy (celeba-mini) lies wholly in the official train split: the pipeline
        # needs data.split = random for it, so the benchmark uses that too
        celeba_config = replace(config, split="random")
        rows += bench_preprocess("celeba", scratch / "celeba", celeba_config, plan, scratch)
    return rows


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Where the numbers come from: CPUs, library versions, and how busy the machine was."""
    import PIL
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "commit": _git_commit(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def to_markdown(results: dict[str, Any]) -> str:
    """The report: machine, settings, one table per part, and the targets met or missed."""
    machine, plan = results["machine"], results["plan"]
    lines = [
        "# Benchmarks",
        "",
        f"{machine['started']}, commit {machine['commit']}: {machine['cpu_count']} CPUs "
        f"({machine['usable_cpus']} usable, {machine['cpu_model']}), {machine['platform']}; "
        f"Python {machine['python']}, torch {machine['torch']} (default "
        f"{machine['torch_default_threads']} threads), Pillow {machine['pillow']}, "
        f"NumPy {machine['numpy']}. Load average {machine['load_average_start']} at the "
        f"start, {machine['load_average_end']} at the end (anything near or above the CPU "
        "count means other processes shared the CPUs).",
    ]
    if "preprocess" in results:
        lines += ["", *_preprocess_section(results["preprocess"], plan)]
    if "train" in results:
        lines += ["", *train_step.to_markdown(results["train"])]
    if "inception" in results:
        lines += ["", *inception.to_markdown(results["inception"])]
    return "\n".join(lines) + "\n"


def _preprocess_section(rows: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    lines = [
        f"## Pre-processing: `fader preprocess` ({plan['workers']} workers) vs a naive Pillow loop",
        "",
        "| data | size | images | naive img/s | ours img/s | speed-up | ours w/o lists img/s "
        "| naive peak RSS | ours peak RSS | ours, all processes | RSS ratio |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        naive, ours = row["naive"], row["ours"]
        without_lists = ours["images"] / (ours["seconds"] - ours["select_seconds"])
        lines.append(
            f"| {row['dataset']} | {row['img_size']} | {row['images']:,} "
            f"| {naive['images_per_s']:,.0f} | {ours['images_per_s']:,.0f} "
            f"| {row['speedup']:.2f}x | {without_lists:,.0f} | {_mib(naive['peak_rss_mib'])} "
            f"| {_mib(ours['peak_rss_mib'])} | ≤ {_mib(ours['all_rss_mib'])} "
            f"| {row['rss_ratio']:.2f} |"
        )
    lines += [
        "",
        "Ours includes everything the stage does: reading the attribute and split lists, "
        'decoding, and writing `images.npy` and `attributes.csv`; "w/o lists" leaves out the '
        "time to read the lists (a fixed cost, timed separately). Peak RSS is the high-water "
        'mark of the largest single process; "all processes" bounds the whole tree at once '
        "(main + workers x largest worker; forked workers share pages, so the true total is "
        "lower). "
        f"Fastest of {plan['repeats']} run(s).",
        "",
        *_targets(rows),
    ]
    return lines


def _targets(rows: list[dict[str, Any]]) -> list[str]:
    """Lines saying, per dataset, whether the pre-processing targets are met."""
    lines = []
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        mine = [row for row in rows if row["dataset"] == dataset]
        at_target = [row for row in mine if row["img_size"] == TARGET_SIZE]
        if at_target:
            speed = at_target[0]["ours"]["images_per_s"]
            verdict = "met" if speed >= TARGET_IMAGES_PER_S else "missed"
            speed_text = f"**{verdict}** ({speed:,.0f} img/s)"
        else:
            speed_text = f"not measured ({TARGET_SIZE} px not among the sizes)"
        worst = max(mine, key=lambda row: row["ours"]["all_rss_mib"])["ours"]
        verdict = "met" if worst["all_rss_mib"] < TARGET_RSS_MIB else "missed"
        lines.append(
            f"- Targets, {dataset}: ≥ {TARGET_IMAGES_PER_S:,} img/s at {TARGET_SIZE} px: "
            f"{speed_text}; peak RSS < {TARGET_RSS_MIB / 1024:g} GiB: **{verdict}** (at most "
            f"{_mib(worst['peak_rss_mib'])} per process, ≤ {_mib(worst['all_rss_mib'])} "
            "for all processes)."
        )
    return lines


def _mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    typer.echo(message, err=True)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


class Part(StrEnum):
    """The parts of the benchmark, for `--only`."""

    preprocess = "preprocess"
    train = "train"
    inception = "inception"


def parse_sizes(text: str) -> tuple[int, ...]:
    """'64,128,256' → (64, 128, 256), each a size the pipeline supports (data.img_size)."""
    from fader.data.config import IMG_SIZES

    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or not set(sizes) <= set(IMG_SIZES):
        raise typer.BadParameter(
            f"expected comma-separated sizes among {IMG_SIZES}, got {text!r}", param_hint="--sizes"
        )
    return sizes


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes and counts: a smoke check."),
    only: Part | None = typer.Option(None, help="Run one part only."),
    sizes: str | None = typer.Option(
        None, help="Comma-separated image sizes (64,128,256; quick: 32,64)."
    ),
    images: int | None = typer.Option(
        None, min=10, help="Synthetic images to generate (4000; quick: 200)."
    ),
    celeba_dir: Path | None = typer.Option(
        None,
        exists=True,
        file_okay=False,
        help="Also pre-process a local CelebA copy, e.g. ../shared/celeba-mini.",
    ),
    workers: int | None = typer.Option(None, min=1, help="Pre-processing workers (2)."),
    steps: int | None = typer.Option(None, min=1, help="Timed iterations (10; quick: 2)."),
    warmup: int | None = typer.Option(None, min=0, help="Untimed iterations first (3; quick: 1)."),
    batch_size: int | None = typer.Option(None, min=1, help="Training batch (32; quick: 8)."),
    threads: int | None = typer.Option(
        None, min=1, help="torch threads (torch's default; quick: 1)."
    ),
    repeats: int | None = typer.Option(
        None, min=1, help="Runs of each measurement; the fastest is kept (1)."
    ),
    params: Path = typer.Option(
        REPO_ROOT / "params.yaml", exists=True, dir_okay=False, help="Pipeline parameters."
    ),
    out: Path | None = typer.Option(
        None,
        help="Results path without suffix, to which .json and .md are added "
        "(benchmarks/results; quick: benchmarks/results_quick).",
    ),
) -> None:
    """Benchmark pre-processing and training against plain baselines; write a report."""
    overrides = {
        "sizes": parse_sizes(sizes) if sizes is not None else None,
        "images": images,
        "workers": workers,
        "steps": steps,
        "warmup": warmup,
        "batch_size": batch_size,
        "repeats": repeats,
        "threads": threads,
    }
    defaults = QUICK if quick else FULL
    plan = replace(defaults, **{k: v for k, v in overrides.items() if v is not None})
    out = out or BENCH_DIR / ("results_quick" if quick else "results")
    settings = yaml.safe_load(params.read_text())
    results: dict[str, Any] = {"machine": machine_info(), "plan": asdict(plan)}
    with tempfile.TemporaryDirectory(prefix="fader-bench-") as scratch:
        if only in (None, Part.preprocess):
            results["preprocess"] = run_preprocess(plan, settings, celeba_dir, Path(scratch))
        if only in (None, Part.train):
            shapes = train_step.QUICK_SHAPES if quick else train_step.SHAPES
            threads = plan.threads or os.cpu_count() or 1
            args = (shapes, plan.batch_size, plan.warmup, plan.steps, threads, plan.repeats, log)
            results["train"] = train_step.run(*args)
        if only in (None, Part.inception):
            threads = plan.threads or os.cpu_count() or 1
            batch = 8 if quick else 100  # evaluate.batch_size
            results["inception"] = inception.run(batch, threads, plan.steps // 5 + 1, log)
    results["machine"]["load_average_end"] = round(os.getloadavg()[0], 2)
    report = to_markdown(results)
    typer.echo(report)
    io.write_json(out.with_name(out.name + ".json"), results)
    io.write_text(out.with_name(out.name + ".md"), report)
    log(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    app()
