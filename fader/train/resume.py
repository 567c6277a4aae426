"""Resumable training: one `last.pt` per checkpoint folder, locked, fingerprinted, saved atomically.

Not in the paper. The official code restarts from a pickled model (its `--ae_reload`), losing the
optimizers' states and the λ_E schedule. Here both trainers
(`fader.train.trainer`, `fader.train.classifier`) keep everything an exact resume needs in
`last.pt`, next to the fingerprint of the settings that made it: the settings that change the
training arithmetic, and only those, so that changing how often a run logs does not discard it.

A `last.pt` made otherwise (a fingerprint key differs, or it is past the epochs now asked for) is
never resumed and never silently overwritten: it is moved aside to `last.mismatch-N.pt`, with a
warning that names it, the keys that differ (old → new) and where it went.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fader import io
from fader.config import flatten
from fader.model import checkpoint

log = logging.getLogger(__name__)

LAST = "last.pt"  # the resumable state, in the checkpoint folder


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """The checkpoint folder for this process alone: a second run (an orphan of a killed
    `dvc repro`, say) fails with `io.LockedError` instead of writing beside the first."""
    with io.exclusive_lock(
        folder.with_name(f".{folder.name}.lock"), f"the checkpoint folder {folder}"
    ):
        yield


class LastCheckpoint:
    """`folder/last.pt`: the state of a training run of `kind`, made with `fingerprint`.

    Only a `writer` (rank 0 of a distributed run) saves it or moves it aside.
    """

    def __init__(
        self, folder: Path, kind: str, fingerprint: dict[str, Any], writer: bool = True
    ) -> None:
        self.folder, self.kind, self.fingerprint, self.writer = folder, kind, fingerprint, writer
        self.path = folder / LAST

    def load(self, epochs: int) -> dict[str, Any] | None:
        """The saved state, if there is one made alike and not past `epochs`; else None (a
        writer moves a mismatched file aside first).

        Read onto the CPU whatever the training device: torch restores RNG states from CPU byte
        tensors only, and `load_state_dict` copies the rest to the networks' own device.
        """
        if not self.path.is_file():
            return None
        saved = checkpoint.load(self.path, self.kind, map_location="cpu")
        changes = differences(saved["fingerprint"], self.fingerprint)
        if saved["epoch"] > epochs:  # the epoch count is not fingerprinted: it may grow
            changes.append(f"epoch {saved['epoch']}, past the {epochs} asked for")
        if not changes:
            return saved
        if self.writer:
            aside = self._free_name()
            os.replace(self.path, aside)
            log.warning(
                "%s was made with other settings (%s): moved it to %s; training starts afresh",
                self.path,
                "; ".join(changes),
                aside,
            )
        return None

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (tensors, numbers, lists, dicts) atomically, with the fingerprint."""
        checkpoint.save(self.path, {"kind": self.kind, "fingerprint": self.fingerprint, **state})

    def _free_name(self) -> Path:
        names = (self.folder / f"last.mismatch-{n}.pt" for n in itertools.count(1))
        return next(path for path in names if not path.exists())


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The keys of `current` that `saved` holds otherwise or lacks, as `key: old → new`.

    Nested keys are dotted (`train.lambda_max`). A key only `saved` has is a setting that no
    longer counts (`log_every` and `valid_size` were fingerprinted once): it is no difference.
    """
    old, new = flatten(saved), flatten(current)
    return [
        f"{key}: {old[key]!r} → {value!r}" if key in old else f"{key}: absent → {value!r}"
        for key, value in new.items()
        if key not in old or old[key] != value
    ]
