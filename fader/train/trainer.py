"""Training the Fader network: Sections 3, 4 and 5.1 of the paper, the official train.py loop.

One iteration is a latent-discriminator step on one batch, then an autoencoder step on another
batch (every step draws its own batch; `fader.train.steps`). Horizontal flips with p = 0.5. At
the end of each epoch the validation split gives the reconstruction MSE, the latent
discriminator's accuracy and the classifier-judged swap accuracy (Section 4, model selection);
checkpoints keep the last state (resumable exactly) and the best model by each criterion.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fader import io, runtime
from fader.config import to_dict
from fader.data.prepared import PreparedDataset
from fader.eval.swaps import swap_accuracy
from fader.model import checkpoint
from fader.model.networks import AttributeClassifier, LatentDiscriminator, ModelConfig
from fader.train.config import TrainConfig
from fader.train.losses import lambda_e
from fader.train.steps import FaderNetworks, autoencoder_step, discriminator_step, patch_step

log = logging.getLogger(__name__)

LAST, BEST_RECON, BEST_SWAP = "last.pt", "best_recon.pt", "best_swap.pt"
VALID_BATCH_SIZE = 128  # validation has no gradients: larger batches are faster, results the same

#: Receives a flat dict of metrics and the autoencoder step they belong to (e.g. DVCLive).
MetricsLogger = Callable[[dict[str, float], int], None]


class TrainingInterrupted(RuntimeError):
    """SIGTERM or Ctrl-C: the state was saved at a step boundary; the message says how to resume."""


class NonFiniteLoss(FloatingPointError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class _StopRequest:
    """The first SIGTERM or SIGINT received, by name (None: none yet)."""

    signal: str | None = None


@contextlib.contextmanager
def _stop_requests() -> Iterator[_StopRequest]:
    """A stop request set by the first SIGTERM or SIGINT (a second one acts as usual).

    Signal handlers can only be set in the main thread; elsewhere no request ever comes.
    """
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request(sig: int, frame: object) -> None:
        stop.signal = signal.Signals(sig).name
        signal.signal(sig, previous[sig])

    for sig in previous:
        signal.signal(sig, request)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# Validation (Section 4, model selection)
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(
    nets: FaderNetworks,
    classifier: AttributeClassifier,
    valid: PreparedDataset,
    size: int,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Reconstruction MSE, latent-discriminator accuracy and swap accuracy per attribute."""
    nets.autoencoder.eval()
    nets.discriminator.eval()
    classifier.eval()
    count = len(valid) if size == 0 else min(size, len(valid))
    sums: dict[str, float] = {}
    for start in range(0, count, batch_size):
        x, y = valid.batch(np.arange(start, min(start + batch_size, count)))
        x, y = x.to(device), y.to(device)
        features = nets.autoencoder.encode(x)
        batch = {"recon_mse": F.mse_loss(nets.autoencoder.decode(features, y), x).item()}
        logits = LatentDiscriminator.per_attribute(nets.discriminator(features[-1]))
        hits = logits.argmax(-1) == y.long()
        for i, name in enumerate(valid.attributes):
            batch[f"dis_accuracy/{name}"] = hits[:, i].float().mean().item()
        for name, accuracy in swap_accuracy(
            nets.autoencoder, classifier, x, y, valid.attributes
        ).items():
            batch[f"swap_accuracy/{name}"] = accuracy
        for key, value in batch.items():
            sums[key] = sums.get(key, 0.0) + value * len(x)
    metrics = {key: value / count for key, value in sums.items()}
    metrics["swap_accuracy/mean"] = float(
        np.mean([metrics[f"swap_accuracy/{name}"] for name in valid.attributes])
    )
    return metrics


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def train_fader(
    train: PreparedDataset,
    valid: PreparedDataset,
    classifier: AttributeClassifier,
    model: ModelConfig,
    config: TrainConfig,
    checkpoint_dir: Path,
    seed: int,
    logger: MetricsLogger | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train for `config.n_epochs`, resuming from `checkpoint_dir/last.pt` when it matches.

    `logger` receives per-step metrics every `log_every` steps and the validation scores at
    the end of each epoch; a resumed run first replays what the interrupted one logged.

    A run interrupted at any point and restarted ends exactly where an uninterrupted run with
    the same seed ends: the last checkpoint holds the networks, optimizers, step, epoch, the
    sampler's and torch's RNG states, and the best scores so far. Returns the epoch history and
    the best epochs.

    SIGTERM or Ctrl-C saves `last.pt` at the next step boundary and raises TrainingInterrupted;
    a NaN or infinite loss raises NonFiniteLoss and keeps the last good checkpoint. Only one run
    at a time may use `checkpoint_dir`: a second one (an orphan of a killed `dvc repro`, say)
    fails with `io.LockedError` instead of writing beside the first.
    """
    lock = checkpoint_dir.with_name(f".{checkpoint_dir.name}.lock")
    with (
        io.exclusive_lock(lock, f"the checkpoint folder {checkpoint_dir}"),
        _stop_requests() as stop,
    ):
        device = runtime.resolve_device(config.device)
        runtime.seed_everything(seed)
        nets = FaderNetworks.build(model, config, device)
        classifier = classifier.to(device)
        sampler = torch.Generator().manual_seed(seed)
        state: dict[str, Any] = {"step": 0, "epoch": 0, "history": [], "logs": [], "running": {}}
        fingerprint = _fingerprint(model, config, seed, train, classifier)
        last = checkpoint_dir / LAST
        _resume(last, nets, sampler, state, fingerprint, config.n_epochs, device)

        def emit(metrics: dict[str, float], step: int) -> None:
            state["logs"].append((step, metrics))
            if logger is not None:
                logger(metrics, step)

        # A resumed run replays what it logged before the checkpoint. DVCLive's own resume
        # (`Live(resume=True)`) keeps its files as they are and appends, so the steps logged after
        # the last checkpoint, which the resumed run logs again, would appear twice.
        for step, metrics in list(state["logs"]):
            if logger is not None:
                logger(metrics, step)
        steps_per_epoch = config.steps_per_epoch
        total = config.n_epochs * steps_per_epoch
        bar = tqdm(
            total=total,
            initial=state["step"],
            unit="step",
            disable=not progress,
            desc="train",
        )
        while state["epoch"] < config.n_epochs:
            done = state["step"] - state["epoch"] * steps_per_epoch  # > 0: resumed mid-epoch
            running: dict[str, float] = state["running"] if done else {}
            for _ in range(done, steps_per_epoch):
                if stop.signal is not None:  # at a step boundary: save, then say how to go on
                    state["running"] = running
                    _save_last(nets, sampler, state, fingerprint, checkpoint_dir)
                    bar.close()
                    raise TrainingInterrupted(
                        f"training stopped by {stop.signal} at step "
                        f"{state['step']} (epoch {state['epoch'] + 1}); saved {last}: run the same "
                        "command (or dvc repro) to resume from there"
                    )
                lam = lambda_e(state["step"], config.lambda_max, config.lambda_schedule)
                try:
                    metrics = _iteration(nets, train, config, sampler, device, lam)
                except FloatingPointError as error:
                    bar.close()
                    kept = f"{last} keeps epoch {state['epoch']}" if last.is_file() else "nothing"
                    raise NonFiniteLoss(
                        f"training stopped at step {state['step'] + 1}: {error}; {kept}"
                    ) from None
                state["step"] += 1
                for key, value in metrics.items():
                    running[key] = running.get(key, 0.0) + value
                if state["step"] % config.log_every == 0:
                    emit(
                        {f"train/{k}": v for k, v in metrics.items()} | {"lambda_e": lam},
                        state["step"],
                    )
                bar.update(1)
            state["epoch"] += 1
            state["running"] = {}
            scores = validate(nets, classifier, valid, config.valid_size, VALID_BATCH_SIZE, device)
            record = {
                "epoch": state["epoch"],
                "step": state["step"],
                **{f"train_epoch/{k}": v / steps_per_epoch for k, v in running.items()},
                **{f"valid/{k}": v for k, v in scores.items()},
            }
            state["history"].append(record)
            emit({k: v for k, v in record.items() if k != "step"}, state["step"])
            _save_epoch(nets, sampler, state, fingerprint, checkpoint_dir, scores)
            log.info(
                "epoch %d/%d: recon %.4f, swap accuracy %.3f, dis accuracy %s",
                state["epoch"],
                config.n_epochs,
                scores["recon_mse"],
                scores["swap_accuracy/mean"],
                {n: round(scores[f"dis_accuracy/{n}"], 3) for n in valid.attributes},
            )
        bar.close()
        return {"history": state["history"], **_best(state["history"])}


def _iteration(
    nets: FaderNetworks,
    train: PreparedDataset,
    config: TrainConfig,
    sampler: torch.Generator,
    device: torch.device,
    lam: float,
) -> dict[str, float]:
    """One iteration: a discriminator step (and the PatchGAN's), then an autoencoder step, each
    on its own batch. Raises FloatingPointError when a loss is not finite."""
    x, y = _sample(train, config.batch_size, sampler, device)
    metrics = discriminator_step(nets, x, y, config.clip_grad_norm)
    if nets.patch is not None:
        metrics |= patch_step(nets, x, y, config.clip_grad_norm)
    x, y = _sample(train, config.batch_size, sampler, device)
    return metrics | autoencoder_step(nets, x, y, lam, config)


def _resume(
    last: Path,
    nets: FaderNetworks,
    sampler: torch.Generator,
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    n_epochs: int,
    device: torch.device,
) -> None:
    """Restore `last` into `nets`, `sampler` and `state` when it was made with these settings."""
    if not last.is_file():
        return
    saved = checkpoint.load(last, "fader_training", map_location=device)
    if saved["fingerprint"] != fingerprint:
        log.info("%s was made with other settings: starting afresh", last)
    elif saved["epoch"] > n_epochs:  # n_epochs is not in the fingerprint (extending)
        log.info(
            "%s is at epoch %d, past n_epochs %d: starting afresh", last, saved["epoch"], n_epochs
        )
    else:
        _restore(nets, sampler, state, saved)
        log.info("resuming from %s at epoch %d (step %d)", last, state["epoch"], state["step"])


def _sample(
    data: PreparedDataset, batch_size: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch (with replacement across batches, as the official sampler), flipped."""
    indices = torch.randint(len(data), (batch_size,), generator=generator).numpy()
    x, y = data.batch(indices, generator=generator)
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _fingerprint(
    model: ModelConfig,
    config: TrainConfig,
    seed: int,
    train: PreparedDataset,
    classifier: AttributeClassifier,
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (n_epochs may grow; device may change).

    The data is identified by its table and metadata, the judge by a digest of its weights.
    """
    settings = {k: v for k, v in to_dict(config).items() if k not in ("n_epochs", "device")}
    judge = hashlib.sha256()
    for tensor in classifier.state_dict().values():
        judge.update(tensor.detach().cpu().numpy().tobytes())
    return {
        "model": to_dict(model),
        "train": settings,
        "seed": seed,
        "data": {"digest": train.digest, "attributes": list(train.attributes)},
        "classifier": judge.hexdigest(),
    }


def _restore(
    nets: FaderNetworks, sampler: torch.Generator, state: dict[str, Any], saved: dict[str, Any]
) -> None:
    for name, part in nets.modules().items():
        part.load_state_dict(saved["nets"][name])
    sampler.set_state(saved["sampler"])
    runtime.set_rng_state(saved["rng"])
    state.update({key: saved[key] for key in ("step", "epoch", "history", "logs")})
    state["running"] = saved.get("running", {})  # the sums of an epoch stopped midway


def _save_epoch(
    nets: FaderNetworks,
    sampler: torch.Generator,
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    checkpoint_dir: Path,
    scores: dict[str, float],
) -> None:
    attributes = fingerprint["data"]["attributes"]
    history = state["history"]
    payload = checkpoint.network_payload("fader", nets.autoencoder, attributes, scores=scores)
    if scores["recon_mse"] <= min(r["valid/recon_mse"] for r in history):
        checkpoint.save(checkpoint_dir / BEST_RECON, payload)
    if _best(history)["best_swap_epoch"] == state["epoch"]:
        checkpoint.save(checkpoint_dir / BEST_SWAP, payload)
    _save_last(nets, sampler, state, fingerprint, checkpoint_dir)


def _save_last(
    nets: FaderNetworks,
    sampler: torch.Generator,
    state: dict[str, Any],
    fingerprint: dict[str, Any],
    checkpoint_dir: Path,
) -> None:
    """last.pt: everything a resumed run needs to go on exactly as this one would."""
    checkpoint.save(
        checkpoint_dir / LAST,
        {
            "kind": "fader_training",
            "fingerprint": fingerprint,
            "step": state["step"],
            "epoch": state["epoch"],
            "history": state["history"],
            "logs": state["logs"],
            "running": state["running"],
            "sampler": sampler.get_state(),
            "rng": runtime.rng_state(),
            "nets": {name: part.state_dict() for name, part in nets.modules().items()},
        },
    )


def _best(history: list[dict[str, float]]) -> dict[str, int]:
    """The selection rule: highest mean swap accuracy, ties broken by lower reconstruction."""
    swap = max(history, key=lambda r: (r["valid/swap_accuracy/mean"], -r["valid/recon_mse"]))
    recon = min(history, key=lambda r: r["valid/recon_mse"])
    return {"best_swap_epoch": int(swap["epoch"]), "best_recon_epoch": int(recon["epoch"])}
