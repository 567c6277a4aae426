"""Training the attribute classifier that judges swaps (Section 4, model selection).

A multi-label CNN (`fader.model.networks.AttributeClassifier`) trained on real images of the train
split with binary cross-entropy, flip augmentation and early stopping on validation accuracy;
its per-attribute accuracy on the test split says how far its verdicts can be trusted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fader import runtime
from fader.config import to_dict
from fader.data.prepared import PreparedDataset
from fader.model.networks import AttributeClassifier, ClassifierConfig
from fader.train.config import ClassifierTrainConfig
from fader.train.resume import LastCheckpoint, locked

log = logging.getLogger(__name__)


@torch.no_grad()
def accuracy(
    classifier: AttributeClassifier,
    data: PreparedDataset,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Per-attribute accuracy of `classifier` on every image of `data` (plus their mean)."""
    classifier.eval()
    hits = torch.zeros(len(data.attributes))
    for start in range(0, len(data), batch_size):
        x, y = data.batch(np.arange(start, min(start + batch_size, len(data))))
        predicted = classifier(x.to(device)).cpu() > 0
        hits += (predicted == (y > 0.5)).float().sum(0)
    per_attribute = dict(zip(data.attributes, (hits / len(data)).tolist()))
    return {**per_attribute, "mean": float(np.mean(list(per_attribute.values())))}


def train_classifier(
    train: PreparedDataset,
    valid: PreparedDataset,
    model: ClassifierConfig,
    config: ClassifierTrainConfig,
    seed: int,
    progress: bool = True,
    checkpoint_dir: Path | None = None,
) -> tuple[AttributeClassifier, list[dict[str, Any]]]:
    """Train on `train`, keep the weights of the epoch with the best mean validation accuracy.

    With `checkpoint_dir`, the state after each epoch goes to `checkpoint_dir/last.pt`, and a run
    that finds one made with the same settings goes on from there, ending exactly where an
    uninterrupted run ends (a finished run's is simply read back; one made otherwise is moved
    aside, see `fader.train.resume`). Returns the classifier (best weights, eval mode, on the
    CPU) and the per-epoch history.
    """
    if checkpoint_dir is None:
        return _train(train, valid, model, config, seed, progress, None)
    last = LastCheckpoint(
        checkpoint_dir, "classifier_training", _fingerprint(model, config, seed, train)
    )
    with locked(checkpoint_dir):
        return _train(train, valid, model, config, seed, progress, last)


def _fingerprint(
    model: ClassifierConfig, config: ClassifierTrainConfig, seed: int, train: PreparedDataset
) -> dict[str, Any]:
    """What must match for `last.pt` to be resumed (max_epochs may grow, the device may change)."""
    settings = {k: v for k, v in to_dict(config).items() if k not in ("max_epochs", "device")}
    return {"model": to_dict(model), "train": settings, "seed": seed, "data": train.digest}


def _train(
    train: PreparedDataset,
    valid: PreparedDataset,
    model: ClassifierConfig,
    config: ClassifierTrainConfig,
    seed: int,
    progress: bool,
    last: LastCheckpoint | None,
) -> tuple[AttributeClassifier, list[dict[str, Any]]]:
    device = runtime.resolve_device(config.device)
    runtime.seed_everything(seed)
    classifier = AttributeClassifier(model).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.learning_rate, fused=True)
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "best_accuracy": -1.0,
        "best_state": None,
        "stale": 0,
        "stopped": False,
    }
    if last is not None and (saved := last.load(config.max_epochs)) is not None:
        classifier.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        runtime.set_rng_state(saved["rng"], device)
        state.update({key: saved[key] for key in state})
        log.info("resuming the classifier from %s after epoch %d", last.path, state["epoch"])
    for epoch in range(state["epoch"] + 1, config.max_epochs + 1):
        if state["stopped"]:
            break
        classifier.train()
        order = torch.randperm(len(train), generator=generator).numpy()
        summed = torch.zeros((), dtype=torch.float64, device=device)  # Σ loss · batch size
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, disable=not progress, desc=f"classifier epoch {epoch}"):
            x, y = train.batch(order[start : start + config.batch_size], generator=generator)
            loss = F.binary_cross_entropy_with_logits(classifier(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            summed += loss.detach().double() * len(x)  # on the device: no host sync per step
        total_loss = summed.item()  # the epoch's only read; the same float64 sum as in Python
        scores = accuracy(classifier, valid, device=device)
        state["history"].append(
            {"epoch": epoch, "train_loss": total_loss / len(train), "valid_accuracy": scores}
        )
        log.info(
            "classifier epoch %d: loss %.4f, valid accuracy %.4f",
            epoch,
            total_loss / len(train),
            scores["mean"],
        )
        if scores["mean"] > state["best_accuracy"]:
            state["best_accuracy"], state["stale"] = scores["mean"], 0
            state["best_state"] = {
                k: v.detach().cpu().clone() for k, v in classifier.state_dict().items()
            }
        else:
            state["stale"] += 1
            if state["stale"] >= config.patience:
                log.info("early stop: no better validation accuracy for %d epochs", state["stale"])
                state["stopped"] = True
        state["epoch"] = epoch
        if last is not None:
            last.save(
                {
                    **state,
                    "net": classifier.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    "rng": runtime.rng_state(device),
                }
            )
    assert state["best_state"] is not None
    classifier = classifier.cpu()
    classifier.load_state_dict(state["best_state"])
    return classifier.eval(), state["history"]
