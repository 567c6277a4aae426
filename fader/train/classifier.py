"""Training the attribute classifier that judges swaps (Section 4, model selection).

A multi-label CNN (`fader.model.networks.AttributeClassifier`) trained on real images of the train
split with binary cross-entropy, flip augmentation and early stopping on validation accuracy;
its per-attribute accuracy on the test split says how far its verdicts can be trusted.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fader import runtime
from fader.data.prepared import PreparedDataset
from fader.model.networks import AttributeClassifier, ClassifierConfig
from fader.train.config import ClassifierTrainConfig

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
) -> tuple[AttributeClassifier, list[dict[str, Any]]]:
    """Train on `train`, keep the weights of the epoch with the best mean validation accuracy.

    Returns the classifier (best weights, eval mode, on the CPU) and the per-epoch history.
    """
    device = runtime.resolve_device(config.device)
    runtime.seed_everything(seed)
    classifier = AttributeClassifier(model).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.learning_rate, fused=True)
    generator = torch.Generator().manual_seed(seed)
    best_accuracy, best_state, stale = -1.0, None, 0
    history: list[dict[str, Any]] = []
    for epoch in range(1, config.max_epochs + 1):
        classifier.train()
        order = torch.randperm(len(train), generator=generator).numpy()
        total_loss = 0.0
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, disable=not progress, desc=f"classifier epoch {epoch}"):
            x, y = train.batch(order[start : start + config.batch_size], generator=generator)
            loss = F.binary_cross_entropy_with_logits(classifier(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(x)
        scores = accuracy(classifier, valid, device=device)
        history.append(
            {"epoch": epoch, "train_loss": total_loss / len(train), "valid_accuracy": scores}
        )
        log.info(
            "classifier epoch %d: loss %.4f, valid accuracy %.4f",
            epoch,
            total_loss / len(train),
            scores["mean"],
        )
        if scores["mean"] > best_accuracy:
            best_accuracy, stale = scores["mean"], 0
            best_state = {k: v.detach().cpu().clone() for k, v in classifier.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                log.info("early stop: no better validation accuracy for %d epochs", stale)
                break
    assert best_state is not None
    classifier = classifier.cpu()
    classifier.load_state_dict(best_state)
    return classifier.eval(), history
