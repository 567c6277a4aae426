"""The Fader training iteration on this machine: beside the official code, and against the
machine's own convolution throughput.

At each of the official code's four shapes (batch 32, one binary attribute, max_fm 512):

- **official**: `../shared/anchors/fadernetworks-official/bench_step.py` (the official
  FaderNetworks code, patched only to run on torch 2.x), run as a script in its own process.
  It is a measuring stick: never imported (CC BY-NC). Skipped, with a note, when absent.
- **fader**: one iteration of `fader.train` (`trainer._iteration`: batch sampling from a
  memory-mapped prepared array, flips, the discriminator step, the autoencoder step, metrics
  summed on the device and read every 25 steps, as the official loop logs), in fp32 and bf16,
  contiguous and channels_last: the levers, each measured in a fresh process.
- **FLOPs** of one iteration from `torch.utils.flop_counter` and the achieved GFLOP/s.
- **The machine's convolution throughput**: every convolution the iteration runs (forward and
  backward, as recorded by a dispatch mode during one iteration) replayed alone at its own
  shapes, dtype and memory format. Their FLOPs over their summed time is what the machine
  gives these convolutions with nothing else running; the iteration's GFLOP/s as a fraction of
  it says how much time goes to everything else (normalisation, activations, the optimizer,
  data, Python). The bf16 iteration's convolutions, replayed the same way, bound what bf16 can
  gain: the official time over theirs is the speed-up of an iteration that did nothing else.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.fresh import Measurement, in_fresh_process, peak_rss

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = REPO_ROOT.parent / "shared" / "anchors" / "fadernetworks-official" / "bench_step.py"
MAX_FM = 512  # the official code's (and the paper's) channel cap
N_IMAGES = 256  # random images to sample from, as bench_step.py's default
LOG_EVERY = 25  # the official loop's logging period; ours reads metrics as often

#: The targets: the iteration's share of the machine's convolution throughput, and bf16's
#: speed-up over the official code where the CPU computes bf16 natively.
TARGET_CONV_FRACTION = 0.8
TARGET_BF16_SPEEDUP = 3.0


@dataclass(frozen=True)
class Shape:
    name: str
    img_size: int
    n_layers: int
    init_fm: int


SHAPES = (
    Shape("small", 64, 5, 32),
    Shape("medium", 128, 6, 32),
    Shape("paper", 256, 7, 16),
    Shape("official default", 256, 6, 32),
)
QUICK_SHAPES = (Shape("tiny", 32, 4, 8),)

#: (precision, memory format) pairs timed at every shape.
VARIANTS = (
    ("fp32", "contiguous"),
    ("fp32", "channels_last"),
    ("bf16", "contiguous"),
    ("bf16", "channels_last"),
)


#: The official code's training settings where they differ from params.yaml; `_configs` adds each
#: run's shape, batch size and levers.
OFFICIAL_PARAMS: dict[str, dict[str, Any]] = {
    # every value that shapes the official step is pinned, also those params.yaml has today, so
    # that a new default there cannot make this benchmark compare another network or loop
    "model": {"max_fm": MAX_FM, "dis_dropout": 0.3, "n_skip": 0, "decoder_dropout": 0.0},
    "train_fader": {
        "beta1": 0.5,
        "clip_grad_norm": 5.0,
        "dis_steps": 1,
        "recon_loss": "mse",
        "patch_weight": 0.0,
        "swap_clf_weight": 0.0,
        "flip": True,
        "ema_decay": 0.0,
        "lr_decay": 0.0,
        "learning_rate": 2e-4,
        "lambda_max": 1e-4,
        "lambda_schedule": 500_000,
        "epoch_size": 50_000,
        "n_epochs": 1,
        "log_every": LOG_EVERY,
        "data_on_device": False,  # batches gathered on the host, as the official sampler does
        "device": "cpu",
    },
}


def _configs(shape: Shape, precision: str, memory_format: str, batch_size: int) -> tuple[Any, Any]:
    """The model and training configs of the official code's defaults at `shape`: params.yaml
    with `OFFICIAL_PARAMS` and the run's values, built the way the stages build them."""
    from fader.model.networks import ModelConfig
    from fader.train.config import TrainConfig
    from stages._common import Params

    model, train = OFFICIAL_PARAMS["model"], OFFICIAL_PARAMS["train_fader"]
    overrides = {
        "model": {**model, "n_layers": shape.n_layers, "init_fm": shape.init_fm},
        "train_fader": {
            **train,
            "batch_size": batch_size,
            "precision": precision,
            "memory_format": memory_format,
        },
    }
    params = Params(REPO_ROOT / "params.yaml", overrides, "benchmarks.train_step")
    shape_values = {"img_size": shape.img_size, "n_attr": 1}
    return params.build(ModelConfig, "model", shape_values), params.build(
        TrainConfig, "train_fader"
    )


def _random_prepared(folder: Path, img_size: int) -> Any:
    """A prepared dataset of `N_IMAGES` random images and one random attribute (Male)."""
    import numpy as np
    import pandas as pd

    from fader.data.formats import IMAGES_FILE, META_FILE, TABLE_FILE
    from fader.data.prepared import PreparedDataset

    rng = np.random.default_rng(0)
    np.save(folder / IMAGES_FILE, rng.integers(0, 256, (N_IMAGES, img_size, img_size, 3), np.uint8))
    table = pd.DataFrame(
        {
            "filename": [f"{i:06d}.jpg" for i in range(N_IMAGES)],
            "split": "train",
            "Male": rng.integers(0, 2, N_IMAGES),
        }
    )
    table.to_csv(folder / TABLE_FILE, index=False)
    (folder / META_FILE).write_text(json.dumps({"attributes": ["Male"], "img_size": img_size}))
    return PreparedDataset(folder, "train", flip=True)


def measure_fader(
    shape: Shape,
    precision: str,
    memory_format: str,
    batch_size: int,
    warmup: int,
    iters: int,
    threads: int,
) -> Measurement:
    """Time `iters` iterations after `warmup`; FLOPs of one; its convolutions replayed."""
    import torch

    from fader.train import trainer
    from fader.train.steps import FaderNetworks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, config = _configs(shape, precision, memory_format, batch_size)
    device = torch.device("cpu")
    nets = FaderNetworks.build(model, config, device)
    sampler = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="fader-bench-") as scratch:
        data = _random_prepared(Path(scratch), shape.img_size)
        sums = trainer._EpochSums(device)

        def iteration(step: int) -> None:
            metrics = trainer._iteration(nets, data, config, sampler, device, 1e-4)
            sums.add(metrics, step)
            if step % LOG_EVERY == 0:
                sums.check("nothing")

        for step in range(1, warmup + 1):
            iteration(step)
        times = []
        for step in range(warmup + 1, warmup + iters + 1):
            start = time.perf_counter()
            iteration(step)
            times.append(time.perf_counter() - start)
        result: Measurement = {
            "s_per_iter_median": statistics.median(times),
            "s_per_iter_min": min(times),
            "flops": _flops(lambda: iteration(0)),
            "threads": torch.get_num_threads(),
            **peak_rss(),
        }
        result |= _conv_replay(lambda: iteration(0))
    return result


def _flops(run: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return int(counter.get_total_flops())


def _conv_replay(run: Any, repeats: int = 5) -> Measurement:
    """Every convolution of one `run()`, replayed alone: their FLOPs and summed median time."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map
    from torch.utils.flop_counter import FlopCounterMode

    ops = (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default)
    calls: list[tuple[Any, Any, Any]] = []

    def copy(value: Any) -> Any:
        return value.detach().clone() if isinstance(value, torch.Tensor) else value

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func in ops:
                calls.append((func, tree_map(copy, args), tree_map(copy, kwargs or {})))
            return func(*args, **(kwargs or {}))

    with Recorder():
        run()
    flops, seconds = 0, 0.0
    with torch.no_grad():
        for func, args, kwargs in calls:
            with FlopCounterMode(display=False) as counter:
                func(*args, **kwargs)
            flops += counter.get_total_flops()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                func(*args, **kwargs)
                times.append(time.perf_counter() - start)
            seconds += statistics.median(times)
    return {"conv_calls": len(calls), "conv_flops": int(flops), "conv_seconds": seconds}


def measure_official(
    shape: Shape, batch_size: int, warmup: int, iters: int, threads: int
) -> Measurement | None:
    """bench_step.py's JSON line (its own process, this interpreter); None when absent."""
    if not OFFICIAL.is_file():
        return None
    command = [
        sys.executable,
        str(OFFICIAL),
        f"--img-sz={shape.img_size}",
        f"--n-layers={shape.n_layers}",
        f"--init-fm={shape.init_fm}",
        f"--batch-size={batch_size}",
        f"--iters={iters}",
        f"--warmup={warmup}",
        f"--threads={threads}",
        "--device=cpu",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(
    shapes: tuple[Shape, ...],
    batch_size: int,
    warmup: int,
    iters: int,
    threads: int,
    repeats: int,
    log: Any,
) -> dict[str, Any]:
    """Every shape: the official code, then each variant, alternating in fresh processes,
    `repeats` times; the fastest run (by median) of each is kept."""
    import torch

    from fader import runtime

    rows = []
    for shape in shapes:
        runs: dict[str, list[Measurement]] = {}
        for _ in range(repeats):  # alternating: a busy spell slows both sides, not one
            measured = measure_official(shape, batch_size, warmup, iters, threads)
            runs.setdefault("official", []).extend([measured] if measured else [])
            for precision, memory_format in VARIANTS:
                args = (shape, precision, memory_format, batch_size, warmup, iters, threads)
                key = f"{precision} {memory_format}"
                runs.setdefault(key, []).append(in_fresh_process(measure_fader, *args))
        best = {key: min(found, key=_median) for key, found in runs.items() if found}
        official = best.pop("official", None)
        variants = best
        rows.append({"shape": asdict(shape), "official": official, "fader": variants})
        best = min(v["s_per_iter_median"] for v in variants.values())
        reference = f"official {official['s_per_iter_median']:.3f}" if official else "no official"
        log(f"train step {shape.name}: {reference}, fader best {best:.3f} s/iter")
    return {
        "batch_size": batch_size,
        "warmup": warmup,
        "iters": iters,
        "threads": threads,
        "repeats": repeats,
        "native_bf16": runtime.native_bf16(torch.device("cpu")),
        "bf16_flags": sorted(set(runtime.BF16_CPU_FLAGS) & runtime.cpu_flags()),
        "official_script": str(OFFICIAL) if OFFICIAL.is_file() else None,
        "rows": rows,
    }


def _median(measured: Measurement) -> float:
    return float(measured["s_per_iter_median"])


def to_markdown(results: dict[str, Any]) -> list[str]:
    """The side-by-side table, the levers table and the targets, as Markdown lines."""
    native = results["native_bf16"]
    flags = ", ".join(results["bf16_flags"]) or "none"
    lines = [
        "## Training iteration on the CPU: fader vs the official code",
        "",
        f"Batch {results['batch_size']}, {results['threads']} threads, one binary attribute, "
        f"max_fm {MAX_FM}; median of {results['iters']} iterations after {results['warmup']} "
        f"warm-up, each side in its own fresh process, fastest of {results['repeats']} "
        f"alternating run(s). Native bf16: **{'yes' if native else 'no'}**"
        f" (CPU flags: {flags}); fp32 and bf16 rows use `memory_format: auto`'s choice "
        "(channels_last at 256 px).",
        "",
        "| shape | px / layers / init_fm | official s/iter | fader fp32 s/iter | vs official "
        "| fader bf16 s/iter | vs official | GFLOP/iter | fp32 GFLOP/s | machine conv GFLOP/s "
        "| fraction | bf16 convolutions alone s/iter | their bound vs official |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    verdicts = []
    for row in results["rows"]:
        shape, official, fader = row["shape"], row["official"], row["fader"]
        auto = "channels_last" if shape["img_size"] >= 256 else "contiguous"
        fp32, bf16 = fader[f"fp32 {auto}"], fader[f"bf16 {auto}"]
        conv = fader["fp32 contiguous"] if auto == "contiguous" else fader["fp32 channels_last"]
        achieved = fp32["flops"] / fp32["s_per_iter_median"] / 1e9
        machine = conv["conv_flops"] / conv["conv_seconds"] / 1e9
        fraction = achieved / machine
        base = official["s_per_iter_median"] if official else None
        vs = [f"{base / v['s_per_iter_median']:.2f}x" if base else "–" for v in (fp32, bf16)]
        bound = f"{base / bf16['conv_seconds']:.2f}x" if base else "–"
        lines.append(
            f"| {shape['name']} | {shape['img_size']} / {shape['n_layers']} / "
            f"{shape['init_fm']} | {f'{base:.3f}' if base else 'absent'} "
            f"| {fp32['s_per_iter_median']:.3f} | {vs[0]} | {bf16['s_per_iter_median']:.3f} "
            f"| {vs[1]} | {fp32['flops'] / 1e9:.1f} | {achieved:.0f} | {machine:.0f} "
            f"| {fraction:.0%} | {bf16['conv_seconds']:.3f} | {bound} |"
        )
        verdicts.append((shape, fraction, base, fp32, bf16))
    lines += [
        "",
        "GFLOP/iter: `torch.utils.flop_counter` over one iteration (both steps). Machine conv "
        "GFLOP/s: the iteration's own convolutions, forward and backward, each replayed alone "
        "at its shapes (what the machine gives them with nothing else running); fraction = "
        "the iteration's GFLOP/s over it. bf16 convolutions alone: the bf16 iteration's "
        "convolutions replayed the same way, what an iteration doing nothing else would take; "
        "the official time over it bounds the bf16 speed-up on this machine.",
    ]
    if results["official_script"] is None:
        lines += ["", f"The official code was not found at {OFFICIAL}: its column is empty."]
    lines += ["", "### Levers (s/iter, fresh process each)", ""]
    lines += ["| shape | " + " | ".join(f"{p} {m}" for p, m in VARIANTS) + " |"]
    lines += ["|---|" + "--:|" * len(VARIANTS)]
    for row in results["rows"]:
        times = [row["fader"][f"{p} {m}"]["s_per_iter_median"] for p, m in VARIANTS]
        lines.append(f"| {row['shape']['name']} | " + " | ".join(f"{t:.3f}" for t in times) + " |")
    lines += ["", *_targets(verdicts, native)]
    return lines


def _targets(verdicts: list[tuple[Any, ...]], native: bool) -> list[str]:
    lines = []
    for shape, fraction, base, fp32, bf16 in verdicts:
        parts = [
            f"fp32 at ≥ {TARGET_CONV_FRACTION:.0%} of the machine's conv throughput: "
            f"**{'met' if fraction >= TARGET_CONV_FRACTION else 'missed'}** ({fraction:.0%})"
        ]
        if base:
            best = min(fp32["s_per_iter_median"], bf16["s_per_iter_median"] if native else 1e9)
            parts.append(
                f"never slower than the official code: **{'met' if best <= base else 'missed'}**"
            )
            if native:
                speedup = base / bf16["s_per_iter_median"]
                verdict = "met" if speedup >= TARGET_BF16_SPEEDUP else "missed"
                bound = base / bf16["conv_seconds"]
                parts.append(
                    f"bf16 ≥ {TARGET_BF16_SPEEDUP:g}x the official: **{verdict}** ({speedup:.2f}x; "
                    f"its convolutions alone, nothing else, would be {bound:.2f}x)"
                )
        lines.append(f"- {shape['name']}: " + "; ".join(parts) + ".")
    return lines
