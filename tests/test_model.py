"""Tests for fader/model: the official code's exact parameter counts, shapes, the attribute code,
config validation and checkpoint round trips. Tiny shapes (32 px, init_fm 4) except the
parameter counts, which only build the modules."""

from __future__ import annotations

import pytest
import torch

from fader.config import ConfigError, build, to_dict
from fader.model.networks import (
    AttributeClassifier,
    AutoEncoder,
    ClassifierConfig,
    LatentDiscriminator,
    ModelConfig,
    PatchDiscriminator,
    attribute_code,
)
from tests.conftest import make, params_defaults


def count_parameters(module: torch.nn.Module) -> int:
    """Sum of numel over parameters (BatchNorm running stats are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())


# -- parameter counts (the official code's models): 256 px, max_fm 512, one attribute -----------


def test_parameter_counts_paper_shape():
    cfg = make(ModelConfig, img_size=256, n_layers=7, init_fm=16, max_fm=512, n_attr=1)
    ae = AutoEncoder(cfg)
    assert count_parameters(ae.encoder) == 6_993_072
    assert count_parameters(ae.decoder) == 7_022_912
    assert count_parameters(ae) == 14_015_984
    assert count_parameters(LatentDiscriminator(cfg)) == 4_459_522


def test_parameter_counts_official_default():
    cfg = make(ModelConfig, img_size=256, n_layers=6, init_fm=32, max_fm=512, n_attr=1)
    assert count_parameters(AutoEncoder(cfg)) == 14_000_512
    assert count_parameters(LatentDiscriminator(cfg)) == 8_655_362


def test_paper_channel_plan():
    cfg = make(ModelConfig, img_size=256, n_layers=7, init_fm=16, max_fm=512, n_attr=1)
    ae = AutoEncoder(cfg)
    assert [b[0].out_channels for b in ae.encoder.blocks] == [16, 32, 64, 128, 256, 512, 512]
    # C512+2n-C512+2n-C256+2n-C128+2n-C64+2n-C32+2n-C16+2n (input channels), n = 1
    assert [b[0].in_channels for b in ae.decoder.blocks] == [514, 514, 258, 130, 66, 34, 18]
    assert ae.decoder.blocks[-1][0].out_channels == 3
    assert cfg.latent_size == 2 and cfg.latent_channels == 512
    assert len(LatentDiscriminator(cfg).blocks) == 1  # one C512


# -- shapes ---------------------------------------------------------------------------------------


def tiny(**kw) -> ModelConfig:
    args = dict(img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16)
    args.update(kw)
    return make(ModelConfig, **args)


@pytest.mark.parametrize(
    ("img_size", "n_layers", "n_skip"),
    [
        (32, 4, 0),
        (32, 5, 0),
        (32, 1, 0),
        (16, 3, 0),
        (64, 5, 0),
        (32, 4, 1),
        (32, 4, 2),
        (64, 5, 4),
    ],
)
def test_autoencoder_shapes(img_size, n_layers, n_skip):
    cfg = tiny(img_size=img_size, n_layers=n_layers, n_skip=n_skip)
    ae, dis = AutoEncoder(cfg), LatentDiscriminator(cfg)
    x = torch.rand(3, 3, img_size, img_size) * 2 - 1
    y = torch.randint(0, 2, (3, cfg.n_attr)).float()
    feats = ae.encode(x)
    assert len(feats) == n_layers
    z = feats[-1]
    side = img_size // 2**n_layers
    assert cfg.latent_size == side
    assert z.shape == (3, cfg.latent_channels, side, side)
    x_hat = ae.decode(feats, y)
    assert x_hat.shape == x.shape
    assert ae(x, y).shape == x.shape
    logits = dis(z)
    assert logits.shape == (3, 2 * cfg.n_attr)
    assert LatentDiscriminator.per_attribute(logits).shape == (3, cfg.n_attr, 2)


def test_skip_connections_widen_the_last_decoder_blocks():
    cfg = tiny(n_skip=2)  # channels 4, 8, 16, 16; code 4
    ins = [b[0].in_channels for b in AutoEncoder(cfg).decoder.blocks]
    assert ins == [16 + 4, 16 + 4, 8 + 4 + 8, 4 + 4 + 4]


def test_decode_from_z_alone_needs_no_skips():
    ae = AutoEncoder(tiny())
    x, y = torch.rand(2, 3, 32, 32), torch.ones(2, 2)
    z = ae.encode(x)[-1]
    assert ae.decode(z, y).shape == x.shape
    with pytest.raises(ValueError, match="n_skip=1 needs the encoder feature maps"):
        AutoEncoder(tiny(n_skip=1)).decode(z, y)


def test_backward_through_autoencoder_and_discriminator():
    cfg = tiny(n_skip=1, decoder_dropout=0.2)
    ae, dis = AutoEncoder(cfg), LatentDiscriminator(cfg)
    x, y = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randint(0, 2, (4, 2))
    feats = ae.encode(x)
    x_hat = ae.decode(feats, y)
    logits = LatentDiscriminator.per_attribute(dis(feats[-1]))
    loss = (x_hat - x).pow(2).mean() + torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), (1 - y).flatten()
    )
    loss.backward()
    assert all(p.grad is not None for p in ae.parameters())


def test_channels_last_matches_contiguous():
    ae = AutoEncoder(tiny(n_skip=1)).eval()
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 2)
    ref = ae(x, y)
    ae_cl = ae.to(memory_format=torch.channels_last)
    out = ae_cl(x.to(memory_format=torch.channels_last), y)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_the_code_is_concatenated_in_the_layout_of_the_maps():
    """Channels-last maps and blocks get a channels-last concatenation (an expanded code made it
    contiguous: a layout conversion per decoder block); contiguous ones stay as they were."""
    ae = AutoEncoder(tiny(n_skip=1)).eval()
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 2)
    inputs: list[torch.Tensor] = []
    for block in ae.decoder.blocks:
        block.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    contiguous = ae(x, y)
    assert len(inputs) == len(ae.decoder.blocks)
    assert all(t.is_contiguous() for t in inputs)
    inputs.clear()
    ae.to(memory_format=torch.channels_last)
    out = ae(x.to(memory_format=torch.channels_last), y)
    last = torch.channels_last
    assert all(t.is_contiguous(memory_format=last) and not t.is_contiguous() for t in inputs)
    torch.testing.assert_close(out, contiguous, atol=1e-5, rtol=1e-4)


def test_latent_discriminator_on_1x1_latent_is_mlp_only():
    cfg = tiny(n_layers=5)
    dis = LatentDiscriminator(cfg)
    assert len(dis.blocks) == 0
    assert dis(torch.rand(3, cfg.latent_channels, 1, 1)).shape == (3, 4)


def test_patch_discriminator_shape():
    cfg = tiny(patch_dis_layers=3)
    assert PatchDiscriminator(cfg)(torch.rand(2, 3, 32, 32)).shape == (2, 1, 4, 4)


@pytest.mark.parametrize("img_size", [8, 32, 64])
def test_classifier_shape(img_size):
    cfg = make(ClassifierConfig, img_size=img_size, n_attr=3, init_fm=4, max_fm=16, dropout=0.1)
    clf = AttributeClassifier(cfg)
    assert len(clf.blocks) == cfg.n_layers == {8: 3, 32: 5, 64: 6}[img_size]
    assert clf(torch.rand(2, 3, img_size, img_size)).shape == (2, 3)


# -- the attribute code ---------------------------------------------------------------------------


def test_attribute_code_is_interleaved_one_hot():
    alpha = torch.tensor([[0.0, 1.0], [0.25, 2.0]])
    expected = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.75, 0.25, -1.0, 2.0]])
    torch.testing.assert_close(attribute_code(alpha), expected)
    assert attribute_code(torch.tensor([[1, 0]])).dtype == torch.float32


def test_decoder_output_in_range_and_changes_with_alpha():
    torch.manual_seed(0)
    ae = AutoEncoder(tiny(n_attr=1)).eval()
    z = ae.encode(torch.rand(2, 3, 32, 32) * 2 - 1)[-1]
    outs = {a: ae.decode(z, torch.full((2, 1), a)) for a in (-1.0, 0.0, 1.0, 2.0)}
    for out in outs.values():
        assert out.min() >= -1 and out.max() <= 1
        assert torch.isfinite(out).all()
    assert not torch.allclose(outs[0.0], outs[1.0])
    assert not torch.allclose(outs[1.0], outs[2.0])  # extrapolation still moves the output


# -- config ---------------------------------------------------------------------------------------


def test_config_round_trip_and_checkpoint(tmp_path):
    cfg = tiny(n_skip=1, dis_dropout=0.5)
    assert build(ModelConfig, to_dict(cfg), "model") == cfg
    ae = AutoEncoder(cfg).eval()
    path = tmp_path / "ae.pt"
    torch.save({"config": to_dict(cfg), "state": ae.state_dict()}, path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    loaded = AutoEncoder(build(ModelConfig, ckpt["config"], "model"))
    loaded.load_state_dict(ckpt["state"])
    loaded.eval()
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 2)
    torch.testing.assert_close(loaded(x, y), ae(x, y))

    ccfg = make(ClassifierConfig, img_size=32, n_attr=2)
    assert build(ClassifierConfig, to_dict(ccfg), "classifier") == ccfg


def test_build_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"model: unknown key\(s\) \['dropout'\]; valid keys: \["):
        build(ModelConfig, {**to_dict(tiny()), "dropout": 0.1}, "model")
    with pytest.raises(ValueError, match=r"model: missing key\(s\) \['n_attr', 'init_fm', "):
        build(ModelConfig, {"img_size": 32, "n_layers": 4}, "model")


def built(cls: type, **kw) -> object:
    """`cls` from a section as params.yaml gives it (`build`: one-line `ConfigError`s)."""
    return build(cls, {**params_defaults(cls), **kw}, "model")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            dict(img_size=64, n_layers=7),
            r"model: img_size 64 with n_layers 7 leaves a latent of 0.5 px; "
            r"use n_layers <= 6 \(5 keeps the paper's 2x2 latent\)$",
        ),
        (dict(img_size=48), r"img_size: must be a power of two >= 8 .* \(got 48\)$"),
        (dict(img_size=4, n_layers=1), r"img_size: must be a power of two >= 8 .* \(got 4\)$"),
        (dict(img_size=32.0), r"img_size: Input should be a valid integer"),
        (dict(n_layers=0), r"n_layers: Input should be greater than or equal to 1 \(got 0\)"),
        (dict(n_attr=0), r"n_attr: Input should be greater than or equal to 1 \(got 0\)"),
        (dict(n_skip=4), r"model: n_skip must be < n_layers \(4\)"),
        (dict(n_skip=-1), r"n_skip: Input should be greater than or equal to 0 \(got -1\)"),
        (dict(dis_dropout=1.0), r"dis_dropout: Input should be less than 1 \(got 1.0\)"),
        (dict(dis_dropout=-0.1), r"dis_dropout: Input should be greater than or equal to 0"),
        (dict(decoder_dropout=1.5), r"decoder_dropout: Input should be less than 1 \(got 1.5\)"),
        (dict(init_fm=0), r"init_fm: Input should be greater than or equal to 1 \(got 0\)"),
        (dict(max_fm=0), r"max_fm: Input should be greater than or equal to 1 \(got 0\)"),
        (dict(init_fm=32, max_fm=16), r"model: max_fm \(16\) must be >= init_fm \(32\)$"),
        (dict(patch_dis_layers=6), "patch_dis_layers 6 would shrink a 32 px image below 1 px"),
        (dict(patch_dis_layers=0), r"patch_dis_layers: Input should be greater than or equal to 1"),
    ],
)
def test_invalid_model_config(kw, message):
    args = {**dict(img_size=32, n_layers=4, n_attr=2, init_fm=4, max_fm=16), **kw}
    with pytest.raises(ConfigError, match=message):
        built(ModelConfig, **args)
    with pytest.raises(ValueError):  # built directly: pydantic's ValidationError, a ValueError
        tiny(**kw)


@pytest.mark.parametrize(
    ("img_size", "n_layers"), [(8, 1), (8, 3), (16, 3), (32, 4), (256, 7), (512, 8), (1024, 9)]
)
def test_every_power_of_two_from_8_is_an_image_size(img_size, n_layers):
    assert tiny(img_size=img_size, n_layers=n_layers, patch_dis_layers=1).img_size == img_size


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(img_size=100), r"img_size: must be a power of two >= 8 .* \(got 100\)"),
        (dict(n_attr=0), r"n_attr: Input should be greater than or equal to 1"),
        (dict(dropout=1.0), r"dropout: Input should be less than 1 \(got 1.0\)"),
        (dict(init_fm=64, max_fm=32), r"max_fm \(32\) must be >= init_fm \(64\)"),
    ],
)
def test_invalid_classifier_config(kw, message):
    args = dict(img_size=32, n_attr=1)
    args.update(kw)
    with pytest.raises(ConfigError, match=message):
        built(ClassifierConfig, **args)
    with pytest.raises(ValueError):
        make(ClassifierConfig, **args)
