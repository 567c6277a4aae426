"""Inception (FID features) throughput on this machine: the layout and precision levers.

`evaluate` spends most of its time in pytorch-fid's InceptionV3 (299x299 inputs). Each variant
runs in a fresh process on the same random batch and reports images/s and how far its features
are from the fp32 contiguous reference (relative L2): channels_last is what `build_inception`
uses (the same features); bf16 is shown for its speed, but its features move by about 1.5 %,
so FID would no longer be pytorch-fid's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.fresh import Measurement, in_fresh_process

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = REPO_ROOT / "models" / "inception" / "pt_inception-2015-12-05-6726825d.pth"
VARIANTS = (("fp32", "contiguous"), ("fp32", "channels_last"), ("bf16", "channels_last"))


def measure(
    precision: str, memory_format: str, batch_size: int, threads: int, repeats: int
) -> Measurement:
    import time

    import torch

    from fader.eval.inception import build_inception

    torch.set_num_threads(threads)
    layout = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    net = build_inception(WEIGHTS, "cpu").to(memory_format=layout)
    x = torch.rand(batch_size, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def features() -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            return net(x.contiguous(memory_format=layout))[0].float().flatten(1)

    out = features()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        features()
        times.append(time.perf_counter() - start)
    return {"images_per_s": batch_size / min(times), "features": out.numpy()}


def run(batch_size: int, threads: int, repeats: int, log: Any) -> dict[str, Any] | None:
    """Every variant; None when the Inception weights are absent (run `dvc repro inception`)."""
    import numpy as np

    if not WEIGHTS.is_file():
        log(f"inception: {WEIGHTS} absent (dvc repro inception): skipped")
        return None
    rows = []
    reference = None
    for precision, memory_format in VARIANTS:
        measured = in_fresh_process(measure, precision, memory_format, batch_size, threads, repeats)
        features = measured.pop("features")
        reference = features if reference is None else reference
        error = float(np.linalg.norm(features - reference) / np.linalg.norm(reference))
        rows.append(
            {
                "precision": precision,
                "memory_format": memory_format,
                **measured,
                "feature_error": error,
            }
        )
        log(f"inception {precision} {memory_format}: {measured['images_per_s']:.1f} img/s")
    return {"batch_size": batch_size, "threads": threads, "rows": rows}


def to_markdown(results: dict[str, Any] | None) -> list[str]:
    lines = ["## Inception (FID features): images/s", ""]
    if results is None:
        return [*lines, f"Skipped: {WEIGHTS} is absent (run `dvc repro inception`)."]
    lines += [
        f"Batch {results['batch_size']} of 64 px images (resized to 299 px inside), "
        f"{results['threads']} threads, fastest of the timed passes, fresh process each.",
        "",
        "| precision | memory format | img/s | speed-up | feature error (rel. L2) |",
        "|---|---|--:|--:|--:|",
    ]
    base = results["rows"][0]["images_per_s"]
    for row in results["rows"]:
        lines.append(
            f"| {row['precision']} | {row['memory_format']} | {row['images_per_s']:.1f} "
            f"| {row['images_per_s'] / base:.2f}x | {row['feature_error']:.1e} |"
        )
    return lines
