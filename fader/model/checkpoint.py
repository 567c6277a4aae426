"""Checkpoints: plain dictionaries of tensors and numbers, written atomically.

A checkpoint holds state dicts plus the config that rebuilds the networks, never pickled modules
(the official code pickles whole models, which breaks on any rename and can run code on load).
Loading uses `weights_only=True`.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fader import config, io
from fader.model.networks import AttributeClassifier, AutoEncoder, ClassifierConfig, ModelConfig

#: What a trained network's checkpoint `kind` rebuilds: its config class and its network class.
NETWORKS: dict[str, tuple[type, type[nn.Module]]] = {
    "fader": (ModelConfig, AutoEncoder),  # written by `fader train`
    "classifier": (ClassifierConfig, AttributeClassifier),  # written by `fader train-classifier`
}


#: Below this many free bytes a failed write is blamed on a full disk.
_NEARLY_FULL = 64 * 2**20


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or of the wrong kind."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only folder); nothing was replaced."""


def save(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write `payload` with torch.save to a temporary file, then rename it into place.

    A failed write leaves the previous file as it was and raises `CheckpointWriteError` saying
    why in words (torch's own message for a full disk is "basic_ios::clear: iostream error").
    """
    try:
        with io.atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as error:
        raise CheckpointWriteError(
            f"cannot write checkpoint {path}: {_why(error, Path(path))}"
        ) from error


def _why(error: BaseException, path: Path) -> str:
    folder = path.parent if path.parent.exists() else Path(path.anchor or ".")
    code = getattr(error, "errno", None)
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{folder} is not writable ({error})"
    free = shutil.disk_usage(folder).free
    if code == errno.ENOSPC or free < _NEARLY_FULL:
        return f"the disk is full ({free / 2**20:.0f} MiB free in {folder}): free space, run again"
    return str(error)


def load(
    path: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint saved by `save()` whose `kind` entry is `kind`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: it is empty; {_DELETE_HINT}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {error}; {_DELETE_HINT}") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {kind} checkpoint (found {found!r})")
    return payload


_DELETE_HINT = (
    "if it is truncated or not a checkpoint, delete it (a training checkpoint such as last.pt: "
    "training then starts afresh)"
)


def network_payload(kind: str, net: nn.Module, attributes: list[str], **extra: Any) -> dict:
    """A trained network on its own: its weights, the config that builds it, its attributes."""
    return {
        "kind": kind,
        "config": config.to_dict(net.cfg),
        "attributes": list(attributes),
        "state": net.state_dict(),
        **extra,
    }


def load_network(
    path: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> tuple[Any, list[str]]:
    """The network saved as `kind` (see NETWORKS), in eval mode, and its attribute names."""
    config_class, network_class = NETWORKS[kind]
    saved = load(path, kind, map_location)
    cfg = config.build(config_class, saved["config"], f"{path}: config")
    net = network_class(cfg)
    try:
        net.load_state_dict(saved["state"])
    except RuntimeError as error:  # missing, unexpected or mis-shaped tensors
        first = str(error).splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"{path}: its weights do not fit the network its config describes ({first[0].strip()})"
        ) from None
    return net.eval(), list(saved["attributes"])
