"""Training the Fader network: Sections 3, 4 and 5.1 of the paper, the official train.py loop.

One iteration is a latent-discriminator step on one batch (`dis_steps` of them, each on its own),
then an autoencoder step on another batch (`fader.train.steps`). Horizontal flips with p = 0.5. At
the end of each epoch the validation split gives the reconstruction MSE, the latent
discriminator's accuracy and the classifier-judged swap accuracy (Section 4, model selection);
checkpoints keep the last state (resumable exactly, `fader.train.resume`) and the best model by
each criterion.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from fader import runtime
from fader.config import to_dict
from fader.data.prepared import BatchSampler, DeviceSplit, PreparedDataset
from fader.eval.swaps import swap_accuracy
from fader.model import checkpoint
from fader.model.networks import AttributeClassifier, LatentDiscriminator, ModelConfig
from fader.train import losses
from fader.train.config import TrainConfig
from fader.train.distributed import SINGLE, Group
from fader.train.resume import LAST, LastCheckpoint, locked
from fader.train.steps import (
    FaderNetworks,
    StepMetrics,
    autoencoder_step,
    critic_step,
    discriminator_step,
)

log = logging.getLogger(__name__)

BEST_RECON, BEST_SWAP = "best_recon.pt", "best_swap.pt"
FINAL = "final.pt"  # the latest epoch's model
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
    autoencoder, discriminator = nets.evaluated, nets.discriminator.net
    autoencoder.eval()
    discriminator.eval()
    classifier.eval()
    count = len(valid) if size == 0 else min(size, len(valid))
    sums: dict[str, float] = {}
    for start in range(0, count, batch_size):
        x, y = valid.batch(np.arange(start, min(start + batch_size, count)))
        x, y = x.to(device), y.to(device)
        features = autoencoder.encode(x)
        batch = {"recon_mse": F.mse_loss(autoencoder.decode(features, y), x).item()}
        logits = LatentDiscriminator.per_attribute(discriminator(features[-1]))
        hits = logits.argmax(-1) == y.long()
        for i, name in enumerate(valid.attributes):
            batch[f"dis_accuracy/{name}"] = hits[:, i].float().mean().item()
        for name, accuracy in swap_accuracy(
            autoencoder, classifier, x, y, valid.attributes
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
    group: Group = SINGLE,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Train for `config.n_epochs`, resuming from `checkpoint_dir/last.pt` when it matches
    (`fader.train.resume`: one made with other settings is moved aside, with a warning).

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

    In a distributed `group` (`fader.train.distributed`) every rank calls this with the same
    arguments on `device`; rank 0 alone validates, logs (the mean over the ranks), shows
    progress, holds the lock, reads and writes checkpoints (sending a resumed state to the
    others), and only its result has the history.
    """
    device = device if device is not None else runtime.resolve_device(config.device)
    config = in_global_terms(config, group)
    with (
        locked(checkpoint_dir) if group.is_main else contextlib.nullcontext(),
        _stop_requests() as stop,
    ):
        main_logger = logger if group.is_main else None
        run = _Run.start(
            train, classifier, model, config, checkpoint_dir, seed, group, device, main_logger
        )
        batches = train.on_device(device) if _data_on_device(config, train, device) else train
        run.replay_logs()
        steps_per_epoch = config.steps_per_epoch
        bar = tqdm(
            total=config.total_steps,
            initial=run.state["step"],
            unit="step",
            disable=not (progress and group.is_main),
            desc="train",
        )
        with bar:
            while run.state["epoch"] < config.n_epochs:
                done = run.state["step"] - run.state["epoch"] * steps_per_epoch  # > 0: resumed
                for _ in range(done, steps_per_epoch):
                    if run.stop_requested(stop):  # at a step boundary: save, say how to go on
                        run.save_last()
                        raise TrainingInterrupted(
                            f"training stopped by {stop.signal or 'another process'} at step "
                            f"{run.state['step']} (epoch {run.state['epoch'] + 1}); saved "
                            f"{checkpoint_dir / LAST}: run the same command (or dvc repro) to "
                            "resume from there"
                        )
                    run.iterate(batches)
                    bar.update(1)
                run.end_epoch(valid, classifier)
        if not group.is_main:  # validation ran on rank 0 only
            return {"history": []}
        return {"history": run.state["history"], **_best(run.state["history"])}


class _Run:
    """One training run: the networks, the batch sampler and the state a checkpoint keeps.

    What only rank 0 does (logging, validation, writing checkpoints) happens here, behind
    `group.is_main`, so that the loop in `train_fader` reads the same for every rank.
    """

    def __init__(
        self,
        nets: FaderNetworks,
        config: TrainConfig,
        sampler: BatchSampler,
        last: LastCheckpoint,
        checkpoint_dir: Path,
        group: Group,
        device: torch.device,
        logger: MetricsLogger | None,
    ) -> None:
        self.nets, self.config, self.sampler = nets, config, sampler
        self.last, self.checkpoint_dir = last, checkpoint_dir
        self.group, self.device, self.logger = group, device, logger
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "history": [], "logs": []}
        self.sums = _EpochSums(device)
        self.saved = False  # whether last.pt holds this run's state (resumed or saved)

    @classmethod
    def start(
        cls,
        train: PreparedDataset,
        classifier: AttributeClassifier,
        model: ModelConfig,
        config: TrainConfig,
        checkpoint_dir: Path,
        seed: int,
        group: Group,
        device: torch.device,
        logger: MetricsLogger | None,
    ) -> _Run:
        """Fresh networks from `seed`, or the state of `last.pt` when it was made alike."""
        runtime.seed_everything(seed)
        nets = FaderNetworks.build(model, config, device, group)
        if group.rank > 0:  # its own dropout draws; rank 0's are a single process's
            torch.manual_seed(seed + group.rank)
        classifier.to(device)
        sampler = BatchSampler(  # the same draws on every rank, each keeps its share
            torch.Generator().manual_seed(seed),
            len(train),
            config.batch_size,
            train.flip,
            group.share(config.batch_size),
        )
        fingerprint = _fingerprint(model, config, seed, train, classifier, group)
        last = LastCheckpoint(checkpoint_dir, "fader_training", fingerprint, writer=group.is_main)
        run = cls(nets, config, sampler, last, checkpoint_dir, group, device, logger)
        run._resume()
        return run

    # -- the steps ------------------------------------------------------------------------

    def iterate(self, train: PreparedDataset | DeviceSplit) -> None:
        """One iteration, its metrics summed on the device; logged every `log_every` steps."""
        config, state = self.config, self.state
        lambda_e = losses.lambda_e(state["step"], config.lambda_max, config.lambda_schedule)
        rate = losses.learning_rate(
            state["step"], config.learning_rate, config.total_steps, config.lr_decay
        )
        self.nets.set_learning_rate(rate)
        metrics = _iteration(
            self.nets, train, config, self.sampler, self.device, lambda_e, self.group
        )
        state["step"] += 1
        self.sums.add(metrics, state["step"])
        if state["step"] % config.log_every == 0:
            # the only host syncs between epochs; every rank's steps, not rank 0's alone
            self.sums.check(self._kept(), self.group)
            values = {f"train/{k}": v.item() for k, v in self.group.mean(metrics).items()}
            values["lambda_e"] = lambda_e
            if config.lr_decay > 0:
                values["learning_rate"] = rate
            self._emit(values, state["step"])

    def stop_requested(self, stop: _StopRequest) -> bool:
        """A stop request, agreed by every rank (asked every `log_every` steps when several)."""
        if not self.group.distributed:
            return stop.signal is not None
        if self.state["step"] % self.config.log_every:
            return False
        return self.group.any(stop.signal is not None)

    def end_epoch(self, valid: PreparedDataset, classifier: AttributeClassifier) -> None:
        """Validation, the epoch's record and checkpoints (rank 0), then every rank goes on."""
        state, config = self.state, self.config
        self.sums.check(self._kept(), self.group)
        running = {k: v.item() for k, v in self.group.mean(self.sums.sums).items()}
        state["epoch"] += 1
        self.sums = _EpochSums(self.device)
        if self.group.is_main:
            scores = validate(
                self.nets, classifier, valid, config.valid_size, VALID_BATCH_SIZE, self.device
            )
            record = {
                "epoch": state["epoch"],
                "step": state["step"],
                **{f"train_epoch/{k}": v / config.steps_per_epoch for k, v in running.items()},
                **{f"valid/{k}": v for k, v in scores.items()},
            }
            state["history"].append(record)
            self._emit({k: v for k, v in record.items() if k != "step"}, state["step"])
            self._save_best(scores)
            log.info(
                "epoch %d/%d: recon %.4f, swap accuracy %.3f, dis accuracy %s",
                state["epoch"],
                config.n_epochs,
                scores["recon_mse"],
                scores["swap_accuracy/mean"],
                {n: round(scores[f"dis_accuracy/{n}"], 3) for n in valid.attributes},
            )
        self.save_last()

    def _kept(self) -> str:
        """What the last checkpoint keeps, for a NonFiniteLoss (known alike on every rank)."""
        if not self.saved:
            return "nothing"
        return f"{self.last.path} keeps epoch {self.state['epoch']}"

    # -- logging ----------------------------------------------------------------------------

    def _emit(self, metrics: dict[str, float], step: int) -> None:
        self.state["logs"].append((step, metrics))
        if self.logger is not None:
            self.logger(metrics, step)

    def replay_logs(self) -> None:
        """What a resumed run logged before its checkpoint, logged again.

        DVCLive's own resume (`Live(resume=True)`) keeps its files as they are and appends, so the
        steps logged after the last checkpoint, which the resumed run logs again, would appear
        twice.
        """
        if self.logger is not None:
            for step, metrics in list(self.state["logs"]):
                self.logger(metrics, step)

    # -- checkpoints ------------------------------------------------------------------------

    def save_last(self) -> None:
        """last.pt: everything a resumed run needs to go on exactly as this one would.

        Every rank's RNG state and running sums are gathered (each rank draws its own dropout
        and sums its own share's metrics); rank 0 writes.
        """
        rng = self.group.gather(runtime.rng_state(self.device))
        running = self.group.gather(self.sums.values())
        if self.group.is_main:
            self.last.save(
                {
                    **{key: self.state[key] for key in ("step", "epoch", "history", "logs")},
                    "running": running,
                    "sampler": self.sampler.get_state(),
                    "rng": rng,
                    "nets": {name: part.state_dict() for name, part in self.nets.modules().items()},
                }
            )
        self.group.barrier()  # no rank runs ahead of a checkpoint, or leaves before it is written
        self.saved = True

    def _save_best(self, scores: dict[str, float]) -> None:
        attributes = self.last.fingerprint["data"]["attributes"]
        history = self.state["history"]
        payload = checkpoint.network_payload(
            "fader", self.nets.evaluated, attributes, scores=scores
        )
        if scores["recon_mse"] <= min(r["valid/recon_mse"] for r in history):
            checkpoint.save(self.checkpoint_dir / BEST_RECON, payload)
        if _best(history)["best_swap_epoch"] == self.state["epoch"]:
            checkpoint.save(self.checkpoint_dir / BEST_SWAP, payload)
        checkpoint.save(self.checkpoint_dir / FINAL, payload)

    def _resume(self) -> None:
        """Restore `last.pt` when it was made alike.

        Rank 0 alone reads it and decides (moving a mismatched one aside), then sends its state
        to the others: the ranks of another machine need no shared filesystem, and can never
        decide otherwise than rank 0 (and hang in mismatched collectives).
        """
        saved = self.last.load(self.config.n_epochs) if self.group.is_main else None
        saved = self.group.broadcast(saved)
        if saved is None:
            return
        for name, part in self.nets.modules().items():
            part.load_state_dict(saved["nets"][name])
        self.sampler.set_state(saved["sampler"])
        runtime.set_rng_state(saved["rng"][self.group.rank], self.device)
        self.state.update({key: saved[key] for key in ("step", "epoch", "history", "logs")})
        running = saved["running"]  # one per rank (older checkpoints: rank 0's alone)
        running = running[self.group.rank] if isinstance(running, list) else running
        self.sums = _EpochSums(self.device, running)  # an epoch stopped midway
        self.saved = True
        log.info(
            "resuming from %s at epoch %d (step %d)",
            self.last.path,
            self.state["epoch"],
            self.state["step"],
        )


class _EpochSums:
    """The epoch's step metrics summed on the device, so that no step waits for the device;
    with the first step whose metrics were not finite. Read only when logged."""

    def __init__(self, device: torch.device, saved: dict[str, float] | None = None) -> None:
        self.device = device
        self.sums = {
            key: torch.tensor(value, dtype=torch.float64, device=device)
            for key, value in (saved or {}).items()
        }
        self.first_bad = torch.tensor(0, device=device)  # 0: none yet (steps count from 1)

    def add(self, metrics: StepMetrics, step: int) -> None:
        for key, value in metrics.items():
            total = self.sums.get(key)
            self.sums[key] = value.double() if total is None else total + value
        finite = torch.stack([value.float() for value in metrics.values()]).isfinite().all()
        self.first_bad = torch.where(finite | (self.first_bad > 0), self.first_bad, step)

    def check(self, kept: str, group: Group = SINGLE) -> None:
        """Raise NonFiniteLoss naming the first bad step and the metrics that went bad, on any
        rank: every rank raises alike (a collective when distributed)."""
        if group.distributed:
            step, bad = self._agreed(group)
        else:
            step = int(self.first_bad.item())
            bad = []
            if step:  # read the sums only then: one host sync per check otherwise
                bad = sorted(k for k, value in self.values().items() if not np.isfinite(value))
        if step:
            raise NonFiniteLoss(
                f"training stopped at step {step}: {', '.join(bad)} became non-finite "
                f"(lower learning_rate); {kept}"
            )

    def values(self) -> dict[str, float]:
        return {key: value.item() for key, value in self.sums.items()}

    def _agreed(self, group: Group) -> tuple[int, list[str]]:
        """The first bad step over all ranks (0: none) and the metrics bad on any, from one
        all-reduce (maximum) of -first bad step and each metric's non-finite flag."""
        keys = sorted(self.sums)
        first = torch.where(self.first_bad > 0, -self.first_bad.double(), -torch.inf)
        flags = [(~self.sums[key].isfinite()).double() for key in keys]
        agreed = group.max(torch.stack([first, *flags])).tolist()
        step = 0 if agreed[0] == -np.inf else int(-agreed[0])
        return step, [key for key, flag in zip(keys, agreed[1:], strict=True) if flag > 0]


def in_global_terms(config: TrainConfig, group: Group) -> TrainConfig:
    """`config` with `batch_size` the global batch (`batch_scope: global`), as the loop reads it:
    `batch_scope: per_process` multiplies it by the number of processes. Its steps per epoch
    follow, and so does the fingerprint (a per-process 16 on 2 processes is a global 32)."""
    batch = group.global_batch(config.batch_size, config.batch_scope)
    return dataclasses.replace(config, batch_size=batch, batch_scope="global")


def _iteration(
    nets: FaderNetworks,
    train: PreparedDataset | DeviceSplit,
    config: TrainConfig,
    sampler: BatchSampler | torch.Generator,
    device: torch.device,
    lambda_e: float,
    group: Group = SINGLE,
) -> StepMetrics:
    """One iteration, as the official train.py's: `dis_steps` discriminator steps, each on its
    own batch, then each critic's step on the last one's batch, then an autoencoder step on a
    batch of its own. The discriminator's metrics are its last step's."""
    for _ in range(config.dis_steps):
        x, y = _sample(train, config.batch_size, sampler, device, group)
        metrics = discriminator_step(nets, x, y, config.clip_grad_norm)
    for critic in nets.critics:
        metrics |= critic_step(nets, critic, x, y, config.clip_grad_norm)
    x, y = _sample(train, config.batch_size, sampler, device, group)
    return metrics | autoencoder_step(nets, x, y, lambda_e, config)


def _sample(
    data: PreparedDataset | DeviceSplit,
    batch_size: int,
    generator: BatchSampler | torch.Generator,
    device: torch.device,
    group: Group = SINGLE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of a random batch (with replacement across batches, as the official
    sampler), flipped. Every rank draws the whole batch from the same generator, so the shares
    are disjoint and together are the batch one process would draw.

    A `BatchSampler` serves batches drawn ahead, its indices and flips already where the data
    is (no copy per batch); a bare generator draws one batch now, the same one."""
    if isinstance(generator, torch.Generator):
        share = group.share(batch_size)
        generator = BatchSampler(generator, len(data), batch_size, data.flip, share, chunk=1)
    assert generator.batch_size == batch_size and generator.flip == data.flip
    where = data.device if isinstance(data, DeviceSplit) else torch.device("cpu")
    indices, flips = generator.next(where)
    x, y = data.batch(indices, flips=flips)
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _data_on_device(config: TrainConfig, train: PreparedDataset, device: torch.device) -> bool:
    """`train_fader.data_on_device`: `auto` is a GPU with room for the split and 8 GiB more."""
    if config.data_on_device != "auto":
        return bool(config.data_on_device)
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return train.images[:1].nbytes * len(train) + 8 * 2**30 < free


#: The train_fader settings a resumed run may change: none of them changes a step's arithmetic
#: (n_epochs only lengthens the run, unless the rate decays over its steps).
RESUMABLE_CHANGES = frozenset(
    {
        "n_epochs",
        "device",
        "memory_format",
        "nproc",
        "data_on_device",
        "selection",
        "log_every",
        "valid_size",
        "deterministic",  # which GPU kernels, not which method (no effect on the CPU)
        "batch_scope",  # fingerprinted in its effect: batch_size is the global batch there
    }
)


def _fingerprint(
    model: ModelConfig,
    config: TrainConfig,
    seed: int,
    train: PreparedDataset,
    classifier: AttributeClassifier,
    group: Group,
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: every setting but RESUMABLE_CHANGES (the
    number of processes too: each has its own RNG state).

    The data is identified by its table and metadata, the judge by a digest of its weights.
    """
    free = set(RESUMABLE_CHANGES)
    if config.lr_decay > 0:  # the decay's steps depend on the run's length
        free.remove("n_epochs")
    settings = {k: v for k, v in to_dict(config).items() if k not in free}
    judge = hashlib.sha256()
    for tensor in classifier.state_dict().values():
        judge.update(tensor.detach().cpu().numpy().tobytes())
    return {
        "model": to_dict(model),
        "train": settings,
        "seed": seed,
        "data": {"digest": train.digest, "attributes": list(train.attributes)},
        "classifier": judge.hexdigest(),
        "processes": group.world_size,
    }


def _best(history: list[dict[str, float]]) -> dict[str, int]:
    """The best epochs: the highest mean swap accuracy (ties: the lower reconstruction), and
    the lowest reconstruction."""
    swap = max(history, key=lambda r: (r["valid/swap_accuracy/mean"], -r["valid/recon_mse"]))
    recon = min(history, key=lambda r: r["valid/recon_mse"])
    return {"best_swap_epoch": int(swap["epoch"]), "best_recon_epoch": int(recon["epoch"])}
