"""Measurements in fresh processes, and the memory peaks those processes report."""

from __future__ import annotations

import multiprocessing
import resource
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

#: One measurement's raw numbers, as a spawned process returns them.
Measurement = dict[str, Any]


def in_fresh_process(function: Callable[..., Measurement], *args: Any) -> Measurement:
    """Run `function(*args)` in a newly spawned Python process and return its result."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(function, *args).result()


def peak_rss() -> dict[str, float]:
    """Peak resident memory so far in MiB: this process, and its largest reaped child process.

    Linux carries `ru_maxrss` across exec, so a spawned process starts with its parent's peak
    as its own. This process's peak is therefore read from VmHWM in /proc/self/status, which
    starts afresh at exec; forked workers start afresh, so RUSAGE_CHILDREN serves for them.
    """
    kib = 1 / 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, KiB on Linux
    own_kib = _vm_hwm_kib()
    if own_kib is None:  # no procfs: ru_maxrss, which may include the parent's peak
        own_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib
    return {"main_rss_mib": own_kib / 1024, "worker_rss_mib": child_kib / 1024}


def _vm_hwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])  # "VmHWM:   123456 kB"
    except OSError:
        pass
    return None
