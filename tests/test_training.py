import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fader.data.config import PreprocessConfig
from fader.data.prepared import BatchSampler, PreparedDataset, draw_batch
from fader.data.preprocess import prepare
from fader.model import checkpoint
from fader.model.networks import AttributeClassifier, AutoEncoder, ClassifierConfig, ModelConfig
from fader.train import trainer
from fader.train.config import TrainConfig
from fader.train.losses import lambda_e, learning_rate, reconstruction_loss
from fader.train.steps import FaderNetworks, MovingAverage, autoencoder_step
from fader.train.trainer import BEST_RECON, BEST_SWAP, LAST, train_fader
from tests.conftest import make

ATTRS = ("Smiling", "Male")
MODEL = make(ModelConfig, img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16)
CONFIG = make(
    TrainConfig,
    batch_size=4,
    epoch_size=16,
    n_epochs=2,
    lambda_max=0.01,
    lambda_schedule=6,
    log_every=2,
    device="cpu",
)


@pytest.fixture
def prepared(raw_celeba: Path, tmp_path: Path) -> Path:
    config = make(PreprocessConfig, img_size=32, attributes=ATTRS, workers=1)
    prepare(raw_celeba, tmp_path / "prepared", config, progress=False)
    return tmp_path / "prepared"


def judge() -> AttributeClassifier:
    torch.manual_seed(123)
    return AttributeClassifier(make(ClassifierConfig, img_size=32, n_attr=2, init_fm=4, max_fm=8))


def run(prepared: Path, ckpt: Path, config: TrainConfig = CONFIG, logger=None) -> dict:
    train = PreparedDataset(prepared, "train", flip=True)
    valid = PreparedDataset(prepared, "valid")
    return train_fader(
        train, valid, judge(), MODEL, config, ckpt, seed=7, logger=logger, progress=False
    )


def count_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the autoencoder steps the trainer runs from now on (one entry per step).

    A resumed run and a fresh one end alike (training is deterministic), so what tells them
    apart is how many steps they train.
    """
    steps: list[int] = []
    step = trainer.autoencoder_step

    def counting(*args, **kwargs):
        steps.append(1)
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "autoencoder_step", counting)
    return steps


def test_lambda_schedule_is_linear_then_constant() -> None:
    assert lambda_e(0, 1e-4, 500_000) == 0
    assert lambda_e(250_000, 1e-4, 500_000) == pytest.approx(5e-5)
    assert lambda_e(600_000, 1e-4, 500_000) == 1e-4
    assert lambda_e(3, 0.5, 0) == 0.5


def test_the_learning_rate_is_constant_or_falls_linearly_to_zero_at_the_end() -> None:
    assert [learning_rate(s, 1e-3, 100, 0.0) for s in (0, 99)] == [1e-3, 1e-3]
    rates = [learning_rate(s, 1e-3, 100, 0.25) for s in range(100)]
    assert rates[:76] == [1e-3] * 76  # steps 0..75: the full rate
    assert rates[80] == pytest.approx(0.8e-3) and rates[99] == pytest.approx(0.04e-3)
    assert all(a > b for a, b in zip(rates[75:], rates[76:], strict=False))


def test_autoencoder_steps_lower_the_reconstruction_loss() -> None:
    torch.manual_seed(0)
    nets = FaderNetworks.build(MODEL, replace(CONFIG, learning_rate=1e-3), torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    losses = [autoencoder_step(nets, x, y, 0.0, CONFIG)["recon_loss"].item() for _ in range(10)]
    assert losses[-1] < losses[0]


def test_lambda_e_as_a_device_tensor_gives_the_same_step() -> None:
    """A captured step would read λ_E from a tensor: the same weights, bit for bit."""
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    weights = []
    for weight in (0.37, torch.tensor(0.37)):
        torch.manual_seed(0)
        nets = FaderNetworks.build(MODEL, replace(CONFIG, ema_decay=0.5), torch.device("cpu"))
        for _ in range(3):
            autoencoder_step(nets, x, y, weight, CONFIG)
        weights.append(nets.autoencoder.net.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_training_writes_checkpoints_and_logs(prepared: Path, tmp_path: Path) -> None:
    logged: list[tuple[int, dict]] = []
    result = run(prepared, tmp_path / "ckpt", logger=lambda m, s: logged.append((s, m)))
    assert [r["epoch"] for r in result["history"]] == [1, 2]
    for name in (LAST, BEST_RECON, BEST_SWAP):
        assert (tmp_path / "ckpt" / name).is_file()
    autoencoder, attributes = checkpoint.load_network(tmp_path / "ckpt" / BEST_SWAP, "fader")
    assert attributes == list(ATTRS)
    assert autoencoder(torch.zeros(1, 3, 32, 32), torch.ones(1, 2)).shape == (1, 3, 32, 32)
    steps = [s for s, m in logged if "train/recon_loss" in m]
    assert steps == [2, 4, 6, 8]
    assert any("valid/swap_accuracy/mean" in m for _, m in logged)


def test_best_checkpoints_follow_the_selection_rule(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scripted validation scores, so that the best epochs are known and all different.

    (On the fixture the real scores improve every epoch: the last epoch is best by both.)
    Epoch 2 ties epoch 3 on swap accuracy and wins on reconstruction; epoch 1 reconstructs best.
    """
    scripted = iter([(0.5, 0.30), (0.8, 0.35), (0.8, 0.40)])

    def validate(nets, classifier, valid, size, batch_size, device) -> dict[str, float]:
        swap, recon = next(scripted)
        per_attribute = {f"swap_accuracy/{name}": swap for name in valid.attributes}
        dis = {f"dis_accuracy/{name}": 0.5 for name in valid.attributes}
        return {"recon_mse": recon, **dis, **per_attribute, "swap_accuracy/mean": swap}

    monkeypatch.setattr(trainer, "validate", validate)
    result = run(prepared, tmp_path / "ckpt", replace(CONFIG, n_epochs=3))
    assert (result["best_swap_epoch"], result["best_recon_epoch"]) == (2, 1)
    saved = {
        name: checkpoint.load(tmp_path / "ckpt" / name, "fader") for name in (BEST_SWAP, BEST_RECON)
    }
    assert saved[BEST_SWAP]["scores"]["recon_mse"] == 0.35
    assert saved[BEST_RECON]["scores"]["recon_mse"] == 0.30
    last = checkpoint.load(tmp_path / "ckpt" / LAST, "fader_training")
    assert last["epoch"] == 3
    states = [saved[BEST_SWAP]["state"], saved[BEST_RECON]["state"], last["nets"]["autoencoder"]]
    for a, b in [(0, 1), (0, 2), (1, 2)]:  # three epochs' weights
        assert not all(torch.equal(states[a][k], states[b][k]) for k in states[a]), (a, b)


def test_resume_ends_where_an_uninterrupted_run_ends(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight_log: list[int] = []
    straight = run(prepared, tmp_path / "straight", logger=lambda m, s: straight_log.append(s))

    class Interrupt(Exception):
        pass

    def interrupt_in_epoch_two(metrics: dict, step: int) -> None:
        if step == 6:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(prepared, tmp_path / "resumed", logger=interrupt_in_epoch_two)
    assert checkpoint.load(tmp_path / "resumed" / LAST, "fader_training")["epoch"] == 1
    resumed_log: list[int] = []
    steps = count_steps(monkeypatch)
    resumed = run(prepared, tmp_path / "resumed", logger=lambda m, s: resumed_log.append(s))
    assert len(steps) == CONFIG.steps_per_epoch  # epoch 2 only: epoch 1 came from the checkpoint
    assert resumed["history"] == straight["history"]
    assert resumed_log == straight_log  # what the interrupted run logged is replayed
    a = checkpoint.load(tmp_path / "straight" / LAST, "fader_training")["nets"]
    b = checkpoint.load(tmp_path / "resumed" / LAST, "fader_training")["nets"]
    for part in ("autoencoder", "discriminator"):
        for key, tensor in a[part].items():
            assert torch.equal(tensor, b[part][key]), (part, key)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_at_the_next_step_and_resumes_exactly(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    straight = run(prepared, tmp_path / "straight")
    handler = signal.getsignal(sig)

    def signal_at_step_six(metrics: dict, step: int) -> None:
        if step == 6:  # mid-epoch 2 (4 steps an epoch)
            os.kill(os.getpid(), sig)

    with pytest.raises(
        trainer.TrainingInterrupted, match=rf"stopped by {sig.name} at step 6 .*resume"
    ):
        run(prepared, tmp_path / "resumed", logger=signal_at_step_six)
    saved = checkpoint.load(tmp_path / "resumed" / LAST, "fader_training")
    assert (saved["step"], saved["epoch"]) == (6, 1)  # mid-epoch, not the last epoch's end
    assert signal.getsignal(sig) is handler  # the handler is put back
    steps = count_steps(monkeypatch)
    resumed = run(prepared, tmp_path / "resumed")
    assert len(steps) == 2  # steps 7 and 8 only
    assert resumed["history"] == straight["history"]  # bit for bit, the running sums included
    a = checkpoint.load(tmp_path / "straight" / LAST, "fader_training")["nets"]["autoencoder"]
    b = checkpoint.load(tmp_path / "resumed" / LAST, "fader_training")["nets"]["autoencoder"]
    assert all(torch.equal(tensor, b[key]) for key, tensor in a.items())


def test_batches_drawn_ahead_give_the_same_run_and_resume_mid_chunk(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches drawn 5 ahead, one copy per chunk, on the device split: the run of batches
    drawn one by one; a stop at step 6 (batch 12, mid-chunk) saves the generator's state after
    the batches trained on and resumes exactly."""
    on_device = replace(CONFIG, data_on_device=True)
    monkeypatch.setattr(BatchSampler, "CHUNK", 1)
    one_by_one = run(prepared, tmp_path / "one_by_one", on_device)
    monkeypatch.setattr(BatchSampler, "CHUNK", 5)
    uploads = []
    upload = BatchSampler._upload
    monkeypatch.setattr(
        BatchSampler, "_upload", staticmethod(lambda h, d: uploads.append(1) or upload(h, d))
    )
    straight = run(prepared, tmp_path / "straight", on_device)
    assert straight["history"] == one_by_one["history"]
    batches = CONFIG.n_epochs * CONFIG.steps_per_epoch * (CONFIG.dis_steps + 1)
    assert len(uploads) == -(-batches // 5)

    def signal_at_step_six(metrics: dict, step: int) -> None:
        if step == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(trainer.TrainingInterrupted):
        run(prepared, tmp_path / "resumed", on_device, logger=signal_at_step_six)
    saved = checkpoint.load(tmp_path / "resumed" / LAST, "fader_training")
    generator, size = torch.Generator().manual_seed(7), len(PreparedDataset(prepared, "train"))
    assert 6 * (CONFIG.dis_steps + 1) % 5  # mid-chunk
    for _ in range(6 * (CONFIG.dis_steps + 1)):
        draw_batch(size, CONFIG.batch_size, True, generator)
    assert torch.equal(saved["sampler"], generator.get_state())
    resumed = run(prepared, tmp_path / "resumed", on_device)
    assert resumed["history"] == straight["history"]
    a = checkpoint.load(tmp_path / "straight" / LAST, "fader_training")["nets"]["autoencoder"]
    b = checkpoint.load(tmp_path / "resumed" / LAST, "fader_training")["nets"]["autoencoder"]
    assert all(torch.equal(tensor, b[key]) for key, tensor in a.items())


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_checkpoint(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(prepared, tmp_path / "ckpt", replace(CONFIG, n_epochs=1))
    before = (tmp_path / "ckpt" / LAST).read_bytes()
    step = trainer.autoencoder_step
    calls = []

    def blow_up(nets, x, y, *weight_and_config):
        calls.append(1)
        if len(calls) == 3:  # the third step of epoch 2 (step 7)
            x = x * float("nan")
        return step(nets, x, y, *weight_and_config)

    monkeypatch.setattr(trainer, "autoencoder_step", blow_up)
    with pytest.raises(
        trainer.NonFiniteLoss,
        match=r"stopped at step 7: adv_loss, .*recon_loss became non-finite.*keeps epoch 1",
    ):
        run(prepared, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / LAST).read_bytes() == before


def test_more_epochs_continue_and_other_settings_restart(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(prepared, tmp_path / "ckpt", replace(CONFIG, n_epochs=1))
    steps = count_steps(monkeypatch)
    longer = run(prepared, tmp_path / "ckpt", replace(CONFIG, n_epochs=2))
    assert len(longer["history"]) == 2
    assert len(steps) == CONFIG.steps_per_epoch  # continued: only epoch 2 was trained
    # other settings, as many epochs as the checkpoint has: trained afresh, not handed back
    steps.clear()
    other = run(prepared, tmp_path / "ckpt", replace(CONFIG, n_epochs=2, lambda_max=0.02))
    assert len(other["history"]) == 2 and other["history"] != longer["history"]
    assert len(steps) == 2 * CONFIG.steps_per_epoch
    # fewer epochs than the checkpoint's (same settings): trained afresh too
    steps.clear()
    shorter = run(prepared, tmp_path / "ckpt", replace(CONFIG, n_epochs=1, lambda_max=0.02))
    assert len(shorter["history"]) == 1
    assert len(steps) == CONFIG.steps_per_epoch


def test_a_decaying_rate_is_logged_reaches_the_optimizers_and_fixes_the_length(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lr_decay > 0: the optimizers step at the scheduled rate, which is logged; a checkpoint
    made for a run of another length starts afresh (its decay was planned for that length)."""
    decaying = replace(CONFIG, lr_decay=0.5, learning_rate=1e-3)
    seen: list[float] = []
    step = trainer.autoencoder_step

    def recording(nets, *args, **kwargs):
        seen.append(nets.autoencoder.optimizer.param_groups[0]["lr"])
        assert nets.discriminator.optimizer.param_groups[0]["lr"] == seen[-1]
        return step(nets, *args, **kwargs)

    monkeypatch.setattr(trainer, "autoencoder_step", recording)
    logged: list[tuple[int, dict]] = []
    result = run(prepared, tmp_path / "ckpt", decaying, logger=lambda m, s: logged.append((s, m)))
    total = decaying.total_steps
    assert seen == [learning_rate(s, 1e-3, total, 0.5) for s in range(total)]
    assert seen[0] == 1e-3 and seen[-1] < 1e-3 / 2
    assert [m["learning_rate"] for s, m in logged if "learning_rate" in m] == [
        learning_rate(s - 1, 1e-3, total, 0.5) for s in range(2, total + 1, 2)
    ]
    assert result["history"] != run(prepared, tmp_path / "constant")["history"]
    steps = count_steps(monkeypatch)
    run(prepared, tmp_path / "ckpt", replace(decaying, n_epochs=3))
    assert len(steps) == 3 * CONFIG.steps_per_epoch  # afresh, not continued


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lambda_max": -1.0}, r"lambda_max\s+Input should be greater than or equal to 0"),
        ({"recon_loss": "l3"}, r"recon_loss\s+Input should be 'mse', 'mae' or 'huber'"),
        ({"batch_size": 0}, "batch_size"),
        ({"lambda_schedule": -5}, "lambda_schedule"),
        ({"lr_decay": 1.0}, r"lr_decay\s+Input should be less than 1"),
        ({"dis_steps": 0}, r"dis_steps\s+Input should be greater than or equal to 1"),
    ],
)
def test_bad_training_parameters(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(TrainConfig, **overrides)


def test_an_unknown_reconstruction_loss_names_the_valid_ones() -> None:
    x = torch.zeros(2, 3, 4, 4)
    assert reconstruction_loss(x + 2, x, "huber") == F.smooth_l1_loss(x + 2, x)
    with pytest.raises(ValueError, match=r"recon_loss must be one of mse, mae, huber, got 'l3'"):
        reconstruction_loss(x, x, "l3")


@pytest.mark.parametrize("loss, formula", [("mae", F.l1_loss), ("huber", F.smooth_l1_loss)])
def test_ablation_losses_and_patch_discriminator_train(
    prepared: Path, tmp_path: Path, loss: str, formula
) -> None:
    config = replace(CONFIG, n_epochs=1, recon_loss=loss, patch_weight=0.1)
    result = run(prepared, tmp_path / loss, config)
    assert "train_epoch/patch_loss" in result["history"][0]
    # the autoencoder step uses the chosen loss, not the paper's MSE
    torch.manual_seed(0)
    nets = FaderNetworks.build(MODEL, config, torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    with torch.no_grad():  # the step's own forward pass: train mode, before the update
        x_hat = nets.autoencoder.net.train().decode(nets.autoencoder.net.encode(x), y)
    expected = formula(x_hat, x).item()
    assert expected != pytest.approx(F.mse_loss(x_hat, x).item())
    recon = autoencoder_step(nets, x, y, 0.0, config)["recon_loss"].item()
    assert recon == pytest.approx(expected)


def test_more_discriminator_steps_each_draw_their_own_batch(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dis_steps (the official code's n_lat_dis): that many discriminator steps per autoencoder
    step, each on a batch of its own, so the run trains differently."""
    calls: list[str] = []

    def recording(name: str):
        original = getattr(trainer, name)

        def call(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        return call

    for name in ("_sample", "discriminator_step", "autoencoder_step"):
        monkeypatch.setattr(trainer, name, recording(name))
    twice = run(prepared, tmp_path / "twice", replace(CONFIG, n_epochs=1, dis_steps=2))
    one_iteration = ["_sample", "discriminator_step"] * 2 + ["_sample", "autoencoder_step"]
    assert calls == one_iteration * CONFIG.steps_per_epoch
    once = run(prepared, tmp_path / "once", replace(CONFIG, n_epochs=1))
    assert twice["history"] != once["history"]


def test_a_swap_classifier_trains_on_real_images_and_judges_swapped_decodings(
    prepared: Path, tmp_path: Path
) -> None:
    """swap_clf_weight > 0 (the official code's clf_dis; not in the paper): a classifier learns
    y on real batches, and the autoencoder pays its cross-entropy on D(E(x), 1 - y) toward 1 - y."""
    config = replace(CONFIG, n_epochs=1, swap_clf_weight=0.5, swap_clf_init_fm=4, swap_clf_max_fm=8)
    result = run(prepared, tmp_path / "clf", config)
    assert {"train_epoch/swap_clf_loss", "train_epoch/swap_adv_loss"} <= set(result["history"][0])
    assert (
        result["history"]
        != run(prepared, tmp_path / "paper", replace(CONFIG, n_epochs=1))["history"]
    )
    assert "swap_classifier" in torch.load(tmp_path / "clf" / LAST, weights_only=True)["nets"]
    # the autoencoder step's term is that classifier's BCE on the swapped decoding
    torch.manual_seed(0)
    nets = FaderNetworks.build(MODEL, config, torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    [critic] = nets.critics
    assert critic.kind.name == "swap_classifier" and critic.weight == 0.5
    autoencoder = nets.autoencoder.net
    with torch.no_grad():
        swapped = autoencoder.train().decode(autoencoder.encode(x), 1 - y)
        logits = critic.net.eval()(swapped)
    expected = F.binary_cross_entropy_with_logits(logits, 1 - y).item()
    metrics = autoencoder_step(nets, x, y, 0.0, config)
    assert metrics["swap_adv_loss"].item() == pytest.approx(expected, rel=1e-5)


def test_training_on_batches_gathered_on_the_device_is_the_same(
    prepared: Path, tmp_path: Path
) -> None:
    """data_on_device copies the split once and gathers batches there: the same run."""
    mapped = run(prepared, tmp_path / "mapped", replace(CONFIG, n_epochs=1))
    on_device = run(prepared, tmp_path / "device", replace(CONFIG, n_epochs=1, data_on_device=True))
    assert on_device["history"] == mapped["history"]


def test_a_moving_average_of_the_weights_is_validated_saved_and_resumed(
    prepared: Path, tmp_path: Path
) -> None:
    """ema_decay > 0 (not in the paper): validation and the saved models use the average."""
    ema = replace(CONFIG, ema_decay=0.9)
    straight = run(prepared, tmp_path / "straight", ema)
    assert straight["history"] != run(prepared, tmp_path / "paper")["history"]
    saved = checkpoint.load(tmp_path / "straight" / LAST, "fader_training")["nets"]
    average = {k.removeprefix("module."): v for k, v in saved["ema"].items() if k != "n_averaged"}
    assert int(saved["ema"]["n_averaged"]) == 2 * CONFIG.steps_per_epoch
    assert any(not torch.equal(v, saved["autoencoder"][k]) for k, v in average.items())
    best = checkpoint.load(tmp_path / "straight" / BEST_SWAP, "fader")["state"]
    if straight["best_swap_epoch"] == 2:  # the last epoch's average is the one in last.pt
        assert all(torch.equal(best[k], average[k]) for k in best)
    # one epoch, then extended to two: the average is restored and goes on exactly
    run(prepared, tmp_path / "resumed", replace(ema, n_epochs=1))
    resumed = run(prepared, tmp_path / "resumed", ema)
    assert resumed["history"] == straight["history"]


def test_the_moving_average_is_averaged_models_without_host_syncs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MovingAverage computes what AveragedModel's EMA computes, to the bit, parameters and
    buffers (integer ones too), goes on alike from its state dict, and never asks the device
    whether it has started (AveragedModel does, twice per update)."""
    torch.manual_seed(0)
    net = AutoEncoder(MODEL)
    reference = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    ours = MovingAverage(net, 0.9)
    syncs = {"reference": 0, "ours": 0}
    truth = torch.Tensor.__bool__

    def update(name: str, average: AveragedModel) -> None:
        counted = lambda t: syncs.__setitem__(name, syncs[name] + 1) or truth(t)  # noqa: E731
        monkeypatch.setattr(torch.Tensor, "__bool__", counted)
        average.update_parameters(net)
        monkeypatch.setattr(torch.Tensor, "__bool__", truth)

    for step in range(5):
        with torch.no_grad():  # new weights and BatchNorm statistics
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 2))
        if step == 3:  # a resumed run's average, loaded from the reference's checkpoint entry
            ours = MovingAverage(net, 0.9)
            ours.load_state_dict(reference.state_dict())
        update("reference", reference)
        update("ours", ours)
        expected, got = reference.state_dict(), ours.state_dict()
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected), step
    assert int(ours.n_averaged) == 5
    assert any(
        not torch.equal(v, net.state_dict()[k.removeprefix("module.")])
        for k, v in got.items()
        if k != "n_averaged"
    )
    assert syncs == {"reference": 10, "ours": 1}  # ours: once, after the load


@pytest.mark.gpu
def test_a_run_on_a_gpu_resumes(
    prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #22: last.pt read onto the GPU held its RNG states there, which torch refuses."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cuda = replace(CONFIG, device="cuda")
    run(prepared, tmp_path / "ckpt", replace(cuda, n_epochs=1))
    steps = count_steps(monkeypatch)
    resumed = run(prepared, tmp_path / "ckpt", cuda)
    assert len(steps) == CONFIG.steps_per_epoch and len(resumed["history"]) == 2
