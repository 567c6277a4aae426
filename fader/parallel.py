"""Chunks of work spread over worker processes, results in order, with one progress bar."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from tqdm import tqdm

Task = TypeVar("Task")
Result = TypeVar("Result")


def imap_with_progress(
    work: Callable[[Task], tuple[Result, int]],
    tasks: Sequence[Task],
    workers: int,
    total: int,
    desc: str,
    progress: bool = True,
) -> Iterator[Result]:
    """`work(task)` for each task, in order, in `workers` processes (1: in this one).

    `work` returns its result and how many items it did, which advances the bar (of `total`
    items). Processes are forked where the platform allows it: cheap, and the workers only read
    their inputs and write disjoint outputs.
    """
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=total, unit="img", disable=not progress, desc=desc))
        if workers > 1:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            pool = stack.enter_context(multiprocessing.get_context(method).Pool(workers))
            results = pool.imap(work, tasks)
        else:
            results = map(work, tasks)
        for result, count in results:
            bar.update(count)
            yield result
