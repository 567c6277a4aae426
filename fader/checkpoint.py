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

from fader import io
from fader.model import AttributeClassifier, AutoEncoder, ClassifierConfig, ModelConfig


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or of the wrong kind."""


def save(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write `payload` with torch.save to a temporary file, then rename it into place."""
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | os.PathLike[str], kind: str, map_location: str | torch.device = "cpu"
         ) -> dict[str, Any]:  # fmt: skip
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


def load_classifier(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
                    ) -> tuple[AttributeClassifier, list[str]]:  # fmt: skip
    """The evaluation classifier saved by `fader train-classifier` (eval mode) and its attributes."""
    saved = load(path, "classifier", map_location)
    classifier = AttributeClassifier(ClassifierConfig.from_dict(saved["config"]))
    classifier.load_state_dict(saved["state"])
    return classifier.eval(), list(saved["attributes"])


def load_fader(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
               ) -> tuple[AutoEncoder, list[str]]:  # fmt: skip
    """A trained Fader autoencoder saved by `fader train` (eval mode) and its attributes."""
    saved = load(path, "fader", map_location)
    autoencoder = AutoEncoder(ModelConfig.from_dict(saved["config"]))
    autoencoder.load_state_dict(saved["state"])
    return autoencoder.eval(), list(saved["attributes"])
