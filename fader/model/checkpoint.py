"""Checkpoints: plain dictionaries of tensors and numbers, written atomically.

A checkpoint holds state dicts plus the config that rebuilds the networks, never pickled modules
(the official code pickles whole models, which breaks on any rename and can run code on load).
Loading uses `weights_only=True`.
"""

from __future__ import annotations

import os
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


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or of the wrong kind."""


def save(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write `payload` with torch.save to a temporary file, then rename it into place."""
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(
    path: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint saved by `save()` whose `kind` entry is `kind`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from None
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {kind} checkpoint (found {found!r})")
    return payload


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
    net.load_state_dict(saved["state"])
    return net.eval(), list(saved["attributes"])
